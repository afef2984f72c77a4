"""Accounts of staff and patients, with their site and study memberships."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import CheckConstraint, Column, ForeignKey, Index, String, Table, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from services.crypto import EncryptedText
from services.db import Base, UtcDateTime, created_now, uuid_pk
from services.models.study import Site, Study

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
