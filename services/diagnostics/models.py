"""Remote diagnostics: files from home devices, resumable transfers in progress, and
structured device readings.

An `Upload` row exists only for a complete file whose SHA-256 matched the client's:
the bytes are written to a temporary object first and committed under an opaque key.
Uploads are never overwritten or deleted; a replacement is a new upload pointing to
the one it supersedes. Stored files are sealed with data keys of their own, kept
wrapped beside them (`UploadKey`, `services/diagnostics/upload_keys.py`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from services.crypto import EncryptedJSON, EncryptedText
from services.db import Base, UtcDateTime, created_now, uuid_pk

UPLOAD_KINDS = (
    "ecg",
    "spirometry",
    "blood_pressure",
    "glucose",
    "image",
    "wearable_export",
    "other",
)
READING_TYPES = (
    "blood_pressure",
    "heart_rate",
    "spo2",
    "glucose",
    "weight",
    "temperature",
    "fev1",
)
ORIGINATORS = ("patient", "nurse")


class Upload(Base):
    __tablename__ = "uploads"
    __table_args__ = (
        CheckConstraint(f"kind IN {UPLOAD_KINDS!r}", name="kind"),
        CheckConstraint(f"originator IN {ORIGINATORS!r}", name="originator"),
        CheckConstraint("transfer IN ('multipart', 'tus')", name="transfer"),
        CheckConstraint("size_bytes >= 0", name="size"),
        Index("ix_uploads_participant_received", "participant_id", "received_at"),
    )

    id: Mapped[uuid_pk]
    client_id: Mapped[uuid.UUID | None] = mapped_column(unique=True)
    participant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("participants.id"))
    study_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("studies.id"), index=True)
    site_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sites.id"))
    visit_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("visits.id"))
    kind: Mapped[str] = mapped_column(String(24))
    content_type: Mapped[str] = mapped_column(String(64))  # judged from the magic bytes
    # The phone's name for the file, for the download's Content-Disposition only; it
    # may hold a name, so it is encrypted like other direct identifiers.
    filename: Mapped[str | None] = mapped_column(EncryptedText("uploads.filename"))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_backend: Mapped[str] = mapped_column(String(8))
    storage_key: Mapped[str] = mapped_column(String(128), unique=True)
    captured_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    device: Mapped[dict[str, Any]]
    transfer: Mapped[str] = mapped_column(String(12))
    originator: Mapped[str] = mapped_column(String(16))
    uploaded_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    supersedes_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("uploads.id"))
    supersede_reason: Mapped[str | None] = mapped_column(EncryptedText("uploads.supersede_reason"))
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    created_at: Mapped[created_now]


class UploadWrappingKey(Base):
    """A key id whose key-encryption key (derived from DCT_ENCRYPTION_KEY, never
    stored) wraps data keys. The highest generation wraps new ones; a rotation adds a
    generation, re-wraps every data key under it and deletes the others."""

    __tablename__ = "upload_wrapping_keys"

    generation: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    created_at: Mapped[created_now]


class UploadKey(Base):
    """The data key of one stored object, wrapped. Apart from `Upload`, whose rows are
    never updated: a rotation re-wraps here. An upload without one is a file stored
    before files were encrypted."""

    __tablename__ = "upload_keys"

    storage_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    key_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("upload_wrapping_keys.key_id"), index=True
    )
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[created_now]


class TusTransfer(Base):
    """A resumable upload in progress (tus 1.0). Its bytes live in the storage
    backend's staging area until complete; then they become an `Upload`."""

    __tablename__ = "tus_transfers"
    __table_args__ = (
        CheckConstraint("offset_bytes >= 0 AND offset_bytes <= length_bytes", name="offset"),
        Index("ix_tus_transfers_expires", "expires_at"),
    )

    id: Mapped[uuid_pk]
    participant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("participants.id"))
    created_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    length_bytes: Mapped[int] = mapped_column(BigInteger)
    offset_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    # Parsed Upload-Metadata (kind, sha256, captured_at, device, visit_id, client_id,
    # supersede_reason), encrypted as a whole: the reason is free text and nothing reads
    # inside it in SQL. The filename is kept encrypted beside it.
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", EncryptedJSON("tus_transfers.metadata")
    )
    filename: Mapped[str | None] = mapped_column(EncryptedText("tus_transfers.filename"))
    upload_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("uploads.id"))
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    # The staged bytes' data key, wrapped; empty only for a transfer begun before files
    # were encrypted (migration 0010 expired those).
    key_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("upload_wrapping_keys.key_id"), index=True
    )
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[created_now]


class Reading(Base):
    """One structured measurement from a home device, in a UCUM unit. Blood pressure
    keeps systolic in `value` and diastolic in `value_2`."""

    __tablename__ = "readings"
    __table_args__ = (
        CheckConstraint(f"type IN {READING_TYPES!r}", name="type"),
        CheckConstraint(f"originator IN {ORIGINATORS!r}", name="originator"),
        Index("ix_readings_participant_measured", "participant_id", "measured_at"),
        Index("ix_readings_study_flagged", "study_id", "flagged"),
    )

    id: Mapped[uuid_pk]
    client_id: Mapped[uuid.UUID | None] = mapped_column(unique=True)
    participant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("participants.id"))
    study_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("studies.id"))
    site_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sites.id"))
    visit_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("visits.id"))
    type: Mapped[str] = mapped_column(String(24))
    value: Mapped[float]
    value_2: Mapped[float | None]
    unit: Mapped[str] = mapped_column(String(16))
    measured_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    device: Mapped[dict[str, Any]]
    flagged: Mapped[bool] = mapped_column(default=False)
    flag_reasons: Mapped[list[str]]
    originator: Mapped[str] = mapped_column(String(16))
    entered_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[created_now]


class ReadingThreshold(Base):
    """A study's alert limits for one reading type, in one unit: a reading outside
    [low, high] is flagged for the coordinator (it is still stored)."""

    __tablename__ = "reading_thresholds"
    __table_args__ = (
        CheckConstraint(f"type IN {READING_TYPES!r}", name="type"),
        CheckConstraint("low IS NULL OR high IS NULL OR low < high", name="ordered"),
    )

    study_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("studies.id"), primary_key=True)
    type: Mapped[str] = mapped_column(String(24), primary_key=True)
    component: Mapped[str] = mapped_column(String(16), primary_key=True, default="value")
    unit: Mapped[str] = mapped_column(String(16))
    low: Mapped[float | None]
    high: Mapped[float | None]
    updated_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[created_now]
