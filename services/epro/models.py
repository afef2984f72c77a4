"""ePRO: questionnaire versions, the instances a schedule derives per participant, and
the responses to them.

Responses are regulated records: never updated in place. A correction is a new row
(`version` + 1) pointing to the response it corrects, with the reason.
"""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from services.crypto import EncryptedJSON, EncryptedText
from services.db import Base, UtcDateTime, created_now, uuid_pk


class QuestionnaireStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    SUPERSEDED = "superseded"


class InstanceStatus(StrEnum):
    """`scheduled` until answered or closed; `missed` when the window (and its grace)
    closed without a response; `declined` when the participant said they would not
    answer; `cancelled` by a withdrawal or by a newer questionnaire version."""

    SCHEDULED = "scheduled"
    COMPLETED = "completed"
    DECLINED = "declined"
    MISSED = "missed"
    CANCELLED = "cancelled"


class ResponseStatus(StrEnum):
    COMPLETED = "completed"
    DECLINED = "declined"


class Timeliness(StrEnum):
    ON_TIME = "on_time"
    LATE = "late"  # received after the window closed, within the grace period


def _values(enum: type[StrEnum]) -> tuple[str, ...]:
    return tuple(member.value for member in enum)


class Questionnaire(Base):
    """One version of a questionnaire and its schedule. Frozen once published; a
    change is a new version (a new row)."""

    __tablename__ = "questionnaires"
    __table_args__ = (
        UniqueConstraint("study_id", "code", "version"),
        CheckConstraint(f"status IN {_values(QuestionnaireStatus)!r}", name="status"),
    )

    id: Mapped[uuid_pk]
    study_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("studies.id"), index=True)
    code: Mapped[str] = mapped_column(String(32))
    version: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=QuestionnaireStatus.DRAFT.value)
    title: Mapped[dict[str, Any]]  # {language: text}
    items: Mapped[list[dict[str, Any]]]
    schedule: Mapped[dict[str, Any]]
    content_sha256: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[created_now]
    published_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    published_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())


class EproInstance(Base):
    """One occasion a participant is asked to answer: its window in UTC instants,
    computed from local times in the participant's zone. `slot` names the occasion
    (the local date, or the visit), so planning twice never duplicates it."""

    __tablename__ = "epro_instances"
    __table_args__ = (
        UniqueConstraint("participant_id", "questionnaire_id", "slot"),
        CheckConstraint(f"status IN {_values(InstanceStatus)!r}", name="status"),
        CheckConstraint(
            "timeliness IS NULL OR timeliness IN ('on_time', 'late')", name="timeliness"
        ),
        CheckConstraint("closes_at > opens_at", name="window"),
        Index("ix_epro_instances_participant_opens", "participant_id", "opens_at"),
        Index("ix_epro_instances_status_closes", "status", "closes_at"),
        Index("ix_epro_instances_study_participant", "study_id", "participant_id"),
    )

    id: Mapped[uuid_pk]
    participant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("participants.id"))
    study_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("studies.id"))
    site_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sites.id"))
    questionnaire_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("questionnaires.id"))
    visit_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("visits.id"))
    slot: Mapped[str] = mapped_column(String(48))
    local_date: Mapped[dt.date]
    opens_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    closes_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    status: Mapped[str] = mapped_column(String(16), default=InstanceStatus.SCHEDULED.value)
    timeliness: Mapped[str | None] = mapped_column(String(8))
    cancel_reason: Mapped[str | None] = mapped_column(EncryptedText("epro_instances.cancel_reason"))
    created_at: Mapped[created_now]


class EproResponse(Base):
    """What the participant answered (version 1) or a staff correction of it (2, 3...).

    Device times are stored as UTC instants with the device's UTC offset beside them,
    so the wall-clock time the phone showed can be rebuilt; `received_at` is the
    server's clock.
    """

    __tablename__ = "epro_responses"
    __table_args__ = (
        UniqueConstraint("instance_id", "version"),
        CheckConstraint(f"status IN {_values(ResponseStatus)!r}", name="status"),
        CheckConstraint(f"timeliness IN {_values(Timeliness)!r}", name="timeliness"),
        CheckConstraint("originator IN ('patient', 'nurse', 'coordinator')", name="originator"),
        CheckConstraint(
            "(version = 1 AND corrects_id IS NULL) OR (version > 1 AND corrects_id IS NOT NULL)",
            name="correction_chain",
        ),
        Index("ix_epro_responses_participant", "participant_id", "received_at"),
    )

    id: Mapped[uuid_pk]
    client_id: Mapped[uuid.UUID | None] = mapped_column(unique=True)
    instance_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("epro_instances.id"))
    participant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("participants.id"))
    questionnaire_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("questionnaires.id"))
    version: Mapped[int] = mapped_column(default=1)
    corrects_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("epro_responses.id"))
    status: Mapped[str] = mapped_column(String(16))
    # Encrypted as a whole: free-text answers are typed by people, and nothing reads
    # inside the answers in SQL.
    answers: Mapped[list[dict[str, Any]]] = mapped_column(EncryptedJSON("epro_responses.answers"))
    started_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    completed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    device_utc_offset: Mapped[str | None] = mapped_column(String(6))
    device_timezone: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    clock_skew_seconds: Mapped[int | None]
    clock_skew_flag: Mapped[bool] = mapped_column(default=False)
    timeliness: Mapped[str] = mapped_column(String(8))
    originator: Mapped[str] = mapped_column(String(16))
    entered_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    visit_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("visits.id"))
    reason: Mapped[str | None] = mapped_column(EncryptedText("epro_responses.reason"))
    created_at: Mapped[created_now]
