"""Password hashing (argon2id) and the minimum policy. Hashes never leave the service."""

from __future__ import annotations

from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from deer.errors import ValidationFailed

MIN_LENGTH: Final = 8
MAX_LENGTH: Final = 128
_hasher: Final = PasswordHasher()


class WeakPassword(ValidationFailed):
    code = "weak_password"


def check_policy(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"the password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"the password may have at most {MAX_LENGTH} characters")
    if password.isdigit():
        raise WeakPassword("the password cannot be only digits")


def hash_password(password: str) -> str:
    check_policy(password)
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
