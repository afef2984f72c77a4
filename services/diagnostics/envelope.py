"""Stored files at rest: envelope encryption in authenticated chunks.

Every stored object has a random 256-bit data key of its own. The key is never stored
in the clear: `services/diagnostics/upload_keys.py` keeps it wrapped (`crypto.wrap_key`) in the
database, beside the id of the key-encryption key, so a rotation re-wraps keys without
rewriting an object. This module is the object format, written and read as streams:
no file is ever whole in memory, and a read verifies each chunk before handing it on.

Format, version 1::

    header  = b"DCTE" | version (1 byte) | chunk size (4 bytes, big-endian)
    record  = nonce (12 random bytes) | AES-256-GCM ciphertext | tag (16 bytes)
    object  = header | record 0 | record 1 | ... | record n (the final one)

Each record seals one chunk of plaintext: exactly `chunk size` bytes, except the final
record's 1 to `chunk size` (0 only for an empty file). A record's associated data is
the header, its index (8 bytes) and a final flag (1 byte), so a chunk altered, moved,
dropped, repeated or copied from another object (another data key), an object cut at
a record boundary (its last record is not the final one) or extended past its final
record, all fail authentication.

Nonces are random per record rather than counted: a resumable transfer seals the chunk
it ends in, and the next request seals that chunk again with more bytes (and a request
refused after its bytes were written is sent again, perhaps different), so one index
may be sealed more than once under its key; a fresh nonce makes that safe. With at
most a few thousand records per key, 96 random bits are far from a collision.
"""

from __future__ import annotations

import contextlib
import os
import struct
import uuid
from collections.abc import Callable, Iterable, Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.diagnostics.storage import Staged, Storage

MAGIC = b"DCTE"
VERSION = 1
CHUNK = 256 * 1024  # plaintext per record, written by this version
_HEADER = struct.Struct(">4sBI")
HEADER_SIZE = _HEADER.size
HEADER = _HEADER.pack(MAGIC, VERSION, CHUNK)
NONCE, TAG = 12, 16
OVERHEAD = NONCE + TAG
RECORD = CHUNK + OVERHEAD
_CHUNK_RANGE = (1024, 16 * 1024 * 1024)  # what a reader accepts from a header
_POSITION = struct.Struct(">QB")


class Tampered(Exception):
    """The stored bytes are not what was sealed under this data key."""


def new_data_key() -> bytes:
    return os.urandom(32)


def sealed_size(size: int) -> int:
    """The stored size of a `size`-byte file."""
    records = max(1, -(-size // CHUNK))
    return HEADER_SIZE + size + records * OVERHEAD


def _aad(header: bytes, index: int, final: bool) -> bytes:
    return header + _POSITION.pack(index, final)


class _Sealer:
    """Cuts plaintext into chunks and seals them, from record `index` on. With the
    file's `length` known, the record that reaches it is the final one; without, the
    last chunk is held back until `close`, as more may follow."""

    def __init__(
        self, data_key: bytes, *, index: int = 0, length: int | None = None, buffer: bytes = b""
    ) -> None:
        self._aead = AESGCM(data_key)
        self._index = index
        self._length = length
        self._buffer = bytearray(buffer)

    def _seal(self, plaintext: bytes | bytearray | memoryview, final: bool) -> bytearray:
        """One record, encrypted straight into place after its nonce (no copy)."""
        nonce = os.urandom(NONCE)
        record = bytearray(NONCE + len(plaintext) + TAG)
        record[:NONCE] = nonce
        with memoryview(record) as view:
            aad = _aad(HEADER, self._index, final)
            self._aead.encrypt_into(nonce, plaintext, aad, view[NONCE:])
        self._index += 1
        return record

    def _is_final(self, size: int) -> bool:
        return self._length is not None and self._index * CHUNK + size == self._length

    def feed(self, data: bytes | bytearray) -> list[bytearray]:
        """The records `data` completes. Whole chunks are sealed straight from `data`;
        only a chunk's start or end waits in the buffer."""
        spare = 0 if self._length is not None else 1  # hold back a chunk that may be last
        records: list[bytearray] = []
        with memoryview(data) as incoming:
            at = 0
            if self._buffer:
                at = min(CHUNK - len(self._buffer), len(incoming))
                self._buffer += incoming[:at]
                if len(self._buffer) < CHUNK or len(incoming) - at < spare:
                    return records
                records.append(self._seal(self._buffer, self._is_final(CHUNK)))
                self._buffer.clear()
            while len(incoming) - at >= CHUNK + spare:
                with incoming[at : at + CHUNK] as chunk:
                    records.append(self._seal(chunk, self._is_final(CHUNK)))
                at += CHUNK
            self._buffer += incoming[at:]
        return records

    def close(self) -> list[bytearray]:
        """The record of what is left: the final one, or with a known length not
        reached yet, the tail a later request continues (none when nothing is left)."""
        if self._length is not None and not self._buffer:
            return []
        final = self._length is None or self._is_final(len(self._buffer))
        record = self._seal(self._buffer, final)
        self._buffer.clear()
        return [record]


def _open(
    aead: AESGCM, header: bytes, index: int, record: bytes | bytearray | memoryview, final: bool
) -> bytes:
    try:
        return aead.decrypt(record[:NONCE], record[NONCE:], _aad(header, index, final))
    except InvalidTag:
        raise Tampered(
            f"record {index} fails authentication (altered, moved, cut short, or not sealed "
            "as this object's)"
        ) from None


def _header(raw: bytes | bytearray) -> tuple[bytes, int]:
    magic, version, chunk = _HEADER.unpack(bytes(raw))
    if magic != MAGIC:
        raise Tampered("not a sealed object (its header is not the envelope's)")
    if version != VERSION:
        raise Tampered(f"unknown envelope version {version}")
    if not _CHUNK_RANGE[0] <= chunk <= _CHUNK_RANGE[1]:
        raise Tampered(f"the header's chunk size {chunk} is out of range")
    return bytes(raw), chunk + OVERHEAD


def _records(
    chunks: Iterable[bytes], data_key: bytes, final: Callable[[int, int, bool], bool]
) -> Iterator[bytes]:
    """The plaintext of each record, verified: `final(index, size, last)` says whether
    the record of `size` plaintext bytes should carry the final flag."""
    aead = AESGCM(data_key)
    buffer = bytearray()
    header: bytes | None = None
    record = index = 0
    for chunk in chunks:
        buffer += chunk
        if header is None:
            if len(buffer) < HEADER_SIZE:
                continue
            header, record = _header(buffer[:HEADER_SIZE])
            del buffer[:HEADER_SIZE]
        opened, start, failure = [], 0, None
        with memoryview(buffer) as view:
            while len(view) - start > record:  # more follows: not the last record
                is_final = final(index, record - OVERHEAD, False)
                try:
                    with view[start : start + record] as piece:
                        opened.append(_open(aead, header, index, piece, is_final))
                except Tampered as error:
                    failure = error
                    break
                start += record
                index += 1
        del buffer[:start]
        yield from opened  # the records before a failure are good
        if failure is not None:
            raise failure
    if header is None:
        raise Tampered("the object ends inside its header")
    if len(buffer) < OVERHEAD:
        raise Tampered(f"the object ends inside record {index}")
    yield _open(aead, header, index, buffer, final(index, len(buffer) - OVERHEAD, True))


def opened(chunks: Iterable[bytes], data_key: bytes) -> Iterator[bytes]:
    """A sealed object's plaintext, record by record, each verified before it is
    yielded; `Tampered` as soon as one fails, or at the end when the object stops
    before its final record."""
    return _records(chunks, data_key, lambda _index, _size, last: last)


class SealedStaged:
    """A `Staged` that seals what is written into another: only ciphertext reaches the
    storage, a chunk at a time. `on_commit` hears the committed object's key (the
    caller records its data key there, in its transaction)."""

    def __init__(
        self, raw: Staged, data_key: bytes, on_commit: Callable[[str], None] | None = None
    ) -> None:
        self._raw = raw
        self._sealer = _Sealer(data_key)
        self._on_commit = on_commit
        raw.write(HEADER)

    def write(self, chunk: bytes | bytearray) -> None:
        for piece in self._sealer.feed(chunk):
            self._raw.write(piece)

    def commit(self) -> str:
        for piece in self._sealer.close():  # without a length: always the final record
            self._raw.write(piece)
        key = self._raw.commit()
        if self._on_commit is not None:
            self._on_commit(key)
        return key

    def discard(self) -> None:
        self._raw.discard()


class SealedStaging:
    """One resumable transfer's staging area in the envelope format, over a storage's
    own: offsets and sizes here are the file's (plaintext) ones.

    At offset N the storage holds the header, the full records before N and, when N
    falls inside a chunk, one record of the bytes of that chunk so far (the tail).
    Continuing at N reads that one record back (at most a chunk), and seals it again
    with what follows; so no plaintext is ever at rest, and a complete transfer is
    exactly a sealed object: promoting it stays a rename, or S3's part copy. The record
    that reaches `length` carries the final flag.
    """

    def __init__(
        self,
        storage: Storage,
        data_key: bytes,
        length: int,
        on_promote: Callable[[str], None] | None = None,
    ) -> None:
        self.storage = storage
        self._data_key = data_key
        self._length = length
        self._on_promote = on_promote

    def _final(self, index: int, size: int, _last: bool) -> bool:
        return index * CHUNK + size == self._length

    def _tail(self, transfer_id: uuid.UUID, offset: int) -> bytes:
        """The first bytes of the chunk `offset` falls in, up to it, from the record
        that holds that chunk now: the tail the last request sealed, or a longer one
        that a failed request wrote over it (its first bytes are the same)."""
        index, size = divmod(offset, CHUNK)
        if not size:
            return b""
        raw = bytearray()
        start = HEADER_SIZE + index * RECORD
        with contextlib.closing(iter(self.storage.read_staged(transfer_id, start))) as chunks:
            for chunk in chunks:
                raw += chunk
                if len(raw) >= RECORD:
                    break
        record = bytes(raw[:RECORD])
        if len(record) - OVERHEAD < size:
            raise Tampered(f"the staged record {index} is shorter than the transfer's offset")
        aead = AESGCM(self._data_key)
        plaintext = _open(
            aead, HEADER, index, record, self._final(index, len(record) - OVERHEAD, True)
        )
        return plaintext[:size]

    def append(
        self, transfer_id: uuid.UUID, offset: int, chunks: Iterable[bytes | bytearray]
    ) -> int:
        """`Storage.append`, sealed: what arrived before a failure is kept (its tail
        sealed), and appending nothing cuts the staging back to `offset`."""
        if offset > self.staged_size(transfer_id):
            raise ValueError(f"offset {offset} is past the staged bytes of {transfer_id}")
        index = offset // CHUNK
        sealer = _Sealer(
            self._data_key,
            index=index,
            length=self._length,
            buffer=self._tail(transfer_id, offset),
        )
        received = 0

        def sealed() -> Iterator[bytes | bytearray]:
            nonlocal received
            try:
                for chunk in chunks:
                    received += len(chunk)
                    yield from sealer.feed(chunk)
            except GeneratorExit:  # the storage stopped reading: its own error goes on
                raise
            except BaseException:
                yield from sealer.close()  # what arrived stays, as the storage's append promises
                raise
            yield from sealer.close()

        def records() -> Iterator[bytes | bytearray]:
            """The header goes with the first record: a cut back to 0 leaves nothing."""
            headed = offset > 0
            for piece in sealed():
                if not headed:
                    headed = True
                    yield HEADER
                yield piece

        raw_offset = 0 if offset == 0 else HEADER_SIZE + index * RECORD
        self.storage.append(transfer_id, raw_offset, records())
        return received

    def intact_size(self, transfer_id: uuid.UUID) -> int:
        """How much of the staging still opens. A process that stops inside `append`,
        between cutting the tail record back and sealing it again, leaves less than
        the transfer's offset, or a torn last record (then back to its chunk's start)."""
        size = self.staged_size(transfer_id)
        try:
            self._tail(transfer_id, size)
        except Tampered:
            return size // CHUNK * CHUNK
        return size

    def staged_size(self, transfer_id: uuid.UUID) -> int:
        raw = self.storage.staged_size(transfer_id)
        if raw <= HEADER_SIZE:
            return 0
        records, rest = divmod(raw - HEADER_SIZE, RECORD)
        return records * CHUNK + max(rest - OVERHEAD, 0)

    def read_staged(self, transfer_id: uuid.UUID) -> Iterator[bytes]:
        """The plaintext staged so far, each record verified."""
        if self.staged_size(transfer_id) == 0:
            return iter(())
        return _records(self.storage.read_staged(transfer_id), self._data_key, self._final)

    def promote(self, transfer_id: uuid.UUID) -> str:
        key = self.storage.promote(transfer_id)
        if self._on_promote is not None:
            self._on_promote(key)
        return key

    def drop_staged(self, transfer_id: uuid.UUID) -> None:
        self.storage.drop_staged(transfer_id)
