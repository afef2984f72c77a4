"""Home-nurse visits: the protocol's schedule, planned visits, nurses' availability
and their delegation by the investigator."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from services.crypto import EncryptedText
from services.db import Base, UtcDateTime, created_now, uuid_pk
from services.people.models import Participant, User


class VisitStatus(StrEnum):
    PLANNED = "planned"
    SCHEDULED = "scheduled"
    CONFIRMED = "confirmed"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    MISSED = "missed"
    CANCELLED = "cancelled"


# A nurse is busy for a visit in these states; the database refuses overlaps among them.
BUSY_STATUSES = (VisitStatus.SCHEDULED, VisitStatus.CONFIRMED, VisitStatus.IN_PROGRESS)


class VisitDefinition(Base):
    """One row of the schedule of assessments: Day 14 ±2, at home, 60 minutes."""

    __tablename__ = "visit_definitions"
    __table_args__ = (
        UniqueConstraint("study_id", "code"),
        CheckConstraint("location IN ('home', 'site')", name="location"),
    )

    id: Mapped[uuid_pk]
    study_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("studies.id"), index=True)
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    day: Mapped[int]
    window_before: Mapped[int]
    window_after: Mapped[int]
    duration_minutes: Mapped[int]
    location: Mapped[str] = mapped_column(String(8))
    procedures: Mapped[list[str]]
    created_at: Mapped[created_now]


class Visit(Base):
    """A participant's planned visit. Window dates are calendar days in the
    participant's time zone; booked times are UTC instants.

    `busy_until` is the end plus the travel buffer (home visits): two bookings of one
    nurse conflict when their [start_at, busy_until) ranges overlap. On PostgreSQL an
    exclusion constraint over that range enforces it under any concurrency.
    """

    __tablename__ = "visits"
    __table_args__ = (
        UniqueConstraint("participant_id", "definition_id"),
        CheckConstraint(
            "status IN ('planned', 'scheduled', 'confirmed', 'in_progress', 'completed', "
            "'missed', 'cancelled')",
            name="status",
        ),
        Index("ix_visits_nurse_start", "nurse_id", "start_at"),
        Index("ix_visits_window_open", "status", "window_end"),
    )

    id: Mapped[uuid_pk]
    participant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("participants.id"), index=True)
    study_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("studies.id"), index=True)
    site_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sites.id"), index=True)
    definition_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("visit_definitions.id"))
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    location: Mapped[str] = mapped_column(String(8))
    procedures: Mapped[list[str]]
    duration_minutes: Mapped[int]
    target_date: Mapped[dt.date]
    window_start: Mapped[dt.date]
    window_end: Mapped[dt.date]
    status: Mapped[str] = mapped_column(String(16), default=VisitStatus.PLANNED.value)
    nurse_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    start_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    end_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    busy_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    deviation_reason: Mapped[str | None] = mapped_column(EncryptedText("visits.deviation_reason"))
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    checked_in_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    check_in_location: Mapped[str | None] = mapped_column(EncryptedText("visits.check_in_location"))
    checked_out_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    completed_procedures: Mapped[list[str] | None]
    notes: Mapped[str | None] = mapped_column(EncryptedText("visits.notes"))
    cancel_reason: Mapped[str | None] = mapped_column(EncryptedText("visits.cancel_reason"))
    created_at: Mapped[created_now]

    participant: Mapped[Participant] = relationship()
    nurse: Mapped[User | None] = relationship(foreign_keys=[nurse_id])


class NurseProfile(Base):
    """Working hours are wall-clock times in the nurse's own zone, per weekday
    (0 = Monday): [{"weekday": 0, "start": "08:00", "end": "16:00"}, ...]."""

    __tablename__ = "nurse_profiles"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True)
    timezone: Mapped[str] = mapped_column(String(64))
    weekly_hours: Mapped[list[dict[str, Any]]]
    calendar_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    updated_at: Mapped[created_now]


class NurseTimeOff(Base):
    __tablename__ = "nurse_time_off"
    __table_args__ = (CheckConstraint("end_at > start_at", name="ordered"),)

    id: Mapped[uuid_pk]
    nurse_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    start_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    end_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class Delegation(Base):
    """The investigator's delegation of home visits to a nurse for one study (ICH E6
    4.1.5), valid while the nurse's training is."""

    __tablename__ = "delegations"
    __table_args__ = (UniqueConstraint("nurse_id", "study_id"),)

    id: Mapped[uuid_pk]
    nurse_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    study_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("studies.id"))
    delegated_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    training_valid_until: Mapped[dt.date]
    created_at: Mapped[created_now]
