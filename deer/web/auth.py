"""Authentication and authorisation of every request, in one middleware.

A declared public endpoint is open to all. Any other needs a valid access token (401
otherwise) and a casbin policy allowing one of the caller's roles that path and method
(403 otherwise); an endpoint declared for members or for staff only refuses the other kind
(403 `members_only` / `staff_only`). Handlers read the caller with `principal_of(request)`.
A request whose actor did not answer in time (`504 actor_timeout`) leaves its caller recorded
as the command's asker, the only one who may fetch its outcome (`GET /api/commands/{id}`).
"""

from __future__ import annotations

from typing import Final

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from actors.base import AskTimeout
from deer import keys
from deer.access.policy import route_pattern
from deer.accounts.errors import TokenMissing
from deer.accounts.tokens import Principal
from deer.errors import Forbidden
from deer.web import askers
from deer.web.api import endpoint_of

PRINCIPAL: Final = web.RequestKey("principal", Principal)
MEMBERS_ONLY: Final = "only a member (a shopper) can do this; staff accounts cannot shop"
STAFF_ONLY: Final = "only staff can do this"


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


async def caller_of(request: web.Request) -> Principal | None:
    """Who calls a public route that reads differently for signed-in callers: the token's
    principal when a token is sent (a bad one is still refused, 401), None for anonymous."""
    principal: Principal | None = request.get(PRINCIPAL)
    if principal is not None:
        return principal
    token = bearer_token(request)
    if token is None:
        return None
    principal = await request.app[keys.TOKENS].authenticate(token)
    request[PRINCIPAL] = principal
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
    if endpoint is not None and endpoint.callers != "anyone":
        if endpoint.callers == "members" and principal.kind != "member":
            raise Forbidden(MEMBERS_ONLY, code="members_only")
        if endpoint.callers == "staff" and principal.kind != "staff":
            raise Forbidden(STAFF_ONLY, code="staff_only")
    request[PRINCIPAL] = principal
    try:
        return await handler(request)
    except AskTimeout as exc:
        app = request.app
        await askers.remember(app[keys.REDIS], app[keys.SETTINGS], exc.command_id, principal)
        raise
