"""Credentials that are not passwords: activation and reset codes, log-in sessions,
refresh tokens, and the failed-log-in counters per client address."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from services.db import Base, UtcDateTime, created_now, uuid_pk


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
