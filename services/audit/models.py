"""The audit trail: append-only events in hash chains, and seals over the chain heads.

Events are chained per subject (a participant, else a site, a study, a user, or the
global chain) so unrelated participants do not queue behind one lock. A periodic
seal records every chain head in its own chain, so that deleting the tail of a chain
or a whole chain is detected too. Hashes are HMACs under the audit key
(services/audit/key.py), which the database never holds. The `reason` is free text
typed by people, and the before and after payloads copy what people typed (a
corrected free-text answer, a changed address): all three are encrypted at rest, and
the HMAC covers their plaintext.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from services.crypto import EncryptedJSON, EncryptedText
from services.db import Base, uuid_pk

REASON_PURPOSE = "audit_events.reason"
BEFORE_PURPOSE = "audit_events.before"
AFTER_PURPOSE = "audit_events.after"


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        UniqueConstraint("chain", "seq"),
        Index("ix_audit_events_entity", "entity_type", "entity_id"),
    )

    id: Mapped[uuid_pk]
    chain: Mapped[str] = mapped_column(String(80))
    seq: Mapped[int]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[dt.datetime] = mapped_column(index=True)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    actor_role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    entity_type: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str | None] = mapped_column(String(64))
    study_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    site_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    participant_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(EncryptedJSON(BEFORE_PURPOSE))
    after: Mapped[dict[str, Any] | None] = mapped_column(EncryptedJSON(AFTER_PURPOSE))
    reason: Mapped[str | None] = mapped_column(EncryptedText(REASON_PURPOSE))
    request_id: Mapped[str | None] = mapped_column(String(64))


class AuditChainHead(Base):
    """The last event of each chain; its row lock serialises writers of that chain only."""

    __tablename__ = "audit_chain_heads"

    chain: Mapped[str] = mapped_column(String(80), primary_key=True)
    seq: Mapped[int] = mapped_column(default=0)
    hash: Mapped[str] = mapped_column(String(64))


class AuditSeal(Base):
    """The chain heads at one moment, in the seal chain. The one `key_cutover` seal was
    written when the audit key was introduced: the events and seals up to it were
    hashed with plain SHA-256, and this keyed seal vouches for them."""

    __tablename__ = "audit_seals"

    id: Mapped[uuid_pk]
    seq: Mapped[int] = mapped_column(unique=True)
    sealed_at: Mapped[dt.datetime]
    heads: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    key_cutover: Mapped[bool] = mapped_column(default=False)
