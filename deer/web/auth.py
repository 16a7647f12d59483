"""Authentication and authorisation of every request, in one middleware.

A declared public endpoint is open to all. Any other needs a valid access token (401
otherwise), a casbin policy allowing one of the caller's roles that path and method, and, when
the endpoint declares a `caller_kind`, a caller of that kind (403 otherwise). Handlers read
the caller with `principal_of(request)`.
"""

from __future__ import annotations

from typing import Final

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from deer import keys
from deer.access.policy import route_pattern
from deer.accounts.errors import TokenMissing
from deer.accounts.tokens import Principal
from deer.errors import Forbidden
from deer.web.api import endpoint_of

PRINCIPAL: Final = web.RequestKey("principal", Principal)


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get(hdrs.AUTHORIZATION, "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def principal_of(request: web.Request) -> Principal:
    principal: Principal | None = request.get(PRINCIPAL)
    if principal is None:  # only on a public route: the middleware guards the others
        raise TokenMissing()
    return principal


def _is_public(request: web.Request) -> bool:
    info = request.match_info
    if info.http_exception is not None:
        return True  # 404 and 405 are answered the same to everyone
    endpoint = endpoint_of(info.handler)
    if endpoint is not None:
        return endpoint.public
    resource = info.route.resource
    return isinstance(resource, web.StaticResource)  # Swagger UI's files


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if _is_public(request):
        return await handler(request)
    token = bearer_token(request)
    if token is None:
        raise TokenMissing()
    principal = await request.app[keys.TOKENS].authenticate(token)
    resource = request.match_info.route.resource
    assert resource is not None  # unmatched requests were answered as public above
    route = route_pattern(resource.canonical)
    if not request.app[keys.POLICIES].allows(principal.roles, route, request.method):
        raise Forbidden(f"your roles may not {request.method} {request.path}")
    endpoint = endpoint_of(request.match_info.handler)
    wanted = endpoint.caller_kind if endpoint is not None else None
    if wanted is not None and principal.kind != wanted:
        raise Forbidden(f"only a {wanted} may {request.method} {request.path}")
    request[PRINCIPAL] = principal
    return await handler(request)
