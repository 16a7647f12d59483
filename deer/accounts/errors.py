"""Errors of sign-in and sessions, each with its stable code."""

from __future__ import annotations

from deer.errors import Conflict, Forbidden, Unauthorized, ValidationFailed


class TokenMissing(Unauthorized):
    code = "unauthorized"
    default_message = "sign in first: send `Authorization: Bearer <access token>`"


class TokenInvalid(Unauthorized):
    code = "token_invalid"
    default_message = "the token is not valid"


class TokenExpired(Unauthorized):
    code = "token_expired"
    default_message = "the token has expired: refresh it or sign in again"


class TokenRevoked(Unauthorized):
    code = "token_revoked"
    default_message = "this session has ended: sign in again"


class RefreshReused(Unauthorized):
    code = "refresh_reused"
    default_message = (
        "this refresh token was already used: every session of this sign-in has been ended"
    )


class BadCredentials(Unauthorized):
    code = "bad_credentials"
    default_message = "wrong account or password"


class AccountDisabled(Forbidden):
    code = "account_disabled"
    default_message = "this account is disabled"


class MobileTaken(Conflict):
    code = "mobile_taken"
    default_message = "this mobile number is already registered"


class WrongPassword(ValidationFailed):
    code = "wrong_password"
    default_message = "the current password is wrong"


# --- administration ----------------------------------------------------------------------


class UsernameTaken(Conflict):
    code = "username_taken"
    default_message = "this username is already taken"


class CannotDisableSelf(Conflict):
    code = "cannot_disable_self"
    default_message = "you cannot disable your own account"


class CannotDemoteSelf(Conflict):
    code = "cannot_demote_self"
    default_message = "you cannot take the admin role from yourself"


class LastAdmin(Conflict):
    code = "last_admin"
    default_message = "this is the last active admin: keep at least one"


class UnknownRole(ValidationFailed):
    code = "unknown_role"
    default_message = "no role has this code"


class DepartmentCycle(Conflict):
    code = "department_cycle"
    default_message = "a department cannot move under itself or one of its subdepartments"


class DepartmentNotEmpty(Conflict):
    code = "department_not_empty"
    default_message = "the department still has subdepartments, users or positions"


class DepartmentNameTaken(Conflict):
    code = "department_name_taken"
    default_message = "another department of the same parent has this name"


class PositionInUse(Conflict):
    code = "position_in_use"
    default_message = "users still hold this position"


class RoleExists(Conflict):
    code = "role_exists"
    default_message = "a role with this code already exists"


class BuiltinRole(Conflict):
    code = "builtin_role"
    default_message = "built-in roles cannot be deleted"


class RoleInUse(Conflict):
    code = "role_in_use"
    default_message = "users still hold this role"


class AdminRoleReserved(Forbidden):
    code = "admin_role_reserved"
    default_message = "only admins may grant or take the admin role"


# --- members -------------------------------------------------------------------------------


class InsufficientPoints(Conflict):
    code = "insufficient_points"
    default_message = "the member does not have that many points"


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"
    default_message = "this idempotency key was already used for a different request"


class NotNoteAuthor(Forbidden):
    code = "not_note_author"
    default_message = "only the note's author or an admin may delete it"
