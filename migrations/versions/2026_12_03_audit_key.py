"""keyed audit chains and the audit reason encrypted at rest (issue 12, findings 5 and 3)

Existing events keep their plain SHA-256 hashes: rewriting them under the key is
exactly what an attacker with the key would do, and it would vouch for whatever the
table held. Instead one keyed "cut-over" seal records every chain head as it stands
now; `audit verify` accepts plain SHA-256 only for events up to those positions, and
everything after must carry the HMAC. Existing reasons and before/after payloads
(which copy what people typed) are encrypted in place: their hashes cover the
plaintext, so they still verify.

Both need the keys: `flask --app wsgi db upgrade` has them from the app; a plain
`alembic upgrade` configures them from the environment (DCT_ENCRYPTION_KEY,
DCT_AUDIT_KEY; production settings refuse development keys). An empty trail needs
neither.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 08:45:00
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa
from alembic import op

from services.db import UtcDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

SEAL_CHAIN = "seals"
GENESIS = "0" * 64
BATCH = 500
PAYLOADS = ("before", "after")  # JSON columns: each now holds one JSON string, the token

events = sa.table(
    "audit_events",
    sa.column("id", sa.Uuid()),
    sa.column("reason", sa.Text()),
    *(sa.column(name, sa.JSON()) for name in PAYLOADS),
)
heads = sa.table(
    "audit_chain_heads",
    sa.column("chain", sa.String()),
    sa.column("seq", sa.Integer()),
    sa.column("hash", sa.String()),
)
seals = sa.table(
    "audit_seals",
    sa.column("id", sa.Uuid()),
    sa.column("seq", sa.Integer()),
    sa.column("sealed_at", UtcDateTime()),
    sa.column("heads", sa.JSON()),
    sa.column("prev_hash", sa.String()),
    sa.column("hash", sa.String()),
    sa.column("key_cutover", sa.Boolean()),
)


def _configure_keys() -> None:
    """Leave the app's keys alone; outside the app, take them from the environment."""
    from services import crypto
    from services.audit import key as audit_key

    if audit_key.is_configured():
        return
    from api.config import load

    settings = load()
    crypto.configure(crypto.decode_master_key(settings["DCT_ENCRYPTION_KEY"]))
    audit_key.configure(audit_key.decode_audit_key(settings["DCT_AUDIT_KEY"]))


def _append_only(enabled: bool) -> None:
    """Lift PostgreSQL's append-only trigger for this migration's own rewrite only."""
    if op.get_bind().dialect.name == "postgresql":
        state = "ENABLE" if enabled else "DISABLE"
        op.execute(f"ALTER TABLE audit_events {state} TRIGGER audit_events_append_only")


def _sealed(value: Any, column: str) -> Any:
    from services import crypto

    text = value if column == "reason" else json.dumps(value, ensure_ascii=False)
    return crypto.encrypt(text, f"audit_events.{column}")


def _opened(token: Any, column: str) -> Any:
    from services import crypto

    text = crypto.decrypt(token, f"audit_events.{column}")
    return text[:1000] if column == "reason" else json.loads(text)


def _rewrite_free_text(convert: Callable[[Any, str], Any]) -> None:
    """Set every non-null reason, before and after to convert(value, column)."""
    bind = op.get_bind()
    if bind.execute(sa.select(events.c.id).limit(1)).first() is None:
        return
    _configure_keys()
    _append_only(False)
    for row in _in_batches(bind):
        values = {
            column: convert(getattr(row, column), column)
            for column in ("reason", *PAYLOADS)
            if getattr(row, column) is not None
        }
        if values:
            bind.execute(events.update().where(events.c.id == row.id).values(**values))
    _append_only(True)


def _in_batches(bind: sa.Connection) -> Iterator[sa.Row[Any]]:
    """Every event, BATCH at a time in id order: a trail never sits in memory whole."""
    last = None
    while True:
        query = sa.select(events).order_by(events.c.id).limit(BATCH)
        found = bind.execute(query if last is None else query.where(events.c.id > last)).all()
        yield from found
        if len(found) < BATCH:
            return
        last = found[-1].id


def _write_cutover_seal() -> None:
    """One keyed seal over today's heads vouches for the plain SHA-256 trail before it."""
    from services.audit import integrity
    from services.audit import key as audit_key
    from services.db import utcnow
    from services.models import AuditSeal

    bind = op.get_bind()
    chains = {c: [s, h] for c, s, h in bind.execute(sa.select(heads)) if c != SEAL_CHAIN}
    sealed = bind.execute(sa.select(heads).where(heads.c.chain == SEAL_CHAIN)).one_or_none()
    if not chains and sealed is None:
        return  # a new trail: every event will carry the HMAC
    _configure_keys()
    assert audit_key.is_configured()
    seq, prev = (sealed.seq, sealed.hash) if sealed is not None else (0, GENESIS)
    cutover = AuditSeal(
        id=uuid.uuid4(),
        seq=seq + 1,
        sealed_at=utcnow(),
        heads=chains,
        prev_hash=prev,
        key_cutover=True,
    )
    digest = integrity.seal_hash(cutover)
    bind.execute(
        seals.insert().values(
            id=cutover.id,
            seq=cutover.seq,
            sealed_at=cutover.sealed_at,
            heads=chains,
            prev_hash=prev,
            hash=digest,
            key_cutover=True,
        )
    )
    if sealed is None:
        bind.execute(heads.insert().values(chain=SEAL_CHAIN, seq=cutover.seq, hash=digest))
    else:
        bind.execute(
            heads.update().where(heads.c.chain == SEAL_CHAIN).values(seq=cutover.seq, hash=digest)
        )


def upgrade() -> None:
    with op.batch_alter_table("audit_seals") as batch:
        batch.add_column(
            sa.Column("key_cutover", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("audit_events") as batch:
        batch.alter_column(
            "reason", existing_type=sa.String(length=1000), type_=sa.Text(), existing_nullable=True
        )
    _rewrite_free_text(_sealed)
    _write_cutover_seal()


def downgrade() -> None:
    """Reasons and payloads back in clear. The keyed events and seals stay (the trail is
    append-only): the code before this revision reports them as broken."""
    _rewrite_free_text(_opened)
    with op.batch_alter_table("audit_events") as batch:
        batch.alter_column(
            "reason", existing_type=sa.Text(), type_=sa.String(length=1000), existing_nullable=True
        )
    with op.batch_alter_table("audit_seals") as batch:
        batch.drop_column("key_cutover")
