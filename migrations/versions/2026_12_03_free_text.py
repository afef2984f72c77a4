"""free text and the signed PDF encrypted at rest (issue 12, findings 1 and 3)

Every existing value is encrypted here, with the keys the app uses: through
`flask db upgrade` the app's own, through plain `alembic upgrade` those that
migrations/env.py configures from DCT_ENCRYPTION_KEY. The purposes (associated data)
are those of the models' column types, spelled out so that this file never changes
with the models.

- Reasons (String) become Text holding AES-GCM tokens: a new column is filled and
  swapped in for the old one (ADD, UPDATE, DROP, RENAME), which SQLite does in place;
  a rebuilt table would trip its foreign keys on existing rows.
- `epro_responses.answers` and `tus_transfers.metadata` (whose supersede reason is
  free text) stay JSON columns that now hold one JSON string, the token, so their
  type and NOT NULL stay and only values are rewritten.
- `consents.pdf` stays binary: its bytes are sealed in place.

On PostgreSQL `epro_responses` refuses every UPDATE (append-only trigger). The
trigger is disabled for the rewrite and enabled again in the same transaction, so no
other session ever sees the table unprotected; the rows keep their ids, versions and
correction chain, only the stored form of their text changes.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 08:45:00
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from alembic import op

from services import crypto

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# (table, column, length of the plaintext column it was): purpose "<table>.<column>".
REASONS = (
    ("visits", "deviation_reason", 1000),
    ("visits", "cancel_reason", 1000),
    ("epro_instances", "cancel_reason", 300),
    ("epro_responses", "reason", 1000),
    ("consents", "withdrawal_reason", 1000),
    ("uploads", "supersede_reason", 1000),
)
BATCH = 200
APPEND_ONLY = {"epro_responses", "uploads"}  # PostgreSQL triggers refuse UPDATE on these


def _is_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


@contextmanager
def _writable(table: str) -> Iterator[None]:
    """Lift the append-only trigger for this migration's rewrite of the table."""
    guarded = table in APPEND_ONLY and _is_postgresql()
    if guarded:
        op.execute(f"ALTER TABLE {table} DISABLE TRIGGER {table}_append_only")
    yield
    if guarded:
        op.execute(f"ALTER TABLE {table} ENABLE TRIGGER {table}_append_only")


def _rewrite(
    table: str,
    source: sa.ColumnClause[Any],
    change: Callable[[Any], Any],
    target: sa.ColumnClause[Any] | None = None,
) -> None:
    """Set `target` (default: `source` itself) to change(source) in every row whose
    source is not null, row by row."""
    target = source if target is None else target
    columns = [source] if target is source else [source, target]
    rows = sa.table(table, sa.column("id", sa.Uuid()), *columns)
    bind = op.get_bind()
    with _writable(table):
        for row_id, value in _in_batches(bind, rows.c.id, source):
            update = sa.update(rows).where(rows.c.id == row_id)
            bind.execute(update.values({target.name: change(value)}))


def _in_batches(bind: sa.Connection, key: Any, source: Any) -> Iterator[tuple[Any, Any]]:
    """(id, value) of every row whose value is not null, BATCH rows at a time in id
    order, so a table of signed PDFs never sits in memory whole."""
    last = None
    while True:
        query = sa.select(key, source).where(source.is_not(None)).order_by(key).limit(BATCH)
        found = bind.execute(query if last is None else query.where(key > last)).all()
        yield from found
        if len(found) < BATCH:
            return
        last = found[-1][0]


def _retype(table: str, name: str, old: Any, new: Any, change: Callable[[Any], Any]) -> None:
    """Replace column `name` of type `old` by one of type `new` holding change(value)."""
    op.add_column(table, sa.Column(f"{name}_new", new, nullable=True))
    _rewrite(table, sa.column(name, old), change, sa.column(f"{name}_new", new))
    op.execute(f"ALTER TABLE {table} DROP COLUMN {name}")
    op.execute(f"ALTER TABLE {table} RENAME COLUMN {name}_new TO {name}")


def _sealer(purpose: str) -> Callable[[str], str]:
    return lambda value: crypto.encrypt(value, purpose)


def _opener(purpose: str) -> Callable[[str], str]:
    return lambda token: crypto.decrypt(token, purpose)


ANSWERS = sa.column("answers", sa.JSON())
TUS_METADATA = sa.column("metadata", sa.JSON())
PDF = sa.column("pdf", sa.LargeBinary())


def upgrade() -> None:
    for table, name, length in REASONS:
        _retype(table, name, sa.String(length), sa.Text(), _sealer(f"{table}.{name}"))
    seal_answers = _sealer("epro_responses.answers")
    _rewrite("epro_responses", ANSWERS, lambda answers: seal_answers(json.dumps(answers)))
    seal_metadata = _sealer("tus_transfers.metadata")
    _rewrite("tus_transfers", TUS_METADATA, lambda meta: seal_metadata(json.dumps(meta)))
    _rewrite("consents", PDF, lambda pdf: crypto.encrypt_bytes(bytes(pdf), "consents.pdf"))


def downgrade() -> None:
    _rewrite("consents", PDF, lambda pdf: crypto.decrypt_bytes(bytes(pdf), "consents.pdf"))
    open_metadata = _opener("tus_transfers.metadata")
    _rewrite("tus_transfers", TUS_METADATA, lambda token: json.loads(open_metadata(token)))
    open_answers = _opener("epro_responses.answers")
    _rewrite("epro_responses", ANSWERS, lambda token: json.loads(open_answers(token)))
    for table, name, length in REASONS:
        _retype(table, name, sa.Text(), sa.String(length), _opener(f"{table}.{name}"))
