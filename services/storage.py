"""Where uploaded files live: one interface, a local folder (the default) or
S3-compatible object storage (`services/storage_s3.py`).

Files are written to a temporary object and committed under an opaque key only once
complete and verified, so a half-written file is never visible. Keys are random ids:
a client's file name never reaches a path or an object key. Resumable (tus) transfers
keep their bytes in a staging area of the same backend, so any app instance can take
up the next chunk. A backend stores the bytes it is given: uploads reach it sealed
(`services/envelope.py`), never in clear.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

CHUNK = 1024 * 1024


class Staged(Protocol):
    """A temporary object being written: commit it under a fresh key, or discard it."""

    def write(self, chunk: bytes) -> None: ...

    def commit(self) -> str: ...

    def discard(self) -> None: ...


class Storage(Protocol):
    name: str

    def stage(self) -> Staged:
        """A new temporary object."""

    def open(self, key: str) -> Iterator[bytes]:
        """The committed object's bytes, in chunks."""

    def append(self, transfer_id: uuid.UUID, offset: int, chunks: Iterable[bytes]) -> int:
        """Add a resumable transfer's bytes at `offset` (its current length). Whatever
        was written stays even when `chunks` fails mid-way (a dropped connection):
        the return value, or the next `staged_size`, says how much."""

    def staged_size(self, transfer_id: uuid.UUID) -> int: ...

    def read_staged(self, transfer_id: uuid.UUID, start: int = 0) -> Iterator[bytes]:
        """A transfer's bytes from `start` on, in chunks."""

    def promote(self, transfer_id: uuid.UUID) -> str:
        """Commit a complete transfer's bytes under a fresh key."""

    def drop_staged(self, transfer_id: uuid.UUID) -> None: ...


def new_key() -> str:
    return uuid.uuid4().hex


class _LocalStaged:
    def __init__(self, root: Path) -> None:
        self._root = root
        self._path = root / "tmp" / new_key()
        self._file = self._path.open("xb")

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)

    def commit(self) -> str:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        key = new_key()
        os.replace(self._path, self._root / "objects" / key)
        return key

    def discard(self) -> None:
        self._file.close()
        self._path.unlink(missing_ok=True)


class LocalStorage:
    """A folder: `objects/` holds committed files, `tmp/` files being written,
    `tus/` resumable transfers. Committing is a rename within one file system."""

    name = "local"

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        for folder in ("objects", "tmp", "tus"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)

    def _object(self, key: str) -> Path:
        if not key.isalnum():  # keys are ours (hex); anything else is not a key
            raise FileNotFoundError(key)
        return self.root / "objects" / key

    def _transfer(self, transfer_id: uuid.UUID) -> Path:
        return self.root / "tus" / transfer_id.hex

    def stage(self) -> Staged:
        return _LocalStaged(self.root)

    def open(self, key: str) -> Iterator[bytes]:
        with self._object(key).open("rb") as file:
            while chunk := file.read(CHUNK):
                yield chunk

    def append(self, transfer_id: uuid.UUID, offset: int, chunks: Iterable[bytes]) -> int:
        if offset > self.staged_size(transfer_id):
            raise ValueError(f"offset {offset} is past the staged bytes of {transfer_id}")
        written = 0
        with self._transfer(transfer_id).open("ab") as file:
            file.truncate(offset)  # drop any tail a failed request left unaccounted
            try:
                for chunk in chunks:
                    file.write(chunk)
                    written += len(chunk)
            finally:
                file.flush()
                os.fsync(file.fileno())
        return written

    def staged_size(self, transfer_id: uuid.UUID) -> int:
        path = self._transfer(transfer_id)
        return path.stat().st_size if path.exists() else 0

    def read_staged(self, transfer_id: uuid.UUID, start: int = 0) -> Iterator[bytes]:
        with self._transfer(transfer_id).open("rb") as file:
            file.seek(start)
            while chunk := file.read(CHUNK):
                yield chunk

    def promote(self, transfer_id: uuid.UUID) -> str:
        key = new_key()
        os.replace(self._transfer(transfer_id), self._object(key))
        return key

    def drop_staged(self, transfer_id: uuid.UUID) -> None:
        self._transfer(transfer_id).unlink(missing_ok=True)


def make_storage(settings: Mapping[str, Any]) -> Storage:
    """The backend the configuration names (`DCT_STORAGE_BACKEND`)."""
    if settings["DCT_STORAGE_BACKEND"] == "s3":
        from services.storage_s3 import S3Storage  # boto3 only when configured

        return S3Storage(
            bucket=settings["DCT_S3_BUCKET"],
            prefix=settings["DCT_S3_PREFIX"],
            endpoint_url=settings["DCT_S3_ENDPOINT_URL"] or None,
            region=settings["DCT_S3_REGION"] or None,
        )
    return LocalStorage(settings["DCT_UPLOAD_DIR"])
