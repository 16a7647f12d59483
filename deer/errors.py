"""Domain errors: a stable code and a message for people, nothing about HTTP.

Each error belongs to one of a few kinds; `deer.web.errors` maps a kind to an HTTP status,
the WebSocket hub will map it to its own error frame. Domains subclass the kind that fits
and give their own codes (`class OutOfStock(Conflict): code = "out_of_stock"`).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

Kind = Literal[
    "validation_error",
    "not_found",
    "unauthorized",
    "forbidden",
    "conflict",
    "rate_limited",
    "unavailable",
    "timeout",
    "internal",
]


class DeerError(Exception):
    kind: ClassVar[Kind] = "internal"
    code: str = "internal"
    default_message: ClassVar[str] = "internal error"

    def __init__(
        self, message: str | None = None, *, code: str | None = None, **details: Any
    ) -> None:
        self.message = message or self.default_message
        if code is not None:
            self.code = code
        self.details: dict[str, Any] = details
        super().__init__(self.message)


class ValidationFailed(DeerError):
    kind = "validation_error"
    code = "validation_error"
    default_message = "the request is not valid"


class NotFound(DeerError):
    kind = "not_found"
    code = "not_found"
    default_message = "not found"


class Unauthorized(DeerError):
    kind = "unauthorized"
    code = "unauthorized"
    default_message = "sign in first"


class Forbidden(DeerError):
    kind = "forbidden"
    code = "forbidden"
    default_message = "you may not do this"


class Conflict(DeerError):
    kind = "conflict"
    code = "conflict"
    default_message = "this conflicts with the current state"


class RateLimited(DeerError):
    kind = "rate_limited"
    code = "rate_limited"
    default_message = "too many requests, try again later"

    def __init__(self, message: str | None = None, *, retry_after: int, **details: Any) -> None:
        super().__init__(message, retry_after=retry_after, **details)
        self.retry_after = retry_after


class Unavailable(DeerError):
    kind = "unavailable"
    code = "unavailable"
    default_message = "a backend is unavailable, try again shortly"


class TimedOut(DeerError):
    """No answer in time, but the work was not lost: it may still complete (details say how to
    find out, e.g. a command id)."""

    kind = "timeout"
    code = "timeout"
    default_message = "no answer in time; the request may still complete"
