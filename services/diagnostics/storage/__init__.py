"""Where uploaded files live: one interface, a local folder (the default) or
S3-compatible object storage (`s3.py`), one module each.

Files are written to a temporary object and committed under an opaque key only once
complete and verified, so a half-written file is never visible. Keys are random ids:
a client's file name never reaches a path or an object key. Resumable (tus) transfers
keep their bytes in a staging area of the same backend, so any app instance can take
up the next chunk. A backend stores the bytes it is given: uploads reach it sealed
(`services/diagnostics/envelope.py`), never in clear.
"""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterable, Iterator, Mapping
from typing import Any, Protocol

CHUNK = 1024 * 1024


class Staged(Protocol):
    """A temporary object being written: commit it under a fresh key, or discard it."""

    def write(self, chunk: bytes | bytearray) -> None: ...

    def commit(self) -> str: ...

    def discard(self) -> None: ...


class Storage(Protocol):
    name: str

    def stage(self) -> Staged:
        """A new temporary object."""

    def open(self, key: str) -> Iterator[bytes]:
        """The committed object's bytes, in chunks."""

    def append(
        self, transfer_id: uuid.UUID, offset: int, chunks: Iterable[bytes | bytearray]
    ) -> int:
        """Add a resumable transfer's bytes at `offset` (its current length). Whatever
        was written stays even when `chunks` fails mid-way (a dropped connection):
        the return value, or the next `staged_size`, says how much."""

    def staged_size(self, transfer_id: uuid.UUID) -> int: ...

    def read_staged(self, transfer_id: uuid.UUID, start: int = 0) -> Generator[bytes, None, None]:
        """A transfer's bytes from `start` on, in chunks."""

    def promote(self, transfer_id: uuid.UUID) -> str:
        """Commit a complete transfer's bytes under a fresh key."""

    def drop_staged(self, transfer_id: uuid.UUID) -> None: ...


def new_key() -> str:
    return uuid.uuid4().hex


def make_storage(settings: Mapping[str, Any]) -> Storage:
    """The backend the configuration names (`DCT_STORAGE_BACKEND`)."""
    if settings["DCT_STORAGE_BACKEND"] == "s3":
        from services.diagnostics.storage.s3 import S3Storage  # boto3 only when configured

        return S3Storage(
            bucket=settings["DCT_S3_BUCKET"],
            prefix=settings["DCT_S3_PREFIX"],
            endpoint_url=settings["DCT_S3_ENDPOINT_URL"] or None,
            region=settings["DCT_S3_REGION"] or None,
        )
    from services.diagnostics.storage.local import LocalStorage

    return LocalStorage(settings["DCT_UPLOAD_DIR"])
