"""A patient's part in one study at one site, identified by a subject code."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from services.crypto import EncryptedDate, EncryptedText
from services.db import Base, created_now, utcnow, uuid_pk
from services.models.study import Site, Study
from services.models.user import User


class ConsentState(StrEnum):
    """The participant's consent as other capabilities need it, kept by `consent/`:
    visits, ePRO and uploads check this, not the consent records themselves."""

    NONE = "none"
    PENDING = "pending"
    COMPLETE = "complete"
    REQUIRES_RECONSENT = "requires_reconsent"
    WITHDRAWN = "withdrawn"


class ParticipantStatus(StrEnum):
    SCREENING = "screening"
    CONSENTED = "consented"
    ENROLLED = "enrolled"
    COMPLETED = "completed"
    WITHDRAWN = "withdrawn"


_STATUS_VALUES = tuple(status.value for status in ParticipantStatus)
_CONSENT_VALUES = tuple(state.value for state in ConsentState)


class Participant(Base):
    """Name, phone and email live on the patient's `User`; address and date of birth here.

    Both are encrypted; everything else in the system refers to the participant by id
    and subject code only.
    """

    __tablename__ = "participants"
    __table_args__ = (
        UniqueConstraint("study_id", "subject_code"),
        CheckConstraint(f"status IN {_STATUS_VALUES!r}", name="status"),
        CheckConstraint(f"consent_state IN {_CONSENT_VALUES!r}", name="consent_state"),
    )

    id: Mapped[uuid_pk]
    study_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("studies.id"), index=True)
    site_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sites.id"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), unique=True)
    subject_code: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=ParticipantStatus.SCREENING.value)
    consent_state: Mapped[str] = mapped_column(String(24), default=ConsentState.NONE.value)
    contact_allowed: Mapped[bool] = mapped_column(default=True)
    baseline_date: Mapped[dt.date | None]
    address: Mapped[str | None] = mapped_column(EncryptedText("participants.address"))
    date_of_birth: Mapped[dt.date | None] = mapped_column(
        EncryptedDate("participants.date_of_birth")
    )
    created_at: Mapped[created_now]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    study: Mapped[Study] = relationship()
    site: Mapped[Site] = relationship()
    user: Mapped[User] = relationship()
