"""Uploads from home devices: the checks before a byte is stored, the hashing writer
the bytes stream through, and the record that makes a complete, verified file visible.

Both transfers use this: the simple multipart upload and the resumable tus one.

1. `prepare` checks everything the metadata allows before the body is read: who
   uploads for whom, consent, the visit, the upload superseded. A replayed
   `client_id` answers the original upload instead.
2. The body streams through a `HashingWriter` into a temporary object. It stops with
   413 as soon as the kind's size limit is crossed and keeps the first bytes for the
   type check.
3. `finish` refuses a SHA-256 other than the client's (422) or a type the kind does
   not accept (415), commits the object and records the upload.

A caller discards the temporary object on any error, so nothing is kept.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Select, false, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services import validation
from services.access import get_visible, require_role, visible_participants
from services.actor import Actor, Role
from services.audit import chain as audit
from services.diagnostics import filetypes
from services.diagnostics.storage import Staged
from services.diagnostics.zip_inspection import ZipInspector, ZipLimits
from services.errors import Conflict, Forbidden, Invalid, TooLarge
from services.models import UPLOAD_KINDS, Participant, Upload, Visit, VisitStatus
from services.people.consent_gate import require_current_consent
from services.people.participants import participant_subject

CLOCK_TOLERANCE = dt.timedelta(minutes=5)
UPLOADERS = (Role.PATIENT, Role.NURSE)
_SHA256 = re.compile(r"[0-9a-f]{64}")
# A visit a nurse may attach a file to: while there, or just after leaving.
_VISIT_OPEN = (VisitStatus.IN_PROGRESS.value, VisitStatus.COMPLETED.value)


@dataclass(frozen=True)
class UploadMeta:
    """What the client says about the file. Nurses name the participant; a patient's
    uploads are their own."""

    kind: str
    sha256: str
    captured_at: dt.datetime
    device: dict[str, Any] = field(default_factory=dict)
    participant_id: uuid.UUID | None = None
    visit_id: uuid.UUID | None = None
    client_id: uuid.UUID | None = None
    filename: str | None = None
    supersedes_id: uuid.UUID | None = None
    supersede_reason: str | None = None


@dataclass(frozen=True)
class Target:
    """Whose upload this is, once the checks have passed."""

    participant: Participant
    visit_id: uuid.UUID | None
    originator: str


@dataclass(frozen=True)
class Limits:
    """Size limits per kind, from `DCT_UPLOAD_MAX_BYTES` and
    `DCT_UPLOAD_MAX_BYTES_BY_KIND` ("image=52428800,ecg=104857600")."""

    default: int
    by_kind: Mapping[str, int] = field(default_factory=dict)
    zip: ZipLimits = field(default_factory=ZipLimits)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Limits:
        by_kind = {}
        for pair in filter(None, settings["DCT_UPLOAD_MAX_BYTES_BY_KIND"].split(",")):
            kind, _, size = pair.partition("=")
            if kind.strip() not in UPLOAD_KINDS or not size.strip().isdigit():
                raise RuntimeError(f"DCT_UPLOAD_MAX_BYTES_BY_KIND: cannot read {pair!r}")
            by_kind[kind.strip()] = int(size)
        return cls(settings["DCT_UPLOAD_MAX_BYTES"], by_kind, ZipLimits.from_settings(settings))

    def of(self, kind: str | None) -> int:
        """The kind's limit; before the kind is known, the largest of any kind."""
        if kind is None:
            return max([self.default, *self.by_kind.values()])
        return self.by_kind.get(kind, self.default)


def visible_uploads(actor: Actor) -> Select[Upload]:
    """Uploads of the participants the actor sees; admins see none (participant data)."""
    if actor.role == Role.ADMIN:
        return select(Upload).where(false())
    participants = visible_participants(actor).with_only_columns(Participant.id)
    return select(Upload).where(Upload.participant_id.in_(participants))


def check_meta(meta: UploadMeta, now: dt.datetime) -> None:
    """Every field's problem at once (422), before any byte is read."""
    errors: dict[str, list[str]] = {}
    if meta.kind not in UPLOAD_KINDS:
        errors["kind"] = [f"one of {', '.join(UPLOAD_KINDS)}"]
    if not _SHA256.fullmatch(meta.sha256 or ""):
        errors["sha256"] = ["the file's SHA-256 as 64 lower-case hexadecimal characters"]
    if meta.captured_at.tzinfo is None:
        errors["captured_at"] = ["give a time with its UTC offset"]
    elif meta.captured_at > now + CLOCK_TOLERANCE:
        errors["captured_at"] = ["is in the future by the server's clock"]
    errors.update(validation.device_problems(meta.device))
    if meta.filename is not None and not 1 <= len(meta.filename) <= 255:
        errors["filename"] = ["1 to 255 characters"]
    if (meta.supersedes_id is None) != (not (meta.supersede_reason or "").strip()):
        errors["supersede_reason"] = ["a replacement gives supersedes_id and a reason, together"]
    if errors:
        raise Invalid("the upload's metadata did not validate; see errors", errors=errors)


def _participant(session: Session, actor: Actor, meta: UploadMeta) -> Participant:
    if actor.role == Role.PATIENT:
        if meta.participant_id not in (None, actor.participant_id):
            raise Forbidden("a patient uploads their own files only")
        # A patient's actor carries their participant id (an absent one finds no row).
        participant_id = cast(uuid.UUID, actor.participant_id)
    elif meta.participant_id is None:
        raise Invalid("participant", errors={"participant_id": ["say whose file this is"]})
    else:
        participant_id = meta.participant_id
    return get_visible(session, visible_participants(actor), participant_id, "participant")


def _visit(session: Session, actor: Actor, participant: Participant, visit_id: uuid.UUID) -> None:
    visit = session.get(Visit, visit_id)
    if visit is None or visit.participant_id != participant.id:
        raise Invalid("visit", errors={"visit_id": ["not a visit of this participant"]})
    if actor.role == Role.NURSE and (
        visit.nurse_id != actor.user_id or visit.status not in _VISIT_OPEN
    ):
        raise Conflict("a nurse attaches files to their own visit, once checked in")


def replayed(session: Session, actor: Actor, client_id: uuid.UUID | None) -> Upload | None:
    """The upload a retried `client_id` already made (409 when it was another's)."""
    if client_id is None:
        return None
    original = session.scalars(select(Upload).where(Upload.client_id == client_id)).first()
    if original is None:
        return None
    mine = session.scalars(visible_uploads(actor).where(Upload.id == original.id)).first()
    if mine is None:
        raise Conflict("this client_id was used for another upload; make up a new one")
    return original


def prepare(
    session: Session, actor: Actor, meta: UploadMeta, *, now: dt.datetime
) -> Target | Upload:
    """The checks before the body is read: a `Target`, or the original on a replay."""
    require_role(actor, *UPLOADERS)
    original = replayed(session, actor, meta.client_id)
    if original is not None:
        if original.sha256 != meta.sha256:
            raise Conflict(
                "this client_id was used for another file (its SHA-256 differs); "
                "make up a new client_id for a new file"
            )
        return original
    check_meta(meta, now)
    participant = _participant(session, actor, meta)
    require_current_consent(participant)
    if meta.visit_id is not None:
        _visit(session, actor, participant, meta.visit_id)
    if meta.supersedes_id is not None:
        old = get_visible(session, visible_uploads(actor), meta.supersedes_id, "upload")
        if old.participant_id != participant.id:
            raise Invalid("supersedes", errors={"supersedes_id": ["another participant's upload"]})
    # require_role admitted one of UPLOADERS above: the actor has a role.
    return Target(participant, meta.visit_id, cast(Role, actor.role).value)


class HashingWriter:
    """Passes the body's chunks to a temporary object, hashing and counting them, and
    inspecting a ZIP as it passes; stops with 413 as soon as `limit` is crossed."""

    def __init__(self, staged: Staged, limit: int, zip_limits: ZipLimits) -> None:
        self.staged = staged
        self.limit = limit
        self.size = 0
        self.head = b""
        self._sha256 = hashlib.sha256()
        self.archive = ZipInspector(zip_limits)

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise TooLarge(f"the file is larger than the limit of {self.limit} bytes")
        if len(self.head) < filetypes.SNIFF_BYTES:
            self.head += chunk[: filetypes.SNIFF_BYTES - len(self.head)]
        self._sha256.update(chunk)
        self.archive.feed(chunk)
        self.staged.write(chunk)

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()


def finish(
    session: Session,
    actor: Actor,
    meta: UploadMeta,
    target: Target,
    *,
    received: HashingWriter,
    commit: Callable[[], str],
    storage_backend: str,
    transfer: str,
    now: dt.datetime,
) -> tuple[Upload, bool]:
    """Verify, commit the object and record it; (upload, created). The caller discards
    the temporary object when this raises."""
    if received.sha256 != meta.sha256:
        raise Invalid(
            "checksum mismatch: nothing was stored",
            errors={"sha256": [f"the file received has SHA-256 {received.sha256}"]},
        )
    content_type = filetypes.judge(received.head, meta.kind)
    refused = received.archive.problem() if content_type == filetypes.ZIP else None
    if refused:
        raise Invalid(f"the ZIP archive was refused: {refused}", errors={"file": [refused]})
    upload = Upload(
        id=uuid.uuid4(),
        client_id=meta.client_id,
        participant_id=target.participant.id,
        study_id=target.participant.study_id,
        site_id=target.participant.site_id,
        visit_id=target.visit_id,
        kind=meta.kind,
        content_type=content_type,
        filename=meta.filename,
        size_bytes=received.size,
        sha256=received.sha256,
        storage_backend=storage_backend,
        storage_key=commit(),
        captured_at=meta.captured_at,
        device=dict(meta.device),
        transfer=transfer,
        originator=target.originator,
        uploaded_by=actor.user_id,
        supersedes_id=meta.supersedes_id,
        supersede_reason=meta.supersede_reason,
        received_at=now,
    )
    try:
        with session.begin_nested():
            session.add(upload)
    except IntegrityError:  # the same client_id committed meanwhile: answer that one
        original = replayed(session, actor, meta.client_id)
        if original is None:
            raise
        return original, False
    audit.record_change(
        session,
        actor,
        "upload.create",
        upload,
        subject=participant_subject(target.participant),
        after={
            "kind": upload.kind,
            "content_type": content_type,
            "size_bytes": upload.size_bytes,
            "sha256": upload.sha256,
            "transfer": transfer,
            "visit_id": str(upload.visit_id) if upload.visit_id else None,
            "supersedes_id": str(upload.supersedes_id) if upload.supersedes_id else None,
        },
        reason=meta.supersede_reason,
    )
    return upload, True
