"""Who is acting: passed to every service call so scoping and audit need no globals."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    COORDINATOR = "coordinator"
    NURSE = "nurse"
    MONITOR = "monitor"
    PATIENT = "patient"


STAFF_ROLES = frozenset({Role.ADMIN, Role.COORDINATOR, Role.NURSE, Role.MONITOR})


@dataclass(frozen=True)
class Actor:
    """The acting user (or the system) with the scope it was granted.

    `site_ids` and `study_ids` are resolved once per request from memberships, so
    scoped queries do not re-read them.
    """

    user_id: uuid.UUID | None
    role: Role | None
    site_ids: frozenset[uuid.UUID] = field(default_factory=frozenset)
    study_ids: frozenset[uuid.UUID] = field(default_factory=frozenset)
    participant_id: uuid.UUID | None = None
    request_id: str | None = None

    @classmethod
    def system(cls, request_id: str | None = None) -> Actor:
        """The scheduler and CLI act as the system; audit records them as such."""
        return cls(user_id=None, role=None, request_id=request_id)

    def as_account(self, user_id: uuid.UUID, role: str) -> Actor:
        """Auth events are recorded as acts of the account concerned, even before log-in
        (the request's actor is then nobody)."""
        return Actor(user_id=user_id, role=Role(role), request_id=self.request_id)

    @property
    def role_name(self) -> str:
        return self.role.value if self.role else "system"
