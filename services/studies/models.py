"""Studies and their sites: the tenants that scope every other record."""

from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from services.db import Base, created_now, uuid_pk


class Study(Base):
    __tablename__ = "studies"

    id: Mapped[uuid_pk]
    code: Mapped[str] = mapped_column(String(32), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    languages: Mapped[list[str]]
    default_timezone: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[created_now]

    sites: Mapped[list[Site]] = relationship(back_populates="study", order_by="Site.code")


class Site(Base):
    __tablename__ = "sites"
    __table_args__ = (UniqueConstraint("study_id", "code"),)

    id: Mapped[uuid_pk]
    study_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("studies.id"), index=True)
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(300))
    country: Mapped[str] = mapped_column(String(2))
    timezone: Mapped[str] = mapped_column(String(64))
    # Next number for subject codes at this site; incremented under a row lock.
    next_subject_number: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[created_now]

    study: Mapped[Study] = relationship(back_populates="sites")
