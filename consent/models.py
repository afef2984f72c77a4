"""eConsent records: document versions, consent discussions, consents and signatures.

Signatures are append-only (a database trigger on PostgreSQL refuses edits); every
other change to a consent is a new state recorded in the audit trail.
"""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from services.crypto import EncryptedBytes, EncryptedText
from services.db import Base, UtcDateTime, created_now, uuid_pk


class DocumentStatus(StrEnum):
    DRAFT = "draft"
    APPROVED = "approved"
    SUPERSEDED = "superseded"


class SignerRole(StrEnum):
    PARTICIPANT = "participant"
    LAR = "legally_authorised_representative"
    WITNESS = "impartial_witness"
    INVESTIGATOR = "investigator"


class ConsentStatus(StrEnum):
    PENDING_COUNTERSIGN = "pending_countersign"
    COMPLETE = "complete"
    WITHDRAWN = "withdrawn"
    SUPERSEDED = "superseded"
    REQUIRES_RECONSENT = "requires_reconsent"


def _values(enum: type[StrEnum]) -> tuple[str, ...]:
    return tuple(member.value for member in enum)


class ConsentDocument(Base):
    """One version of the consent text in one language. Frozen once approved."""

    __tablename__ = "consent_documents"
    __table_args__ = (
        UniqueConstraint("study_id", "language", "version"),
        CheckConstraint(f"status IN {_values(DocumentStatus)!r}", name="status"),
    )

    id: Mapped[uuid_pk]
    study_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("studies.id"), index=True)
    language: Mapped[str] = mapped_column(String(8))
    version: Mapped[int]
    title: Mapped[str] = mapped_column(String(300))
    body_markdown: Mapped[str] = mapped_column(Text)
    content_sha256: Mapped[str] = mapped_column(String(64))
    signer_roles: Mapped[list[str]]
    optional_clauses: Mapped[list[dict[str, Any]]]
    quiz: Mapped[list[dict[str, Any]]]
    quiz_pass_mark: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(16), default=DocumentStatus.DRAFT.value)
    ethics_reference: Mapped[str | None] = mapped_column(String(200))
    approved_on: Mapped[dt.date | None]
    effective_from: Mapped[dt.date | None]
    requires_reconsent: Mapped[bool] = mapped_column(default=False)
    approved_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[created_now]


class ConsentDiscussion(Base):
    """The consent interview with the investigating team, required before signing."""

    __tablename__ = "consent_discussions"
    __table_args__ = (CheckConstraint("mode IN ('in_person', 'video', 'phone')", name="mode"),)

    id: Mapped[uuid_pk]
    participant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("participants.id"), index=True)
    mode: Mapped[str] = mapped_column(String(16))
    held_at: Mapped[dt.datetime]
    notes: Mapped[str | None] = mapped_column(EncryptedText("consent_discussions.notes"))
    # Who must sign beside the participant: a representative signs instead of them,
    # an impartial witness signs too when they cannot read.
    participant_can_read: Mapped[bool] = mapped_column(default=True)
    lar_name: Mapped[str | None] = mapped_column(EncryptedText("consent_discussions.lar_name"))
    witness_name: Mapped[str | None] = mapped_column(
        EncryptedText("consent_discussions.witness_name")
    )
    recorded_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[created_now]


class Consent(Base):
    """A participant's consent to one document version, built up by its signatures."""

    __tablename__ = "consents"
    __table_args__ = (
        UniqueConstraint("participant_id", "document_id"),
        CheckConstraint(f"status IN {_values(ConsentStatus)!r}", name="status"),
    )

    id: Mapped[uuid_pk]
    participant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("participants.id"), index=True)
    document_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consent_documents.id"), index=True)
    status: Mapped[str] = mapped_column(String(24))
    clause_choices: Mapped[dict[str, Any]]
    withdrawn_clauses: Mapped[dict[str, Any]]
    contact_withdrawn_at: Mapped[dt.datetime | None]
    completed_at: Mapped[dt.datetime | None]
    withdrawn_at: Mapped[dt.datetime | None]
    withdrawal_reason: Mapped[str | None] = mapped_column(
        EncryptedText("consents.withdrawal_reason")
    )
    # Encrypted at rest (it prints the names of everyone who signed); `pdf_sha256`
    # is the hash of the plaintext the participant downloads.
    pdf: Mapped[bytes | None] = mapped_column(EncryptedBytes("consents.pdf"))
    pdf_sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[created_now]

    document: Mapped[ConsentDocument] = relationship()
    signatures: Mapped[list[ConsentSignature]] = relationship(
        order_by="ConsentSignature.signed_at", back_populates="consent"
    )


class ConsentSignature(Base):
    """The signature manifestation (21 CFR 11.50): printed name, time, meaning, and the
    exact document signed. `binding` is a keyed hash over all of it and the consent
    and document ids, so a record edited or moved to another consent fails
    verification."""

    __tablename__ = "consent_signatures"
    __table_args__ = (
        UniqueConstraint("consent_id", "signer_role"),
        CheckConstraint(f"signer_role IN {_values(SignerRole)!r}", name="signer_role"),
    )

    id: Mapped[uuid_pk]
    consent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consents.id"), index=True)
    participant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("participants.id"), index=True)
    document_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consent_documents.id"))
    document_version: Mapped[int]
    document_sha256: Mapped[str] = mapped_column(String(64))
    signer_role: Mapped[str] = mapped_column(String(40))
    signer_user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    printed_name: Mapped[str] = mapped_column(EncryptedText("consent_signatures.printed_name"))
    meaning: Mapped[str] = mapped_column(String(200))
    signed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    client_address: Mapped[str | None] = mapped_column(
        EncryptedText("consent_signatures.client_address")
    )
    user_agent: Mapped[str | None] = mapped_column(String(500))
    clause_choices: Mapped[dict[str, Any] | None]
    signature_image: Mapped[str | None] = mapped_column(
        EncryptedText("consent_signatures.signature_image")
    )
    # Set when the signer's password came through a staff-issued code shortly before
    # (21 CFR 11.300(c)): shown on every rendering of the manifestation, and bound.
    credential_note: Mapped[str | None] = mapped_column(String(300))
    binding: Mapped[str] = mapped_column(String(64))

    consent: Mapped[Consent] = relationship(back_populates="signatures")
