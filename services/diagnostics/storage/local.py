"""The default storage backend: a folder on the app's own disk.

Enough for one machine (`make run`, a single-instance deployment); several app
instances need a shared backend (`s3.py`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path

from services.diagnostics.storage import CHUNK, Staged, new_key


class _LocalStaged:
    def __init__(self, root: Path) -> None:
        self._root = root
        self._path = root / "tmp" / new_key()
        self._file = self._path.open("xb")

    def write(self, chunk: bytes | bytearray) -> None:
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

    def append(
        self, transfer_id: uuid.UUID, offset: int, chunks: Iterable[bytes | bytearray]
    ) -> int:
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

    def read_staged(self, transfer_id: uuid.UUID, start: int = 0) -> Generator[bytes, None, None]:
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
