"""Resumable uploads (tus 1.0): a transfer in progress, whose bytes wait in the storage's
staging area and become an upload record exactly like a multipart one once complete.

- Only its creator sees a transfer (anyone else: 404), and only patients and nurses
  upload. `uploads.prepare` runs at creation, so a refused upload costs no bytes, and
  again at completion: consent, the visit or a replayed `client_id` may have changed
  meanwhile. `uploads.finish` then verifies the whole file.
- The row's `offset_bytes` is the truth. A PATCH holds the row's lock while its body
  streams, so two PATCHes of one transfer cannot interleave; bytes the storage holds
  past the offset (a failed request's) are cut by the next append.
- A refusal at completion ends the transfer (bytes dropped, row deleted): the bytes can
  never make an upload. So do termination and expiry. Progress itself is not audited,
  only creation, completion and each end.
- Each byte is hashed once when a transfer stays in one process: the running hash is
  cached per transfer between PATCHes, and the staged file is read back only when
  another process (or a failed request) saw part of it.
- The staged bytes are sealed under the transfer's own data key (wrapped on its row)
  as they arrive (`envelope.SealedStaging`): the staging area never holds plaintext,
  and the complete transfer is promoted as the sealed object it already is.

A little over the usual size: the transfer's life cycle (create, append, complete,
terminate, expire) shares the lock and offset rules above.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NoReturn

from sqlalchemy import Select, event, or_, select
from sqlalchemy.orm import Session

from services.access import get_visible, require_role
from services.actor import Actor, Role
from services.audit import chain as audit
from services.diagnostics import upload_keys, uploads
from services.diagnostics.envelope import SealedStaging
from services.diagnostics.storage import Storage
from services.diagnostics.uploads import HashingWriter, Limits, UploadMeta
from services.diagnostics.zip_inspection import ZipLimits
from services.errors import Conflict, DomainError, TooLarge
from services.models import Participant, TusTransfer, Upload
from services.people.participants import participant_subject

_UUID_FIELDS = ("visit_id", "client_id", "supersedes_id")
_CACHED_HASHES = 256  # transfers whose running hash this process keeps (~4 KiB each)
_hashes: dict[uuid.UUID, HashingWriter] = {}  # writer.size is the offset it has hashed
_hashes_lock = threading.Lock()

# A PATCH's body, opened by the service once it knows how many bytes may still come.
Body = Callable[[int], Iterable[bytes]]


class ChecksumMismatch(DomainError):
    """tus's checksum extension: the body's digest is not the `Upload-Checksum`."""


class Interrupted(DomainError):
    """The body stopped before its announced end (a dropped connection). What arrived
    stays, so the offset's advance must survive the rollback an error brings."""

    kind = "upload-interrupted"
    keep_changes = True


class StagingBehind(Conflict):
    """The staging holds less than the transfer's offset (see `SealedStaging.
    intact_size`): the offset winds back to what is intact, and that must survive the
    rollback the error brings."""

    kind = "upload-offset-moved"
    keep_changes = True


class _HashOnly:
    """The `Staged` of a writer that only hashes and counts: tus bytes reach the storage
    through `Storage.append` and are promoted from the staging area."""

    def write(self, chunk: bytes | bytearray) -> None:
        pass

    def commit(self) -> str:
        raise NotImplementedError("tus bytes are promoted from the staging area")

    def discard(self) -> None:
        pass


def _stored(meta: UploadMeta) -> dict[str, Any]:
    """The metadata as the row keeps it (JSON); participant and filename have columns."""
    return {
        "kind": meta.kind,
        "sha256": meta.sha256,
        "captured_at": meta.captured_at.isoformat(),
        "device": dict(meta.device),
        "supersede_reason": meta.supersede_reason,
        **{name: str(value) if (value := getattr(meta, name)) else None for name in _UUID_FIELDS},
    }


def _meta(transfer: TusTransfer) -> UploadMeta:
    data = transfer.metadata_
    return UploadMeta(
        kind=data["kind"],
        sha256=data["sha256"],
        captured_at=dt.datetime.fromisoformat(data["captured_at"]),
        device=data["device"],
        participant_id=transfer.participant_id,
        filename=transfer.filename,
        supersede_reason=data["supersede_reason"],
        **{name: uuid.UUID(data[name]) if data[name] else None for name in _UUID_FIELDS},
    )


def _audit(
    session: Session,
    actor: Actor,
    action: str,
    transfer: TusTransfer,
    *,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
) -> None:
    participant = session.get(Participant, transfer.participant_id)
    assert participant is not None  # a foreign key
    audit.record_change(
        session,
        actor,
        action,
        transfer,
        subject=participant_subject(participant),
        before={"offset_bytes": transfer.offset_bytes, "length_bytes": transfer.length_bytes},
        after=after,
        reason=reason,
    )


def create(
    session: Session,
    actor: Actor,
    meta: UploadMeta,
    length: int,
    *,
    limits: Limits,
    lifetime: dt.timedelta,
    now: dt.datetime,
) -> TusTransfer | Upload:
    """A new transfer of `length` bytes, or the upload a replayed `client_id` made."""
    prepared = uploads.prepare(session, actor, meta, now=now)
    if isinstance(prepared, Upload):
        return prepared
    if length > limits.of(meta.kind):
        raise TooLarge(f"{meta.kind} uploads are limited to {limits.of(meta.kind)} bytes")
    transfer = TusTransfer(
        id=uuid.uuid4(),
        participant_id=prepared.participant.id,
        created_by=actor.user_id,
        length_bytes=length,
        offset_bytes=0,
        metadata_=_stored(meta),
        filename=meta.filename,
        expires_at=now + lifetime,
    )
    upload_keys.give_key(session, transfer)
    session.add(transfer)
    _audit(
        session,
        actor,
        "tus.create",
        transfer,
        after={"kind": meta.kind, "expires_at": transfer.expires_at.isoformat()},
    )
    return transfer


def _creators(actor: Actor) -> Select[TusTransfer]:
    require_role(actor, Role.PATIENT, Role.NURSE)
    return select(TusTransfer).where(TusTransfer.created_by == actor.user_id)


def find(
    session: Session, actor: Actor, transfer_id: uuid.UUID, *, now: dt.datetime
) -> TusTransfer:
    """The creator's transfer, in progress or finished (then `upload_id` is set);
    an expired one is gone."""
    query = _creators(actor).where(
        or_(TusTransfer.upload_id.is_not(None), TusTransfer.expires_at > now)
    )
    return get_visible(session, query, transfer_id, "resumable upload")


def _in_progress(
    session: Session, actor: Actor, transfer_id: uuid.UUID, now: dt.datetime
) -> TusTransfer:
    """Locked until the transaction ends: the one request that may change it."""
    query = (
        _creators(actor)
        .where(TusTransfer.upload_id.is_(None), TusTransfer.expires_at > now)
        .with_for_update()
    )
    return get_visible(session, query, transfer_id, "resumable upload")


def _running_hash(transfer: TusTransfer, zip_limits: ZipLimits) -> HashingWriter | None:
    """The whole file's hash so far, when this process saw every byte up to the offset.
    Taken out of the cache: only a committed offset puts it back."""
    with _hashes_lock:
        writer = _hashes.pop(transfer.id, None)
    if writer is not None and writer.size == transfer.offset_bytes:
        return writer
    if transfer.offset_bytes:
        return None
    return HashingWriter(_HashOnly(), transfer.length_bytes, zip_limits)


def _keep_hash(session: Session, transfer: TusTransfer, writer: HashingWriter | None) -> None:
    """Cache the running hash once the offset it matches is committed: a rolled-back
    request's bytes are cut by the next append, so its hash must not survive."""
    if writer is None or writer.size != transfer.offset_bytes:
        return

    def remember(_session: Session) -> None:
        with _hashes_lock:
            _hashes[transfer.id] = writer
            while len(_hashes) > _CACHED_HASHES:
                del _hashes[next(iter(_hashes))]  # the oldest

    event.listen(session, "after_commit", remember, once=True)


def _received(
    chunks: Iterable[bytes],
    room: int,
    writer: HashingWriter | None,
    request_hash: Any,
) -> Iterator[bytes]:
    """The body on its way to the storage: counted against the room left, hashed."""
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > room:
            raise TooLarge(f"the body goes past Upload-Length: {room} bytes were left")
        if writer is not None:
            writer.write(chunk)
        if request_hash is not None:
            request_hash.update(chunk)
        yield chunk


def append(
    session: Session,
    actor: Actor,
    storage: Storage,
    transfer_id: uuid.UUID,
    offset: int,
    body: Body,
    *,
    checksum: bytes | None,
    zip_limits: ZipLimits,
    now: dt.datetime,
) -> TusTransfer:
    """Add a PATCH's body at `offset`; with the last byte, the file is verified and
    recorded (`upload_id` is set). With `checksum` (the body's SHA-256) a body that
    does not match, or does not arrive whole, leaves nothing."""
    transfer = _in_progress(session, actor, transfer_id, now)
    staging = upload_keys.staging(session, storage, transfer)
    _catch_up(staging, transfer)
    if offset != transfer.offset_bytes:
        raise Conflict(
            f"Upload-Offset {offset} is not the transfer's offset {transfer.offset_bytes}: "
            "ask for it with HEAD and resume from there"
        )
    room = transfer.length_bytes - offset
    writer = _running_hash(transfer, zip_limits)
    request_hash = hashlib.sha256() if checksum is not None else None
    try:
        written = staging.append(
            transfer.id, offset, _received(body(room), room, writer, request_hash)
        )
    except Interrupted:
        _interrupted(session, staging, transfer, writer, keep=checksum is None)
    except BaseException:
        staging.append(transfer.id, offset, ())  # cut this request's bytes
        raise
    if request_hash is not None and request_hash.digest() != checksum:
        staging.append(transfer.id, offset, ())
        raise ChecksumMismatch(
            "the body's SHA-256 is not the one in Upload-Checksum: nothing of it was kept, "
            "send it again"
        )
    transfer.offset_bytes = offset + written
    if transfer.offset_bytes < transfer.length_bytes:
        _keep_hash(session, transfer, writer)
    else:
        _complete(session, actor, staging, transfer, writer, zip_limits, now)
    return transfer


def _catch_up(staging: SealedStaging, transfer: TusTransfer) -> None:
    """Wind the offset back to the bytes the staging still holds intact, telling the
    client where to resume: without it every later PATCH would fail for good."""
    intact = staging.intact_size(transfer.id)
    if intact >= transfer.offset_bytes:
        return
    lost = transfer.offset_bytes
    transfer.offset_bytes = intact
    raise StagingBehind(
        f"the server lost bytes {intact} to {lost} of this transfer when it stopped while "
        f"writing them: resume at offset {intact} (HEAD answers it too)"
    )


def _interrupted(
    session: Session,
    staging: SealedStaging,
    transfer: TusTransfer,
    writer: HashingWriter | None,
    *,
    keep: bool,
) -> NoReturn:
    """Keep what arrived of a body the client stopped sending, unless it had to match a
    checksum (which a part cannot)."""
    if not keep:
        staging.append(transfer.id, transfer.offset_bytes, ())
        raise Interrupted(
            "the body stopped before its end, so its Upload-Checksum cannot be checked: "
            f"nothing of it was kept, resume at offset {transfer.offset_bytes}"
        )
    transfer.offset_bytes = staging.staged_size(transfer.id)
    _keep_hash(session, transfer, writer)
    raise Interrupted(
        f"the body stopped before its end; what arrived was kept: resume at offset "
        f"{transfer.offset_bytes}"
    )


def _rehash(staging: SealedStaging, transfer: TusTransfer, zip_limits: ZipLimits) -> HashingWriter:
    """The whole file read back from the staging area, for a transfer another process
    took part in."""
    writer = HashingWriter(_HashOnly(), transfer.length_bytes, zip_limits)
    for chunk in staging.read_staged(transfer.id):
        writer.write(chunk)
    return writer


def _complete(
    session: Session,
    actor: Actor,
    staging: SealedStaging,
    transfer: TusTransfer,
    writer: HashingWriter | None,
    zip_limits: ZipLimits,
    now: dt.datetime,
) -> None:
    meta = _meta(transfer)
    try:
        prepared = uploads.prepare(session, actor, meta, now=now)
        if isinstance(prepared, Upload):  # its client_id made an upload meanwhile
            staging.drop_staged(transfer.id)
            upload = prepared
        else:
            upload, _ = uploads.finish(
                session,
                actor,
                meta,
                prepared,
                received=writer or _rehash(staging, transfer, zip_limits),
                commit=lambda: staging.promote(transfer.id),
                storage_backend=staging.storage.name,
                transfer="tus",
                now=now,
            )
    except DomainError as error:
        _end(session, actor, staging.storage, transfer, "tus.refuse", reason=error.detail)
        error.keep_changes = True  # the answer is the refusal; the transfer's end stays
        raise
    transfer.upload_id = upload.id
    transfer.key_id = transfer.wrapped_key = None  # the object's key is the upload's now
    _audit(session, actor, "tus.complete", transfer, after={"upload_id": str(upload.id)})


def _end(
    session: Session,
    actor: Actor,
    storage: Storage,
    transfer: TusTransfer,
    action: str,
    *,
    reason: str | None = None,
) -> None:
    """Drop the bytes and the row; the audit keeps how far it got and why it ended."""
    storage.drop_staged(transfer.id)
    with _hashes_lock:
        _hashes.pop(transfer.id, None)
    _audit(session, actor, action, transfer, reason=reason)
    session.delete(transfer)


def terminate(
    session: Session, actor: Actor, storage: Storage, transfer_id: uuid.UUID, *, now: dt.datetime
) -> None:
    """The client gives up a transfer in progress (tus termination)."""
    _end(session, actor, storage, _in_progress(session, actor, transfer_id, now), "tus.terminate")


def expire(session: Session, actor: Actor, storage: Storage, *, now: dt.datetime) -> int:
    """End the transfers whose time ran out before they completed; one audit event
    each. A row another process holds (a PATCH still streaming, another scheduler) is
    left for the next run."""
    stale = session.scalars(
        select(TusTransfer)
        .where(TusTransfer.upload_id.is_(None), TusTransfer.expires_at <= now)
        .with_for_update(skip_locked=True)
    ).all()
    for transfer in stale:
        _end(session, actor, storage, transfer, "tus.expire")
    return len(stale)
