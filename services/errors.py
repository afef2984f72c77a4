"""Domain errors: what rule a request broke, in the domain's words. They carry no HTTP
status; `api/errors.py` maps each class to one and answers with problem+json."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class DomainError(Exception):
    """Base of every rule violation a caller can act on.

    `keep_changes` marks errors whose side effects must survive the rollback that
    normally follows an error (a failed log-in counts towards the lockout).
    """

    kind: str | None = None  # names the problem type when it is more specific than the status
    keep_changes = False

    def __init__(self, detail: str, *, errors: Mapping[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = dict(errors) if errors else None


class Invalid(DomainError):
    """A field or the request as a whole breaks a rule; `errors` says which."""


class Unauthenticated(DomainError):
    """No valid credentials: a failed log-in still counts towards the lock-out."""

    keep_changes = True


class Forbidden(DomainError):
    """The actor's role or scope does not allow this."""


class NotFound(DomainError):
    """No such object, or one the actor may not know exists."""


class Conflict(DomainError):
    """The request is well formed but the object's state refuses it now."""


class TooManyAttempts(DomainError):
    """The account is locked after repeated failed log-ins."""

    kind = "account-locked"
    keep_changes = True

    def __init__(self, detail: str, *, retry_after_seconds: int) -> None:
        super().__init__(detail)
        self.retry_after_seconds = retry_after_seconds


class TooLarge(DomainError):
    """A body or file over its limit."""


class UnsupportedType(DomainError):
    """A file or body of a type that is not accepted."""


class Unavailable(DomainError):
    """A part the service needs (the database) does not answer."""
