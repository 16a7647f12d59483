"""Every route of the app, read from the router, for an anonymous caller and every role:
allowed or refused exactly as this table says. A new route fails here until it is listed
(and covered by a policy in config/policy.csv, or declared public)."""

from __future__ import annotations

import re
from typing import Any, Final

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from deer import keys
from deer.accounts.models import Member
from deer.accounts.tokens import Subject
from deer.web.api import endpoint_of
from tests.auth_helpers import bearer, make_member, make_staff

ROLES: Final = ("admin", "sales_manager", "sales", "ops", "member")
CALLERS: Final = ("anonymous", *ROLES)
PUBLIC: Final = frozenset(CALLERS)
SIGNED_IN: Final = frozenset(ROLES)
ADMIN: Final = frozenset({"admin"})
MANAGERS: Final = frozenset({"admin", "sales_manager"})
STAFF: Final = frozenset({"admin", "sales_manager", "sales", "ops"})
OPS: Final = frozenset({"admin", "ops"})
MEMBER: Final = frozenset({"member"})  # staff (admin too) are refused: members_only
MEMBER: Final = frozenset({"member"})  # members only: staff are refused even as admin

EXPECTED: Final[dict[tuple[str, str], frozenset[str]]] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/api/meta"): PUBLIC,
    ("GET", "/api/openapi.json"): PUBLIC,
    ("GET", "/api/docs"): PUBLIC,
    ("GET", "/api/docs/static/deer-docs.js"): PUBLIC,
    ("POST", "/api/auth/register"): PUBLIC,
    ("POST", "/api/auth/login"): PUBLIC,
    ("POST", "/api/auth/refresh"): PUBLIC,
    ("POST", "/api/auth/wechat"): PUBLIC,
    ("POST", "/api/auth/logout"): SIGNED_IN,
    ("GET", "/api/auth/me"): SIGNED_IN,
    ("POST", "/api/auth/password"): SIGNED_IN,
    ("GET", "/api/commands/{command_id}"): SIGNED_IN,  # the caller's own timed-out commands
    # staff users
    ("GET", "/api/admin/users"): MANAGERS,
    ("POST", "/api/admin/users"): ADMIN,
    ("GET", "/api/admin/users/{id}"): MANAGERS,
    ("PATCH", "/api/admin/users/{id}"): ADMIN,
    ("PUT", "/api/admin/users/{id}/roles"): ADMIN,
    ("POST", "/api/admin/users/{id}/disable"): ADMIN,
    ("POST", "/api/admin/users/{id}/enable"): ADMIN,
    ("POST", "/api/admin/users/{id}/password"): ADMIN,
    # departments, positions, roles
    ("GET", "/api/admin/departments"): MANAGERS,
    ("POST", "/api/admin/departments"): ADMIN,
    ("GET", "/api/admin/departments/tree"): MANAGERS,
    ("GET", "/api/admin/departments/{id}"): MANAGERS,
    ("PATCH", "/api/admin/departments/{id}"): ADMIN,
    ("DELETE", "/api/admin/departments/{id}"): ADMIN,
    ("GET", "/api/admin/positions"): MANAGERS,
    ("POST", "/api/admin/positions"): ADMIN,
    ("GET", "/api/admin/positions/{id}"): MANAGERS,
    ("PATCH", "/api/admin/positions/{id}"): ADMIN,
    ("DELETE", "/api/admin/positions/{id}"): ADMIN,
    ("GET", "/api/admin/roles"): ADMIN,
    ("POST", "/api/admin/roles"): ADMIN,
    ("GET", "/api/admin/roles/{id}"): ADMIN,
    ("PATCH", "/api/admin/roles/{id}"): ADMIN,
    ("DELETE", "/api/admin/roles/{id}"): ADMIN,
    # members, audit, policies
    ("GET", "/api/admin/members"): STAFF,
    ("GET", "/api/admin/members/{id}"): STAFF,
    ("PATCH", "/api/admin/members/{id}"): ADMIN,
    ("PUT", "/api/admin/members/{id}/tags"): MANAGERS,
    ("GET", "/api/admin/members/{id}/notes"): STAFF,
    ("POST", "/api/admin/members/{id}/notes"): STAFF,
    ("DELETE", "/api/admin/members/{id}/notes/{note_id}"): STAFF,
    ("GET", "/api/admin/members/{id}/points"): STAFF,
    ("POST", "/api/admin/members/{id}/points"): ADMIN,
    # a member's own
    ("GET", "/api/members/me"): MEMBER,
    ("PATCH", "/api/members/me"): MEMBER,
    ("GET", "/api/members/me/points"): MEMBER,
    ("GET", "/api/admin/audit"): ADMIN,
    ("GET", "/api/admin/policies"): ADMIN,
    ("POST", "/api/admin/policies"): ADMIN,
    ("GET", "/api/admin/policies/check"): ADMIN,
    ("DELETE", "/api/admin/policies/{id}"): ADMIN,
    # the actors' dead letters
    ("GET", "/api/admin/actors/{kind}/dead-letters"): ADMIN,
    ("POST", "/api/admin/actors/{kind}/dead-letters/{id}/replay"): ADMIN,
    ("DELETE", "/api/admin/actors/{kind}/dead-letters/{id}"): ADMIN,
    # orders
    ("POST", "/api/orders"): MEMBER,
    ("GET", "/api/orders"): MEMBER,
    ("GET", "/api/orders/{id}"): frozenset({"admin", "ops", "sales_manager", "member"}),
    ("POST", "/api/orders/{id}/cancel"): frozenset({"admin", "ops", "member"}),
    ("POST", "/api/orders/{id}/confirm"): MEMBER,
    ("POST", "/api/orders/{id}/pay"): MEMBER,
    ("POST", "/api/orders/{id}/ship"): OPS,
    ("POST", "/api/orders/{id}/refunds"): OPS,
    ("GET", "/api/admin/orders"): frozenset({"admin", "ops", "sales_manager"}),
    ("GET", "/api/admin/orders/export"): OPS,
    # catalog: browsing is public; ops write
    ("GET", "/api/categories"): PUBLIC,
    ("POST", "/api/categories"): OPS,
    ("PATCH", "/api/categories/{id}"): OPS,
    ("DELETE", "/api/categories/{id}"): OPS,
    ("GET", "/api/products"): PUBLIC,
    ("POST", "/api/products"): OPS,
    ("POST", "/api/products/import"): OPS,
    ("GET", "/api/products/{id}"): PUBLIC,
    ("PATCH", "/api/products/{id}"): OPS,
    ("DELETE", "/api/products/{id}"): OPS,
    ("POST", "/api/products/{id}/online"): OPS,
    ("POST", "/api/products/{id}/offline"): OPS,
    ("POST", "/api/products/{id}/stock"): OPS,
    ("GET", "/api/products/{id}/stock-movements"): STAFF,
    # payments: providers sign their callbacks; the simulator exists in development only
    ("POST", "/api/payments/{provider}/notify"): PUBLIC,
    ("POST", "/api/payments/dev/simulate"): PUBLIC,
    # the member's own cart
    ("GET", "/api/cart"): MEMBER,
    ("PATCH", "/api/cart"): MEMBER,
    ("DELETE", "/api/cart"): MEMBER,
    ("POST", "/api/cart/items"): MEMBER,
    ("PATCH", "/api/cart/items/{product_id}"): MEMBER,
    ("DELETE", "/api/cart/items/{product_id}"): MEMBER,
}


def declared_routes(app: web.Application) -> list[tuple[str, str]]:
    routes = []
    for route in app.router.routes():
        if route.method == "HEAD" or isinstance(route.resource, web.StaticResource):
            continue
        endpoint = endpoint_of(route.handler)
        assert endpoint is not None, f"{route.method} {route.resource} is not declared"
        routes.append((endpoint.method, endpoint.path))
    return routes


def concrete(path: str) -> str:
    """A path for the template, with ids that exist in no table."""
    return re.sub(r"\{[^}]+\}", "999999", path)


async def token_for(app: web.Application, caller: str, ids: dict[str, int]) -> str | None:
    if caller == "anonymous":
        return None
    kind = "member" if caller == "member" else "staff"
    subject = Subject(kind, ids[caller], (caller,), None, 0)
    tokens = await app[keys.TOKENS].open_session(subject)
    return tokens.access_token


@pytest.fixture
async def ids() -> dict[str, int]:
    found = {role: (await make_staff(f"walker_{role}", [role])).id for role in ROLES[:-1]}
    found["member"] = (await make_member("13600000000")).id
    return found


def test_every_route_is_in_the_table(app: web.Application) -> None:
    routes = set(declared_routes(app))
    missing = sorted(routes - set(EXPECTED))
    assert missing == [], f"add these routes to EXPECTED (and a policy): {missing}"
    gone = sorted(set(EXPECTED) - routes)
    assert gone == [], f"these routes are gone; take them out of EXPECTED: {gone}"


async def test_every_route_for_every_caller(
    client: TestClient[Any, Any], ids: dict[str, int]
) -> None:
    wrong: list[str] = []
    for method, path in sorted(declared_routes(client.app)):
        allowed = EXPECTED.get((method, path), frozenset())
        for caller in CALLERS:
            token = await token_for(client.app, caller, ids)
            headers = bearer(token) if token else {}
            kwargs: dict[str, Any] = {"headers": headers}
            if method in ("POST", "PUT", "PATCH"):
                kwargs["json"] = {}
            response = await client.request(method, concrete(path), **kwargs)
            refused = response.status in (401, 403)
            if caller in allowed and refused:
                wrong.append(f"{caller} {method} {path}: refused with {response.status}")
            if caller not in allowed:
                expected_status = 401 if caller == "anonymous" else 403
                if response.status != expected_status:
                    wrong.append(
                        f"{caller} {method} {path}: {response.status}, not {expected_status}"
                    )
    assert wrong == []
    assert await Member.filter(id=ids["member"]).exists()
