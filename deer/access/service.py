"""Policy management: the casbin rules admins read, add and remove at run time.

Every change is written under the policy lock (`lock_policies`) with its audit record and
reaches every process through `Policies.changed()`; a change that would stop admins from
managing the policies is refused. Nothing here knows HTTP.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from deer.access.errors import PolicyExists, PolicyLockout
from deer.access.models import PolicyRule
from deer.access.policy import AUTHENTICATED, Policies, Rule, build_enforcer
from deer.accounts.admin_common import ADMIN, Page, Paging, invalid, lock_policies, paged
from deer.accounts.audit import Actor, record_by
from deer.accounts.models import Role
from deer.errors import NotFound

# What admins must keep being allowed to do, or nobody can repair the policies any more
# (route patterns, as the auth middleware asks casbin).
POLICY_ADMIN_REQUESTS: Final = (
    ("/api/admin/policies", "GET"),
    ("/api/admin/policies", "POST"),
    ("/api/admin/policies/:id", "DELETE"),
)

Source = Literal["default", "admin"]


@dataclass(frozen=True)
class PolicyFilter:
    ptype: str | None = None
    v0: str | None = None
    source: Source | None = None
    removed: bool | None = None


def _rule_of(row: PolicyRule) -> Rule:
    return (row.ptype, row.v0, row.v1, row.v2)


def admins_manage_policies(rules: Iterable[Rule]) -> bool:
    """Whether these rules still let the admin role read, add and delete policy rules."""
    enforcer = build_enforcer(rules)
    return all(
        any(enforcer.enforce(subject, path, method) for subject in (ADMIN, AUTHENTICATED))
        for path, method in POLICY_ADMIN_REQUESTS
    )


def _keep_policy_admins(remaining: Iterable[PolicyRule]) -> None:
    if not admins_manage_policies(_rule_of(row) for row in remaining):
        raise PolicyLockout()


async def _drop_rules(rows: Iterable[PolicyRule]) -> None:
    """Delete rules admins added; keep shipped ones as removed, or start-up restores them."""
    rows = list(rows)
    shipped = [row.id for row in rows if row.source == "default"]
    added = [row.id for row in rows if row.source != "default"]
    if shipped:
        await PolicyRule.filter(id__in=shipped).update(removed=True)
    if added:
        await PolicyRule.filter(id__in=added).delete()


async def drop_rules_naming(role_code: str) -> int:
    """Drop the active rules naming a role that is being deleted, so that a later role with
    the same code does not inherit forgotten rights; how many. Call under `lock_policies()`."""
    naming = Q(v0=role_code) | Q(ptype="g", v1=role_code)
    rules = await PolicyRule.filter(naming, removed=False)
    if rules:
        remaining = await PolicyRule.filter(removed=False).exclude(
            id__in=[rule.id for rule in rules]
        )
        _keep_policy_admins(remaining)
        await _drop_rules(rules)
    return len(rules)


async def _known_subjects() -> set[str]:
    """Who a rule may name: roles, groups some `g` rule defines, every signed-in caller."""
    roles = await Role.all().values_list("code", flat=True)
    groups = await PolicyRule.filter(ptype="g", removed=False).values_list("v1", flat=True)
    return {str(code) for code in roles} | {str(group) for group in groups} | {AUTHENTICATED}


async def list_policies(paging: Paging, where: PolicyFilter) -> Page[PolicyRule]:
    query = PolicyRule.all()
    exact = {"ptype": where.ptype, "v0": where.v0, "source": where.source, "removed": where.removed}
    query = query.filter(**{name: value for name, value in exact.items() if value is not None})
    rows, total = await paged(query, paging, "id")
    return Page(rows, total, paging.page, paging.size)


async def add_policy(actor: Actor, policies: Policies, rule: Rule) -> tuple[PolicyRule, bool]:
    """Add a rule (or bring back a removed shipped one); every process applies it at once.
    Returns the row and whether it was restored rather than created."""
    ptype, v0, v1, v2 = rule
    async with in_transaction():
        await lock_policies()
        subjects = await _known_subjects()
        if v0 not in subjects:
            raise invalid("v0", f"no role or group is called {v0!r}")
        if ptype == "g" and v0 == v1:
            raise invalid("v1", "a role cannot inherit itself")
        row = await PolicyRule.get_or_none(ptype=ptype, v0=v0, v1=v1, v2=v2)
        if row is not None and not row.removed:
            raise PolicyExists(id=row.id)
        restored = row is not None
        if row is not None:
            row.removed = False
            await row.save(update_fields=["removed"])
        else:
            row = await PolicyRule.create(ptype=ptype, v0=v0, v1=v1, v2=v2, source="admin")
        await record_by(
            actor,
            "policy.add",
            "policy",
            row.id,
            ptype=ptype,
            v0=v0,
            v1=v1,
            v2=v2,
            restored=restored,
        )
    await policies.changed()
    return row, restored


async def remove_policy(actor: Actor, policies: Policies, rule_id: int) -> None:
    """Remove a rule unless admins would lose the right to manage policies."""
    async with in_transaction():
        await lock_policies()
        row = await PolicyRule.get_or_none(id=rule_id, removed=False)
        if row is None:
            raise NotFound(f"no active policy rule has the id {rule_id}")
        _keep_policy_admins(await PolicyRule.filter(removed=False).exclude(id=rule_id))
        await _drop_rules([row])
        await record_by(
            actor,
            "policy.remove",
            "policy",
            row.id,
            ptype=row.ptype,
            v0=row.v0,
            v1=row.v1,
            v2=row.v2,
            source=row.source,
        )
    await policies.changed()
