"""Account operations shared by the CLI and (later) the HTTP API."""

from __future__ import annotations

from typing import Final

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from deer.accounts.models import Role, User, UserStatus
from deer.accounts.passwords import hash_password
from deer.errors import Conflict

BUILTIN_ROLES: Final = {
    "admin": "管理员",
    "sales_manager": "销售经理",
    "sales": "销售",
    "ops": "运营",
    "member": "会员",
}


async def ensure_builtin_roles() -> dict[str, Role]:
    """Create the default roles once; safe to run concurrently and repeatedly."""
    roles: dict[str, Role] = {}
    for code, name in BUILTIN_ROLES.items():
        role, _ = await Role.get_or_create(code=code, defaults={"name": name, "builtin": True})
        roles[code] = role
    return roles


async def create_admin(username: str, password: str, name: str, mobile: str | None) -> User:
    password_hash = hash_password(password)  # checks the policy before touching the database
    roles = await ensure_builtin_roles()
    try:
        async with in_transaction():
            user = await User.create(
                username=username,
                password_hash=password_hash,
                name=name,
                mobile=mobile,
                status=UserStatus.ACTIVE,
            )
            await user.roles.add(roles["admin"])
    except IntegrityError:  # the unique indexes decide; the messages say which one
        if await User.filter(username=username).exists():
            raise Conflict(
                f"a user named {username!r} already exists", code="username_taken"
            ) from None
        raise Conflict(f"the mobile {mobile} is already in use", code="mobile_taken") from None
    return user
