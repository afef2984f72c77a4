"""SMS reminders: the outbox every message goes through, the recipients' preferences,
and each study's SMS settings.

A message is a row planned ahead with a unique dedupe key (`visit:<id>:24h`), so
planning twice never sends twice. The dispatcher claims due rows, sends them through
the gateway outside any transaction, and records Twilio's message SID; status
callbacks then move it on. The text and its parameters (an activation code, say) are
encrypted at rest; the phone number is read from the recipient's account at sending.

The e-mail outbox sits beside it: account messages (password reset codes) for accounts
with an e-mail address, when an e-mail gateway is configured.
"""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from services.crypto import EncryptedText
from services.db import Base, UtcDateTime, created_now, utcnow, uuid_pk


class SmsStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


SMS_STATUSES = tuple(status.value for status in SmsStatus)


class SmsMessage(Base):
    __tablename__ = "sms_outbox"
    __table_args__ = (
        CheckConstraint(f"status IN {SMS_STATUSES!r}", name="status"),
        Index("ix_sms_outbox_due", "status", "next_attempt_at"),
        Index("ix_sms_outbox_user_sent", "user_id", "sent_at"),
        Index("ix_sms_outbox_participant", "participant_id", "due_at"),
    )

    id: Mapped[uuid_pk]
    dedupe_key: Mapped[str] = mapped_column(String(160), unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))  # the recipient
    participant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("participants.id"))
    study_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("studies.id"))
    template: Mapped[str] = mapped_column(String(48))
    # What the text is made of ({"code": ..., "time": ...}), as JSON, encrypted.
    params: Mapped[str] = mapped_column(EncryptedText("sms_outbox.params"))
    # What must still hold when it is sent ({"visit_id": ..., "start_at": ...}).
    relevance: Mapped[dict[str, Any]]
    due_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    status: Mapped[str] = mapped_column(String(12), default=SmsStatus.PENDING.value)
    status_reason: Mapped[str | None] = mapped_column(String(300))
    attempts: Mapped[int] = mapped_column(default=0)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    body: Mapped[str | None] = mapped_column(EncryptedText("sms_outbox.body"))
    segments: Mapped[int | None]
    twilio_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    error_code: Mapped[int | None]
    error_message: Mapped[str | None] = mapped_column(String(300))
    sent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[created_now]
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class NotificationPreference(Base):
    """A patient's or nurse's SMS settings. Quiet hours can only narrow the 08:00-21:00
    allowed window. `opted_out_at` is set by an inbound STOP (not a withdrawal from the
    study); `phone_problem` by a permanent Twilio error, for the coordinator."""

    __tablename__ = "notification_preferences"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True)
    sms_enabled: Mapped[bool] = mapped_column(default=True)
    locale: Mapped[str | None] = mapped_column(String(8))
    send_from: Mapped[str] = mapped_column(String(5), default="08:00")
    send_until: Mapped[str] = mapped_column(String(5), default="21:00")
    opted_out_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    phone_problem: Mapped[str | None] = mapped_column(String(300))
    phone_problem_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class StudySmsSettings(Base):
    """The sender name shown in every SMS of a study, who HELP points to, and the
    reminder rules (which reminders, when); defaults apply without a row."""

    __tablename__ = "study_sms_settings"

    study_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("studies.id"), primary_key=True)
    sender_name: Mapped[str] = mapped_column(String(11))
    help_contact: Mapped[str] = mapped_column(String(64))
    rules: Mapped[dict[str, Any]]
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class SmsEvent(Base):
    """Every status callback and inbound message as received (signature checked), so
    the delivery history of a message can be shown and replayed.

    `dedupe_key` is what Twilio told us, by its own identity: `inbound:<MessageSid>`,
    or `status:<MessageSid>:<MessageStatus>` (one message legitimately gets queued,
    sent, delivered: one callback each). Unique, so a signed request captured and
    replayed, or Twilio's own retry, is recognised and changes nothing, even when two
    copies arrive at once. Rows from before it was kept (and calls made without a
    SID, from inside the app) have none."""

    __tablename__ = "sms_events"
    __table_args__ = (Index("ix_sms_events_message", "message_id", "received_at"),)

    id: Mapped[uuid_pk]
    message_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("sms_outbox.id"))
    kind: Mapped[str] = mapped_column(String(16))  # status | inbound
    twilio_sid: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str | None] = mapped_column(String(16))
    error_code: Mapped[int | None]
    keyword: Mapped[str | None] = mapped_column(String(16))  # inbound: STOP, START, HELP...
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    dedupe_key: Mapped[str | None] = mapped_column(String(100), unique=True)


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
