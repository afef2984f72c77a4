"""Credentials that are not passwords: activation codes, log-in sessions, refresh tokens."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from services.db import Base, created_now, uuid_pk


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
