"""The e-mail outbox: account messages (password reset codes) for accounts with an
e-mail address, when an e-mail gateway is configured.

A row is written in the transaction that issues the code and sent by the scheduler's
`dispatch-email` job, so a rolled-back request sends nothing and a crash loses
nothing. The parameters (the code) are encrypted at rest; the address is read from
the account when the message is sent.
"""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from services.crypto import EncryptedText
from services.db import Base, UtcDateTime, created_now, uuid_pk


class EmailStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


EMAIL_STATUSES = tuple(status.value for status in EmailStatus)


class EmailMessage(Base):
    __tablename__ = "email_outbox"
    __table_args__ = (
        CheckConstraint(f"status IN {EMAIL_STATUSES!r}", name="status"),
        Index("ix_email_outbox_due", "status", "next_attempt_at"),
    )

    id: Mapped[uuid_pk]
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    template: Mapped[str] = mapped_column(String(48))
    params: Mapped[str] = mapped_column(EncryptedText("email_outbox.params"))
    # The code the message carries: once it is used or replaced, the message is moot.
    password_reset_code_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("password_reset_codes.id")
    )
    status: Mapped[str] = mapped_column(String(12), default=EmailStatus.PENDING.value)
    status_reason: Mapped[str | None] = mapped_column(String(300))
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    created_at: Mapped[created_now]
    sent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
