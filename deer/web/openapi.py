"""The OpenAPI 3.1 document, generated from the declared endpoints on the app's router,
and Swagger UI served from the `swagger-ui-py` wheel (no CDN)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Final

from aiohttp import web
from pydantic import BaseModel

import deer
from deer.web.api import Endpoint, endpoint_of

REF_TEMPLATE: Final = "#/components/schemas/{model}"
_PATH_PARAM: Final = re.compile(r"\{(\w+)(?::[^}]*)?\}")

ERROR_DESCRIPTIONS: Final = {
    400: "Malformed request (`malformed_json`, `bad_request`)",
    401: "Not signed in or the token is not valid (`unauthorized`)",
    403: "Signed in without the right (`forbidden`)",
    404: "No such resource (`not_found`)",
    409: "Conflicts with the current state (`conflict` or a domain code)",
    413: "Body larger than the limit (`payload_too_large`)",
    415: "Body is not of the declared type (`unsupported_media_type`)",
    422: "Invalid fields (`validation_error`, `details.fields` lists path and reason)",
    429: "Too many requests (`rate_limited`, see `Retry-After`)",
    503: "A backend is unavailable (`unavailable`)",
    504: (
        "No answer in time; the work may still complete (`actor_timeout`, `details.command_id`:"
        " ask `GET /api/commands/{command_id}` what became of it)"
    ),
}

ERROR_SCHEMA: Final = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "description": "stable, machine-readable"},
                "message": {"type": "string", "description": "for people"},
                "details": {"type": "object"},
            },
        }
    },
}


class _Schemas:
    def __init__(self) -> None:
        self.components: dict[str, Any] = {"Error": ERROR_SCHEMA}

    def ref(self, model: type[BaseModel]) -> dict[str, str]:
        schema = model.model_json_schema(ref_template=REF_TEMPLATE)
        self.components.update(schema.pop("$defs", {}))
        self.components[model.__name__] = schema
        return {"$ref": REF_TEMPLATE.format(model=model.__name__)}

    def parameters(self, model: type[BaseModel]) -> list[dict[str, Any]]:
        schema = model.model_json_schema(ref_template=REF_TEMPLATE)
        self.components.update(schema.pop("$defs", {}))
        required = set(schema.get("required", []))
        return [
            {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": prop,
                **({"description": prop["description"]} if "description" in prop else {}),
            }
            for name, prop in schema.get("properties", {}).items()
        ]


def _operation(endpoint: Endpoint, schemas: _Schemas, path_params: list[str]) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in path_params
    ]
    if endpoint.query is not None:
        parameters += schemas.parameters(endpoint.query)
    ok: dict[str, Any] = {"description": "OK"}
    if endpoint.response is not None:
        ok["content"] = {endpoint.content_type: {"schema": schemas.ref(endpoint.response)}}
    elif endpoint.content_type != "application/json":
        ok["content"] = {endpoint.content_type: {"schema": {"type": "string"}}}
    responses: dict[str, Any] = {str(endpoint.status): ok}
    statuses = set(endpoint.errors)
    if endpoint.body is not None or endpoint.upload is not None:
        statuses |= {400, 413, 415, 422}
    if endpoint.query is not None:
        statuses.add(422)
    if not endpoint.public:
        statuses |= {401, 403}
    for status in sorted(statuses):
        responses[str(status)] = {
            "description": ERROR_DESCRIPTIONS.get(status, "Error"),
            "content": {
                "application/json": {"schema": {"$ref": REF_TEMPLATE.format(model="Error")}}
            },
        }
    operation: dict[str, Any] = {
        "summary": endpoint.summary,
        "tags": list(endpoint.tags),
        "responses": responses,
    }
    if parameters:
        operation["parameters"] = parameters
    if endpoint.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schemas.ref(endpoint.body)}},
        }
    if endpoint.upload is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": [endpoint.upload],
                        "properties": {endpoint.upload: {"type": "string", "format": "binary"}},
                    }
                }
            },
        }
    if endpoint.public:
        operation["security"] = []
    if endpoint.callers != "anyone":
        operation["description"] = (
            f"Only for {endpoint.callers}: others get 403 (`{endpoint.callers}_only`)"
            " whatever their roles."
        )
    return operation


def build_document(app: web.Application) -> dict[str, Any]:
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        endpoint = endpoint_of(route.handler)
        if endpoint is None or not endpoint.documented:
            continue
        path_params = _PATH_PARAM.findall(endpoint.path)
        path = _PATH_PARAM.sub(r"{\1}", endpoint.path)
        paths.setdefault(path, {})[endpoint.method.lower()] = _operation(
            endpoint, schemas, path_params
        )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "deer API",
            "version": deer.__version__,
            "description": "Shop and sales CRM. Money is in fen (1/100 CNY); times are UTC.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.components.items())),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
        "security": [{"bearer": []}],
    }


def swagger_assets() -> Path:
    import swagger_ui

    return Path(swagger_ui.__file__).parent / "static"


SWAGGER_PAGE: Final = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>deer API</title>
<link rel="stylesheet" href="/api/docs/static/swagger-ui.css">
<link rel="icon" href="/api/docs/static/favicon-32x32.png"></head>
<body><div id="swagger-ui"></div>
<script src="/api/docs/static/swagger-ui-bundle.js"></script>
<script src="/api/docs/static/swagger-ui-standalone-preset.js"></script>
<script src="/api/docs/static/deer-docs.js"></script>
</body></html>
"""

SWAGGER_INIT: Final = """window.ui = SwaggerUIBundle({
  url: "/api/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  layout: "StandaloneLayout"
});
"""
