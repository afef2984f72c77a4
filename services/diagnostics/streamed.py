"""One upload whose file streams in after its fields (the multipart form): the order of
its checks, and what is kept when one fails.

Everything the fields sent before the file allow is checked before a byte of the file
is read (access, consent, visit, replay); the file is then staged, sealed and hashed as
it streams, outside any transaction; all the checks run again on fresh rows once it has
arrived, since the consent or the visit may have changed meanwhile. A refused upload
leaves nothing: its staged object is discarded.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy.orm import Session

from services.access import require_role
from services.actor import Actor
from services.db import utcnow
from services.diagnostics import upload_keys, uploads
from services.diagnostics.storage import Staged, Storage
from services.errors import TooLarge
from services.models import Upload


class StreamedUpload:
    """The upload being received; `discard` must be called whatever the outcome. Only
    those who may upload get one, before a byte of the body is read."""

    def __init__(
        self, session: Session, actor: Actor, limits: uploads.Limits, storage: Storage
    ) -> None:
        require_role(actor, *uploads.UPLOADERS)
        self.session, self.actor, self.limits, self.storage = session, actor, limits, storage
        self.staged: Staged | None = None
        self.writer: uploads.HashingWriter | None = None
        self.committed = False
        self.checked: uploads.Target | Upload | None = None

    def check_early(self, meta: uploads.UploadMeta | None, client_id: uuid.UUID | None) -> None:
        """With the fields sent before the file: all the checks when they are complete
        (`meta`), or else at least whether this is a retry of a stored upload."""
        if meta is not None:
            self.checked = uploads.prepare(self.session, self.actor, meta, now=utcnow())
        elif client_id is not None:
            self.checked = uploads.replayed(self.session, self.actor, client_id)

    @property
    def is_replay(self) -> bool:
        """A retry of a stored upload: its file is skipped unread."""
        return isinstance(self.checked, Upload)

    def receive(self, kind: str | None, chunks: Iterable[bytes]) -> None:
        """Stage the file, sealed and hashed as it streams; stopped at the kind's limit."""
        # Hold no transaction (on SQLite: the write lock) while the file streams in.
        self.session.commit()
        self.staged = upload_keys.stage(self.session, self.storage)
        self.writer = uploads.HashingWriter(self.staged, self.limits.of(kind), self.limits.zip)
        for chunk in chunks:
            self.writer.write(chunk)

    def finish(self, meta: uploads.UploadMeta) -> tuple[Upload, bool]:
        """Check everything again from fresh rows, verify the file and record it; the
        original upload (and False) for a retry."""
        self.session.expire_all()
        self.check_early(meta, None)
        if isinstance(self.checked, Upload):
            return self.checked, False
        assert self.writer is not None and isinstance(self.checked, uploads.Target)
        limit = self.limits.of(meta.kind)
        if self.writer.size > limit:
            raise TooLarge(f"the file is larger than the limit of {limit} bytes for {meta.kind}")
        return uploads.finish(
            self.session,
            self.actor,
            meta,
            self.checked,
            received=self.writer,
            commit=self._commit,
            storage_backend=self.storage.name,
            transfer="multipart",
            now=utcnow(),
        )

    def _commit(self) -> str:
        assert self.staged is not None
        key = self.staged.commit()
        self.committed = True
        return key

    def discard(self) -> None:
        """Nothing is kept of an upload that failed."""
        if self.staged is not None and not self.committed:
            self.staged.discard()
