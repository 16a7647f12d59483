"""What the admin HTTP modules share: field types, strict bodies, paging, the `{id}` of a path
and who acts.

Who may call what is casbin's business (`config/policy.csv`: admins everything, managers read
users, departments and positions, staff read members); a manager sees the users of their
department subtree only. Every write is in the audit log.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Final, TypeVar

from aiohttp import web
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from deer.accounts.admin_common import Page, Paging, Ref
from deer.accounts.audit import Actor
from deer.accounts.http import origin_of
from deer.errors import NotFound
from deer.web.auth import principal_of

BIGINT_MAX: Final = 2**63 - 1
MAX_PAGE: Final = 100_000
ID: Final = "{id}"
DIGITS: Final = re.compile(r"[0-9]{1,19}")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")

T = TypeVar("T")
P = TypeVar("P", bound=BaseModel)


def _printable(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("control characters are not allowed")
    return value


def reject_null(value: object) -> object:
    if value is None:
        raise ValueError("cannot be null")
    return value


Id = Annotated[int, Field(ge=1, le=BIGINT_MAX)]
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    AfterValidator(_printable),
]
Search = Name  # a search term has the shape of a name, for now
RoleCode = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,31}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PageQuery(Strict):
    page: int = Field(default=1, ge=1, le=MAX_PAGE)
    size: int = Field(default=20, ge=1, le=100, description="at most 100")

    @property
    def paging(self) -> Paging:
        return Paging(self.page, self.size)


class AdminRef(BaseModel):
    id: int
    name: str


def actor_of(request: web.Request) -> Actor:
    return Actor(principal_of(request), origin_of(request))


def path_id(request: web.Request, name: str = "id") -> int:
    """The `{id}` (or `{<name>}`) of the path; anything but a bigint names no row (404, like a
    missing one)."""
    raw = request.match_info[name]
    if not DIGITS.fullmatch(raw) or int(raw) > BIGINT_MAX:
        raise NotFound(f"nothing has the id {raw!r}")
    return int(raw)


def ref_out(ref: Ref | None) -> AdminRef | None:
    return AdminRef(id=ref.id, name=ref.name) if ref is not None else None


def page_out(model: type[P], page: Page[T], item_out: Callable[[T], Any]) -> P:
    """A service's page as the response model `model` (`items`, `total`, `page`, `size`)."""
    return model(
        items=[item_out(item) for item in page.items],
        total=page.total,
        page=page.page,
        size=page.size,
    )
