"""People: accounts of staff and patients with their site and study memberships, a
patient's part in one study at one site (identified by a subject code), and the
credentials that are not passwords (activation and reset codes, log-in sessions,
refresh tokens, failed-log-in counters per client address).
"""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    String,
    Table,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from services.crypto import EncryptedDate, EncryptedText
from services.db import Base, UtcDateTime, created_now, utcnow, uuid_pk
from services.studies.models import Site, Study

ROLE_VALUES = ("admin", "coordinator", "nurse", "monitor", "patient")

user_sites = Table(
    "user_sites",
    Base.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("site_id", ForeignKey("sites.id"), primary_key=True),
)

user_studies = Table(
    "user_studies",
    Base.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("study_id", ForeignKey("studies.id"), primary_key=True),
)


class User(Base):
    """One person who logs in. Direct identifiers are encrypted; look-ups go through
    the `*_index` blind indexes."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(f"role IN {ROLE_VALUES!r}", name="role"),
        # A patient without an email logs in with their phone, so that phone must be unique.
        Index(
            "uq_users_login_phone",
            "phone_index",
            unique=True,
            sqlite_where=text("role = 'patient' AND email_index IS NULL"),
            postgresql_where=text("role = 'patient' AND email_index IS NULL"),
        ),
    )

    id: Mapped[uuid_pk]
    role: Mapped[str] = mapped_column(String(16))
    full_name: Mapped[str] = mapped_column(EncryptedText("users.full_name"))
    email: Mapped[str | None] = mapped_column(EncryptedText("users.email"))
    email_index: Mapped[str | None] = mapped_column(String(64), unique=True)
    phone: Mapped[str | None] = mapped_column(EncryptedText("users.phone"))
    phone_index: Mapped[str | None] = mapped_column(String(64), index=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    locale: Mapped[str] = mapped_column(String(8))
    timezone: Mapped[str] = mapped_column(String(64))
    is_active: Mapped[bool] = mapped_column(default=True)
    failed_logins: Mapped[int] = mapped_column(default=0)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    # How the current password came to be (activation, self_reset, staff_reset, change)
    # and when: a signature shortly after a staff-influenced one is held (consent.signing).
    password_set_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    password_set_via: Mapped[str | None] = mapped_column(String(16))
    # A staff member changed the phone or email: a reset delivered there soon after counts
    # as staff-influenced, since the code may have gone to the staff member.
    contact_changed_by_staff_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[created_now]

    sites: Mapped[list[Site]] = relationship(secondary=user_sites, order_by=Site.code)
    studies: Mapped[list[Study]] = relationship(secondary=user_studies, order_by=Study.code)

    @property
    def activated(self) -> bool:
        return self.password_hash is not None

    @property
    def site_ids(self) -> list[uuid.UUID]:
        return [site.id for site in self.sites]

    @property
    def study_ids(self) -> list[uuid.UUID]:
        return [study.id for study in self.studies]


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


class ActivationCode(Base):
    """A single-use code that lets a new account set its first password. Only its hash is kept."""

    __tablename__ = "activation_codes"

    id: Mapped[uuid_pk]
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[created_now]
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]


class AuthSession(Base):
    """One log-in: the family of every refresh token rotated from it.

    Access tokens carry the session id, so revoking the session (log-out, reuse of a
    refresh token) stops its access tokens too.
    """

    __tablename__ = "auth_sessions"

    id: Mapped[uuid_pk]
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[created_now]
    expires_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(String(32))


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"

    jti: Mapped[uuid_pk]
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("auth_sessions.id", ondelete="CASCADE"), index=True
    )
    issued_at: Mapped[created_now]
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]


class PasswordResetCode(Base):
    """A single-use code that lets an activated account choose a new password. It goes
    only to the account holder (SMS or email); only its hash is kept. `requested_by_id`
    is the staff member who triggered it, or None when the holder asked."""

    __tablename__ = "password_reset_codes"

    id: Mapped[uuid_pk]
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    requested_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    channel: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[created_now]
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]


class LoginLockout(Base):
    """Failed log-ins of one account from one client address (a keyed hash of it).

    Locking per pair means an attacker elsewhere cannot lock the holder out; the
    account-wide count on `users.failed_logins` only raises alerts."""

    __tablename__ = "login_lockouts"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    client_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    updated_at: Mapped[created_now]
