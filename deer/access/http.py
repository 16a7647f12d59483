"""Policy endpoints: the casbin rules admins read, add and remove at run time.

Every change reaches every process within a second (`Policies.changed()`); a change that
would stop admins from managing the policies is refused.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Final, Literal

from aiohttp import web
from pydantic import BaseModel, Field, StringConstraints, ValidationInfo, field_validator

from deer import keys
from deer.access import service
from deer.access.models import PolicyRule
from deer.access.policy import route_pattern
from deer.accounts.admin_common_http import (
    PageQuery,
    RoleCode,
    Strict,
    actor_of,
    page_out,
    path_id,
)
from deer.web.api import Api

api = Api(tags=["access"])

ID: Final = "{id}"
METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE")
# keyMatch2 patterns: literal segments or `:name` ones, optionally ending in `/*`. Dots and
# other regular-expression characters are refused: casbin would read them as a regex.
_SEGMENT: Final = r"(?:[A-Za-z0-9_\-]+|:[A-Za-z_][A-Za-z0-9_]*)"
PATH_PATTERN: Final = re.compile(rf"/(?:{_SEGMENT}/)*(?:{_SEGMENT}|\*)")


def _check_methods(value: str) -> str:
    """`.*` (every method) or methods joined by `|`, e.g. `GET|POST`."""
    if value == ".*":
        return value
    methods = value.split("|")
    unknown = [method for method in methods if method not in METHODS]
    if unknown:
        raise ValueError(f"methods are `.*` or some of {'|'.join(METHODS)} joined by `|`")
    if len(set(methods)) != len(methods):
        raise ValueError("a method is listed twice")
    return value


class PolicyQuery(PageQuery):
    ptype: Literal["p", "g"] | None = None
    v0: RoleCode | None = Field(default=None, description="the role (subject) of the rule")
    source: Literal["default", "admin"] | None = None
    removed: bool | None = Field(default=None, description="removed shipped rules are kept")


class PolicyIn(Strict):
    ptype: Literal["p", "g"] = Field(description="p: a permission; g: a role inherits another")
    v0: RoleCode = Field(description="the role (or `authenticated`: every signed-in caller)")
    v1: Annotated[str, StringConstraints(min_length=1, max_length=256)] = Field(
        description="p: a path pattern (`/api/admin/users/:id`, `/api/crm/*`); g: a role"
    )
    v2: Annotated[str, StringConstraints(max_length=128)] = Field(
        default="", description="p: methods, `GET|POST` or `.*`; g: empty"
    )

    @field_validator("v1")
    @classmethod
    def _object(cls, value: str, info: ValidationInfo) -> str:
        ptype = info.data.get("ptype")
        if ptype == "p" and not PATH_PATTERN.fullmatch(value):
            raise ValueError(
                "a path pattern: `/`-separated names or `:params`, optionally ending in `/*`"
            )
        if ptype == "g" and not re.fullmatch(r"[a-z][a-z0-9_]{1,31}", value):
            raise ValueError("a role code: 2–32 of a-z, 0-9 and `_`, starting with a letter")
        return value

    @field_validator("v2")
    @classmethod
    def _action(cls, value: str, info: ValidationInfo) -> str:
        ptype = info.data.get("ptype")
        if ptype == "p":
            return _check_methods(value)
        if ptype == "g" and value:
            raise ValueError("must be empty for a g rule")
        return value


class PolicyOut(BaseModel):
    id: int
    ptype: str
    v0: str
    v1: str
    v2: str
    source: str = Field(description="default: shipped in config/policy.csv; admin: added here")
    removed: bool = Field(description="a shipped rule an admin removed (start-up keeps it off)")
    created_at: dt.datetime


class PolicyPage(BaseModel):
    items: list[PolicyOut]
    total: int
    page: int
    size: int


class CheckQuery(Strict):
    role: RoleCode
    path: Annotated[str, StringConstraints(pattern=r"^/[^\s]{0,255}$")] = Field(
        description="a route pattern (`/api/admin/users/{id}` or `/api/admin/users/:id`)"
    )
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


class PolicyCheck(BaseModel):
    allowed: bool


def policy_out(row: PolicyRule) -> PolicyOut:
    return PolicyOut(
        id=row.id,
        ptype=row.ptype,
        v0=row.v0,
        v1=row.v1,
        v2=row.v2,
        source=row.source,
        removed=row.removed,
        created_at=row.created_at,
    )


@api.get(
    "/api/admin/policies",
    summary="Policy rules (shipped and added), paged",
    query=PolicyQuery,
    response=PolicyPage,
)
async def list_policies(request: web.Request, query: PolicyQuery) -> PolicyPage:
    where = service.PolicyFilter(
        ptype=query.ptype, v0=query.v0, source=query.source, removed=query.removed
    )
    page = await service.list_policies(query.paging, where)
    return page_out(PolicyPage, page, policy_out)


@api.post(
    "/api/admin/policies",
    summary="Add a rule (or bring back a removed shipped one); applies in every process",
    body=PolicyIn,
    response=PolicyOut,
    status=201,
    errors=(409,),
)
async def add_policy(request: web.Request, body: PolicyIn) -> PolicyOut:
    rule = (body.ptype, body.v0, body.v1, body.v2)
    row, _ = await service.add_policy(actor_of(request), request.app[keys.POLICIES], rule)
    return policy_out(row)


@api.delete(
    f"/api/admin/policies/{ID}",
    summary="Remove a rule (a shipped one stays listed as removed); applies in every process",
    status=204,
    errors=(404, 409),
)
async def remove_policy(request: web.Request) -> web.Response:
    await service.remove_policy(actor_of(request), request.app[keys.POLICIES], path_id(request))
    return web.Response(status=204)


@api.get(
    "/api/admin/policies/check",
    summary="Whether a role may call a method on a route under the rules in force",
    query=CheckQuery,
    response=PolicyCheck,
)
async def check_policy(request: web.Request, query: CheckQuery) -> PolicyCheck:
    route = route_pattern(query.path)
    allowed = request.app[keys.POLICIES].allows((query.role,), route, query.method)
    return PolicyCheck(allowed=allowed)
