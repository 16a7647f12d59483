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
