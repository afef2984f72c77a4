"""Migration 0009 on a trail written before the audit key: events keep their plain
SHA-256 hashes, one keyed cut-over seal vouches for them, and their reasons end up
encrypted. The legacy part is then no easier to rewrite than the keyed part."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from api.cli import alembic_config
from services import crypto
from services.actor import Actor
from services.audit import chain as audit
from services.audit import integrity
from services.audit import key as audit_key
from services.audit.models import REASON_PURPOSE
from services.db import UtcDateTime
from services.models import AuditEvent, AuditSeal
from tests.migrations.test_migrations import fresh_engine, fresh_url  # noqa: F401 - fixtures

# The tables as revision 0008 left them: the reason a plain string.
OLD_EVENTS = sa.table(
    "audit_events",
    *(
        sa.column(c.key, c.type)
        for c in AuditEvent.__table__.columns
        if c.key not in audit.SEALED_COLUMNS
    ),
    sa.column("reason", sa.String()),
    sa.column("before", sa.JSON()),
    sa.column("after", sa.JSON()),
)
HEADS = sa.table("audit_chain_heads", sa.column("chain"), sa.column("seq"), sa.column("hash"))
OLD_SEALS = sa.table(
    "audit_seals",
    sa.column("id", sa.Uuid()),
    sa.column("seq"),
    sa.column("sealed_at", UtcDateTime()),
    sa.column("heads", sa.JSON()),
    sa.column("prev_hash"),
    sa.column("hash"),
)
CHAIN = f"participant:{uuid.uuid4()}"
REASON = "daughter Anna phoned"


def legacy_events(count: int, start: int = 1, prev: str = audit.GENESIS) -> list[dict[str, Any]]:
    """Events as the code before the key wrote them (plain SHA-256, reason in clear)."""
    rows = []
    for seq in range(start, start + count):
        row = {
            "id": uuid.uuid4(),
            "chain": CHAIN,
            "seq": seq,
            "prev_hash": prev,
            "occurred_at": dt.datetime(2026, 11, 30, 9, seq, tzinfo=dt.UTC),
            "actor_id": None,
            "actor_role": "system",
            "action": "visit.cancel",
            "entity_type": "visit",
            "entity_id": str(uuid.uuid4()),
            "study_id": None,
            "site_id": None,
            "participant_id": None,
            "before": None,
            "after": {"status": "cancelled"},
            "reason": REASON,
            "request_id": "req-legacy",
        }
        row["hash"] = prev = audit_key.legacy_hash(audit.event_payload(AuditEvent(**row)))
        rows.append(row)
    return rows


def write_legacy_trail(engine: Engine) -> list[dict[str, Any]]:
    events = legacy_events(2)
    heads = {CHAIN: [2, events[-1]["hash"]]}
    item = {
        "id": uuid.uuid4(),
        "seq": 1,
        "sealed_at": dt.datetime(2026, 11, 30, 10, tzinfo=dt.UTC),
        "heads": heads,
        "prev_hash": audit.GENESIS,
    }
    sealed_at = item["sealed_at"].isoformat()
    item["hash"] = audit_key.legacy_hash({**item, "id": str(item["id"]), "sealed_at": sealed_at})
    with engine.begin() as conn:
        conn.execute(OLD_EVENTS.insert(), events)
        conn.execute(HEADS.insert(), [{"chain": CHAIN, "seq": 2, "hash": events[-1]["hash"]}])
        conn.execute(OLD_SEALS.insert(), [item])
        conn.execute(
            HEADS.insert(), [{"chain": integrity.SEAL_CHAIN, "seq": 1, "hash": item["hash"]}]
        )
    return events


@pytest.fixture
def migrated(app, fresh_url: str, fresh_engine: Engine) -> Iterator[Session]:  # noqa: F811
    """A legacy trail migrated to head with the app's keys (as `flask db upgrade`)."""
    cfg = alembic_config(fresh_url)
    command.upgrade(cfg, "0008")
    write_legacy_trail(fresh_engine)
    command.upgrade(cfg, "head")
    with Session(fresh_engine) as session:
        if fresh_engine.dialect.name == "postgresql":
            session.execute(
                text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only")
            )
        yield session
        session.rollback()


@pytest.mark.requirement("X-RETENTION")
def test_a_legacy_trail_still_verifies_under_a_keyed_cutover_seal(migrated):
    session = migrated

    assert integrity.verify(session) == (2, None)
    cutover = session.scalars(sa.select(AuditSeal).where(AuditSeal.key_cutover)).one()
    assert cutover.seq == 2
    assert cutover.heads[CHAIN][0] == 2
    assert audit_key.matches(integrity.seal_hash(cutover), cutover.hash)


def test_legacy_reasons_are_encrypted_and_still_read(migrated):
    session = migrated
    raw = session.execute(text("SELECT reason FROM audit_events")).scalars().all()

    assert all(value.startswith("v1:") and REASON not in value for value in raw)
    assert [crypto.decrypt(value, REASON_PURPOSE) for value in raw] == [REASON, REASON]
    assert {e.reason for e in session.scalars(sa.select(AuditEvent))} == {REASON}


@pytest.mark.requirement("X-RETENTION")
def test_legacy_payloads_are_encrypted_and_still_read(migrated):
    """`after` copied what people typed in older events too: sealed by the migration."""
    session = migrated
    raw = session.execute(text("SELECT after FROM audit_events")).scalars().all()

    assert raw and all("cancelled" not in value for value in raw)
    assert [e.after for e in session.scalars(sa.select(AuditEvent))] == [
        {"status": "cancelled"},
        {"status": "cancelled"},
    ]


def test_new_events_after_the_cutover_are_keyed_and_verify(migrated):
    session = migrated
    new = audit.record(
        session,
        Actor.system("req-after"),
        "visit.book",
        entity_type="visit",
        entity_id=None,
        subject=audit.Subject(participant_id=uuid.UUID(CHAIN.split(":")[1])),
        reason="after the key",
    )

    assert new.seq == 3
    assert new.hash == audit.event_hash(new)
    assert integrity.seal(session) is not None
    assert integrity.verify(session) == (3, None)


def test_a_legacy_event_rewritten_with_plain_sha256_is_caught(migrated):
    """Before the key anyone could do this; after the cut-over it shows."""
    session = migrated
    forged = legacy_events(2)  # same chain, other content, recomputed from genesis
    session.execute(text("DELETE FROM audit_events"))
    for row in forged:
        session.execute(
            AuditEvent.__table__.insert().values(**{**row, "reason": REASON})
        )  # fmt: skip
    session.execute(sa.update(HEADS).where(HEADS.c.chain == CHAIN).values(hash=forged[-1]["hash"]))

    _, broken = integrity.verify(session)

    assert broken is not None
    assert broken.problem == "differs from the key cut-over seal: the chain was rewritten"


def test_a_plain_sha256_event_after_the_cutover_is_caught(migrated):
    session = migrated
    last = session.scalars(sa.select(AuditEvent).where(AuditEvent.seq == 2)).one()
    (appended,) = legacy_events(1, start=3, prev=last.hash)
    session.execute(AuditEvent.__table__.insert().values(**appended))
    session.execute(
        sa.update(HEADS).where(HEADS.c.chain == CHAIN).values(seq=3, hash=appended["hash"])
    )

    checked, broken = integrity.verify(session)

    assert checked == 2
    assert broken is not None
    assert broken.problem == "hashed without the audit key: the chain was recomputed or forged"
