"""The data keys of stored files: made per object, wrapped under the current key id,
recorded beside the object's key, and re-wrapped by a rotation.

The key hierarchy: DCT_ENCRYPTION_KEY -> (HKDF) a key-encryption key per key id ->
(AES-256-GCM key wrap) each object's data key -> (`services/diagnostics/envelope.py`) the object.
Key ids are random and listed in `upload_wrapping_keys`; the newest wraps new keys.

A rotation (`flask uploads rotate-keys`) adds a key id, re-wraps every data key under
it (files and transfers in progress) and deletes the old ids: objects are not read nor
rewritten. Whoever wraps a key holds the current key id's row with a shared lock until
its transaction ends (PostgreSQL; SQLite serialises every writing transaction anyway),
and the rotation locks the old ids before its last sweep, so no data key committed
around a rotation is left under a retired id.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

from cryptography.exceptions import InvalidTag
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from services import crypto
from services.actor import Actor
from services.audit import chain as audit
from services.diagnostics import envelope
from services.diagnostics.models import UploadKey, UploadWrappingKey
from services.diagnostics.storage import Storage
from services.models import TusTransfer

_BATCH = 500


class KeyUnavailable(envelope.Tampered):
    """A wrapped data key does not unwrap: another master key, or an altered row. For
    a reader, the object's integrity cannot be shown either way."""


def current_key_id(session: Session) -> str:
    """The key id that wraps new data keys, held (shared) until the transaction ends;
    the first is made on first use when no migration made it."""
    newest = (
        select(UploadWrappingKey.key_id)
        .order_by(UploadWrappingKey.generation.desc())
        .limit(1)
        .with_for_update(read=True)
    )
    for _ in range(3):  # a row a rotation deleted while we waited for it is skipped
        key_id = session.scalars(newest).first()
        if key_id is not None:
            return key_id
        if session.scalar(select(func.count()).select_from(UploadWrappingKey)) == 0:
            key_id = crypto.new_key_id()
            session.add(UploadWrappingKey(generation=1, key_id=key_id))
            session.flush()
            return key_id
    raise RuntimeError("no current upload key id could be locked")


def wrap(session: Session, data_key: bytes) -> tuple[str, bytes]:
    """(key id, wrapped data key) under the current key id."""
    key_id = current_key_id(session)
    return key_id, crypto.wrap_key(data_key, key_id)


def unwrap(key_id: str, wrapped: bytes) -> bytes:
    try:
        return crypto.unwrap_key(wrapped, key_id)
    except InvalidTag:
        raise KeyUnavailable(
            f"a data key wrapped under key id {key_id} does not unwrap with this DCT_ENCRYPTION_KEY"
        ) from None


def record(session: Session, storage_key: str, data_key: bytes) -> None:
    """Keep a committed object's data key, wrapped, in the caller's transaction."""
    key_id, wrapped = wrap(session, data_key)
    session.add(UploadKey(storage_key=storage_key, key_id=key_id, wrapped_key=wrapped))


def stage(session: Session, storage: Storage) -> envelope.SealedStaged:
    """A new temporary object sealed under a fresh data key, recorded at commit."""
    data_key = envelope.new_data_key()
    return envelope.SealedStaged(
        storage.stage(), data_key, lambda key: record(session, key, data_key)
    )


def staging(session: Session, storage: Storage, transfer: TusTransfer) -> envelope.SealedStaging:
    """A transfer's sealed staging area; promoting it records the object's data key."""
    if transfer.key_id is None or transfer.wrapped_key is None:
        raise KeyUnavailable(f"transfer {transfer.id} has no data key")
    data_key = unwrap(transfer.key_id, transfer.wrapped_key)
    return envelope.SealedStaging(
        storage,
        data_key,
        transfer.length_bytes,
        lambda key: record(session, key, data_key),
    )


def give_key(session: Session, transfer: TusTransfer) -> None:
    """A new transfer's data key, wrapped onto its row."""
    transfer.key_id, transfer.wrapped_key = wrap(session, envelope.new_data_key())


@dataclass(frozen=True)
class Rotation:
    key_id: str
    retired: list[str]
    files: int
    transfers: int


def _rewrapped(rows: list[tuple[str, bytes]], key_id: str) -> Iterator[tuple[str, bytes]]:
    for old_id, wrapped in rows:
        yield key_id, crypto.wrap_key(unwrap(old_id, wrapped), key_id)


def _rewrap_batch(session: Session, model: type[UploadKey] | type[TusTransfer], key_id: str) -> int:
    """Re-wrap up to a batch of `model`'s keys not under `key_id`: how many. Re-wrapped,
    they no longer match, so repeated calls walk the table in bounded memory."""
    ident = UploadKey.storage_key if model is UploadKey else TusTransfer.id
    rows = session.execute(
        select(ident, model.key_id, model.wrapped_key)
        .where(model.key_id.is_not(None), model.key_id != key_id)
        .order_by(ident)
        .limit(_BATCH)
    ).all()
    if rows:
        # Selected where key_id is set, and a transfer's key_id and wrapped_key are set together.
        pairs = [(cast(str, row[1]), cast(bytes, row[2])) for row in rows]
        wrapped = _rewrapped(pairs, key_id)
        values = [
            {ident.key: row[0], "key_id": new_id, "wrapped_key": new_key}
            for row, (new_id, new_key) in zip(rows, wrapped, strict=True)
        ]
        session.execute(update(model), values)
    return len(rows)


def rotate(sessions: sessionmaker[Session], actor: Actor) -> Rotation:
    """A new key id, every data key re-wrapped under it, the old ids deleted; audited.
    The objects themselves are not touched.

    In three transactions of its own, so that uploads never wait long for it: the new
    id is committed first (new keys are wrapped under it from then on); the keys are
    re-wrapped a batch per transaction (a transfer whose PATCH is streaming is waited
    for, that row only); then the old ids are locked, which waits for whoever still
    wraps under them, the keys those committed meanwhile are re-wrapped, and the old
    ids deleted (a key left under one could not be committed: a foreign key)."""
    with sessions.begin() as session:
        newest = session.scalars(
            select(UploadWrappingKey.generation)
            .order_by(UploadWrappingKey.generation.desc())
            .limit(1)
            .with_for_update()
        ).first()
        key_id = crypto.new_key_id()
        session.add(UploadWrappingKey(generation=(newest or 0) + 1, key_id=key_id))
    counts: dict[type[UploadKey] | type[TusTransfer], int] = {UploadKey: 0, TusTransfer: 0}
    for model in counts:
        while True:
            with sessions.begin() as session:
                done = _rewrap_batch(session, model, key_id)
            if not done:
                break
            counts[model] += done
    with sessions.begin() as session:
        retired = list(
            session.scalars(
                select(UploadWrappingKey.key_id)
                .where(UploadWrappingKey.key_id != key_id)
                .order_by(UploadWrappingKey.generation)
                .with_for_update()
            )
        )
        for model in counts:
            while done := _rewrap_batch(session, model, key_id):
                counts[model] += done
        files, transfers = counts[UploadKey], counts[TusTransfer]
        session.execute(delete(UploadWrappingKey).where(UploadWrappingKey.key_id != key_id))
        audit.record(
            session,
            actor,
            "upload.keys_rotated",
            entity_type="upload_wrapping_key",
            entity_id=key_id,
            subject=audit.Subject(),
            before={"key_ids": retired},
            after={"key_id": key_id, "files": files, "transfers": transfers},
        )
    return Rotation(key_id, retired, files, transfers)
