"""Domain errors. `api/errors.py` maps each to one HTTP status as problem+json."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class DomainError(Exception):
    """Base of every rule violation a caller can act on.

    `keep_changes` marks errors whose side effects must survive the rollback that
    normally follows an error (a failed log-in counts towards the lockout).
    """

    status = 400
    title = "Bad Request"  # the HTTP reason phrase, as for errors raised by the framework
    kind: str | None = None  # names the problem type when it is more specific than the status
    keep_changes = False

    def __init__(self, detail: str, *, errors: Mapping[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = dict(errors) if errors else None


class Invalid(DomainError):
    status = 422
    title = "Unprocessable Entity"


class Unauthenticated(DomainError):
    status = 401
    title = "Unauthorized"
    keep_changes = True


class Forbidden(DomainError):
    status = 403
    title = "Forbidden"


class NotFound(DomainError):
    status = 404
    title = "Not Found"


class Conflict(DomainError):
    status = 409
    title = "Conflict"


class TooManyAttempts(DomainError):
    """The account is locked after repeated failed log-ins."""

    status = 429
    title = "Too Many Requests"
    kind = "account-locked"
    keep_changes = True

    def __init__(self, detail: str, *, retry_after_seconds: int) -> None:
        super().__init__(detail)
        self.retry_after_seconds = retry_after_seconds


class TooLarge(DomainError):
    status = 413
    title = "Content Too Large"


class UnsupportedType(DomainError):
    status = 415
    title = "Unsupported Media Type"
