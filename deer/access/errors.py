"""Errors of policy management, each with its stable code."""

from __future__ import annotations

from deer.errors import Conflict


class PolicyExists(Conflict):
    code = "policy_exists"
    default_message = "this policy rule already exists"


class PolicyLockout(Conflict):
    code = "policy_lockout"
    default_message = "admins would no longer be allowed to manage policies"
