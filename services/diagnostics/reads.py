"""Reading uploads back, and checking that what is stored is still what was received.

Metadata is for the study team, the patient and monitors; the file itself only for
those who care for the participant (monitors never read file content, which may
identify the person). A file is opened (each sealed chunk authenticated,
`services/diagnostics/envelope.py`) and re-hashed whenever it is read: a download holds its last
chunk back until the hash matches, so a file altered in storage is never delivered
whole, and `verify_all` (`flask uploads verify`) checks every stored file. Each
failure is written to the audit trail as an integrity alert.
"""

from __future__ import annotations

import hashlib
import itertools
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from services.access import get_visible, require_role, visible_participants
from services.actor import Actor, Role
from services.audit import chain as audit
from services.diagnostics import envelope, upload_keys
from services.diagnostics.models import UploadKey
from services.diagnostics.storage import Storage
from services.diagnostics.uploads import visible_uploads
from services.errors import DomainError
from services.models import Participant, Upload
from services.people.participants import participant_subject

READERS = (Role.COORDINATOR, Role.PATIENT, Role.NURSE, Role.MONITOR)
DOWNLOADERS = (Role.COORDINATOR, Role.PATIENT, Role.NURSE)
MISMATCH, MISSING, TAMPERED = "mismatch", "missing", "tampered"


class IntegrityFailure(Exception):
    """Raised inside a download's body when the file does not match its hash: the
    server then aborts the connection, so the client never sees a complete body."""


class StoredFileMissing(DomainError):
    """The object behind an upload is gone. The alert written with this is kept."""

    kind = "stored-file-missing"
    keep_changes = True


@dataclass(frozen=True)
class StoredFile:
    """What a check needs of an upload; plain values, usable once its session is closed."""

    upload_id: uuid.UUID
    participant_id: uuid.UUID
    sha256: str
    size_bytes: int
    storage_key: str
    key_id: str | None = None  # None: stored before files were encrypted
    wrapped_key: bytes | None = None

    @classmethod
    def of(cls, session: Session, upload: Upload) -> StoredFile:
        key = session.get(UploadKey, upload.storage_key)
        return cls(
            upload.id,
            upload.participant_id,
            upload.sha256,
            upload.size_bytes,
            upload.storage_key,
            key.key_id if key else None,
            key.wrapped_key if key else None,
        )

    def plaintext(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """The stored bytes opened: verified chunk by chunk (`envelope.Tampered`, also
        for a data key that does not unwrap)."""
        if self.key_id is None or self.wrapped_key is None:
            yield from chunks
        else:
            yield from envelope.opened(chunks, upload_keys.unwrap(self.key_id, self.wrapped_key))


@dataclass(frozen=True)
class Finding:
    """A stored file that failed its check."""

    stored: StoredFile
    problem: str  # MISMATCH, MISSING or TAMPERED
    actual_sha256: str | None = None
    actual_size: int | None = None
    detail: str | None = None  # what failed authentication

    def describe(self) -> str:
        stored = self.stored
        if self.problem == MISSING:
            return f"MISSING  upload {stored.upload_id}: no object {stored.storage_key}"
        if self.problem == TAMPERED:
            return (
                f"TAMPERED upload {stored.upload_id} (object {stored.storage_key}): "
                f"{self.detail} after {self.actual_size} good bytes"
            )
        return (
            f"MISMATCH upload {stored.upload_id} (object {stored.storage_key}): expected "
            f"sha256 {stored.sha256} ({stored.size_bytes} bytes), found {self.actual_sha256} "
            f"({self.actual_size} bytes)"
        )


@dataclass(frozen=True)
class Verification:
    checked: int
    findings: list[Finding]
    in_clear: int = 0  # stored before files were encrypted


class _Rehash:
    """The running hash and size of a stored file being read."""

    def __init__(self, stored: StoredFile) -> None:
        self.stored = stored
        self.size = 0
        self._sha256 = hashlib.sha256()

    def update(self, chunk: bytes) -> None:
        self._sha256.update(chunk)
        self.size += len(chunk)

    def tampered(self, error: Exception) -> Finding:
        return Finding(self.stored, TAMPERED, actual_size=self.size, detail=str(error))

    def finding(self) -> Finding | None:
        actual = self._sha256.hexdigest()
        if actual == self.stored.sha256 and self.size == self.stored.size_bytes:
            return None
        return Finding(self.stored, MISMATCH, actual, self.size)


def get_upload(session: Session, actor: Actor, upload_id: uuid.UUID) -> Upload:
    require_role(actor, *READERS)
    return get_visible(session, visible_uploads(actor), upload_id, "upload")


def participant_uploads(
    session: Session, actor: Actor, participant_id: uuid.UUID, kind: str | None = None
) -> Select[Upload]:
    """A participant's uploads, newest first (a replacement before what it replaces)."""
    require_role(actor, *READERS)
    participant = get_visible(session, visible_participants(actor), participant_id, "participant")
    query = visible_uploads(actor).where(Upload.participant_id == participant.id)
    if kind is not None:
        query = query.where(Upload.kind == kind)
    return query.order_by(Upload.received_at.desc(), Upload.id)


def _subject(session: Session, participant_id: uuid.UUID) -> audit.Subject:
    return participant_subject(session.get_one(Participant, participant_id))


def record_alert(session: Session, actor: Actor, finding: Finding, detected_by: str) -> None:
    """The integrity alert, on the participant's audit chain."""
    stored = finding.stored
    after: dict[str, Any] = {
        "problem": finding.problem,
        "detected_by": detected_by,
        "storage_key": stored.storage_key,
        "expected_sha256": stored.sha256,
        "actual_sha256": finding.actual_sha256,
        "expected_size": stored.size_bytes,
        "actual_size": finding.actual_size,
    }
    if finding.detail is not None:
        after["detail"] = finding.detail
    audit.record(
        session,
        actor,
        "upload.integrity_failure",
        entity_type="upload",
        entity_id=stored.upload_id,
        subject=_subject(session, stored.participant_id),
        after=after,
    )


def download(
    session: Session,
    actor: Actor,
    storage: Storage,
    upload_id: uuid.UUID,
    on_failure: Callable[[Finding], None],
) -> tuple[Upload, Iterator[bytes]]:
    """The upload and its verified bytes, the download audited (coordinator of the
    site, the patient, a nurse of their visits; monitors and admins 403).

    The object is opened before anything is recorded, so a missing one answers an
    error now (its alert kept) rather than an aborted body. A mismatch found at the
    end is reported to `on_failure`, which runs once the request's transaction is
    over and so must write the alert in a session of its own.
    """
    require_role(actor, *DOWNLOADERS)
    upload = get_visible(session, visible_uploads(actor), upload_id, "upload")
    stored = StoredFile.of(session, upload)
    chunks = storage.open(stored.storage_key)
    try:
        first = next(chunks, b"")
    except FileNotFoundError:
        record_alert(session, actor, Finding(stored, MISSING), "download")
        raise StoredFileMissing(
            "the stored file is missing; an integrity alert was recorded"
        ) from None
    audit.record_change(
        session,
        actor,
        "upload.download",
        upload,
        subject=_subject(session, upload.participant_id),
        after={"sha256": upload.sha256, "size_bytes": upload.size_bytes},
    )
    opened = stored.plaintext(itertools.chain([first], chunks))
    return upload, verified(opened, stored, on_failure)


def verified(
    chunks: Iterable[bytes], stored: StoredFile, on_failure: Callable[[Finding], None]
) -> Iterator[bytes]:
    """The chunks (opened), re-hashed on the way. The last is held back until the hash
    is checked: on a mismatch, or a chunk failing authentication, it is never sent, and
    the failure raised ends the transfer. Nothing past the stored size is ever sent."""
    rehash = _Rehash(stored)
    held: bytes | None = None
    try:
        for chunk in chunks:
            rehash.update(chunk)
            if held is not None and rehash.size <= stored.size_bytes:
                yield held
            held = chunk
    except envelope.Tampered as error:
        finding: Finding | None = rehash.tampered(error)
    else:
        finding = rehash.finding()
    if finding is not None:
        on_failure(finding)
        raise IntegrityFailure(finding.describe())
    if held:
        yield held


def check(storage: Storage, stored: StoredFile) -> Finding | None:
    """Open one stored file (every chunk authenticated) and re-hash it: None when
    intact."""
    rehash = _Rehash(stored)
    try:
        for chunk in stored.plaintext(storage.open(stored.storage_key)):
            rehash.update(chunk)
    except FileNotFoundError:
        return Finding(stored, MISSING)
    except envelope.Tampered as error:
        return rehash.tampered(error)
    return rehash.finding()


def verify_all(session: Session, storage: Storage, actor: Actor) -> Verification:
    """Open and re-hash every file stored in this backend, recording an alert for each
    failure in the caller's transaction."""
    rows = session.execute(
        select(
            Upload.id,
            Upload.participant_id,
            Upload.sha256,
            Upload.size_bytes,
            Upload.storage_key,
            UploadKey.key_id,
            UploadKey.wrapped_key,
        )
        .outerjoin(UploadKey, UploadKey.storage_key == Upload.storage_key)
        .where(Upload.storage_backend == storage.name)
        .order_by(Upload.received_at, Upload.id)
        .execution_options(yield_per=500)
    )
    checked, in_clear, findings = 0, 0, []
    for row in rows:
        checked += 1
        stored = StoredFile(*row)
        in_clear += stored.key_id is None
        finding = check(storage, stored)
        if finding is not None:
            findings.append(finding)
    for finding in findings:
        record_alert(session, actor, finding, "verify")
    return Verification(checked, findings, in_clear)
