"""A database writer without DCT_AUDIT_KEY cannot rewrite the audit trail unnoticed.

Each test plays the attacker of issue 12 (finding 5) with plain SQL: change the
trail, then recompute everything that could give it away (event hashes, prev_hash
links, sequence numbers, the chain head, every seal and the seal head) with what they
have: plain SHA-256, as the trail was hashed before the key, or an HMAC under a key
of their own. The attacker is even handed the encryption key (they read the events
through the models), so the audit key alone is what stops them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session

from services.actor import Actor, Role
from services.audit import chain as audit
from services.audit import integrity
from services.audit import key as audit_key
from services.models import AuditChainHead, AuditEvent, AuditSeal

ACTOR = Actor(user_id=uuid.uuid4(), role=Role.COORDINATOR, request_id="req-tamper")

Forge = Callable[[str, dict[str, Any]], str]


def _canonical(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()


def plain_sha256(kind: str, payload: dict[str, Any]) -> str:
    """How the trail was hashed before the audit key: anyone can compute it."""
    return hashlib.sha256(_canonical(payload)).hexdigest()


ATTACKER_KEY = os.urandom(32)


def wrong_key(kind: str, payload: dict[str, Any]) -> str:
    """The real construction, under a key that is not DCT_AUDIT_KEY."""
    message = kind.encode() + b"\x00" + _canonical(payload)
    return hmac.new(ATTACKER_KEY, message, hashlib.sha256).hexdigest()


FORGERS = pytest.mark.parametrize("forge", [plain_sha256, wrong_key], ids=["sha256", "wrong-key"])
# The attacker re-seals too (the seal chain gives it away) or leaves the seals (the
# events do).
RESEAL = pytest.mark.parametrize("reseal_too", [True, False], ids=["resealed", "seals-kept"])


@pytest.fixture
def tamperable(db: Session, dialect: str) -> Session:
    """Lift PostgreSQL's append-only triggers for this test's transaction only."""
    if dialect == "postgresql":
        for table in ("audit_events", "audit_seals"):
            db.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER {table}_append_only"))
    return db


def sealed_chain(db: Session, length: int = 4) -> str:
    """A participant's chain of `length` events, sealed, with a second chain beside it."""
    subject = audit.Subject(participant_id=uuid.uuid4())
    for n in range(length):
        audit.record(
            db, ACTOR, "thing.change", entity_type="thing", entity_id=None, subject=subject,
            after={"n": n},
        )  # fmt: skip
    audit.record(
        db, ACTOR, "other.change", entity_type="thing", entity_id=None,
        subject=audit.Subject(site_id=uuid.uuid4()),
    )  # fmt: skip
    assert integrity.seal(db) is not None
    return subject.chain


def chain_rows(db: Session, chain: str) -> list[dict[str, Any]]:
    """The chain's events as column values (the reason in plaintext), in order."""
    query = select(AuditEvent).where(AuditEvent.chain == chain).order_by(AuditEvent.seq)
    columns = [column.key for column in AuditEvent.__table__.columns]
    return [{key: getattr(event, key) for key in columns} for event in db.scalars(query)]


def rewrite_chain(
    db: Session, chain: str, rows: list[dict[str, Any]], forge: Forge, *, seals: bool = True
) -> None:
    """Replace the chain by `rows`, renumbered, relinked and re-hashed with `forge`;
    wind its head to the new end, then (with `seals`) re-seal."""
    db.execute(delete(AuditEvent).where(AuditEvent.chain == chain))
    prev = audit.GENESIS
    for seq, row in enumerate(rows, start=1):
        row = {**row, "seq": seq, "prev_hash": prev}
        payload = audit.event_payload(AuditEvent(**row))
        row["hash"] = prev = forge(audit.EVENT_MAC, payload)
        db.execute(AuditEvent.__table__.insert().values(**row))
    wind_head(db, chain, len(rows), prev)
    if seals:
        reseal(db, forge)
    db.expire_all()


def wind_head(db: Session, chain: str, seq: int, digest: str) -> None:
    db.execute(
        update(AuditChainHead).where(AuditChainHead.chain == chain).values(seq=seq, hash=digest)
    )


def reseal(db: Session, forge: Forge) -> None:
    """Every seal made to agree with today's chain heads, and the seal chain re-hashed."""
    current = {h.chain: [h.seq, h.hash] for h in db.scalars(select(AuditChainHead))}
    prev = audit.GENESIS
    for item in db.scalars(select(AuditSeal).order_by(AuditSeal.seq)).all():
        item.heads = {chain: current.get(chain, pinned) for chain, pinned in item.heads.items()}
        item.prev_hash = prev
        item.hash = prev = forge(integrity.SEAL_MAC, integrity.seal_payload(item))
    db.flush()
    wind_head(db, integrity.SEAL_CHAIN, current[integrity.SEAL_CHAIN][0], prev)
    db.expire_all()


def assert_caught(app: Flask, where: str) -> str:
    """`audit verify` exits 1, naming where the rewrite shows (a chain, or a seal)."""
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("BROKEN")
    assert where in result.output, result.output
    return result.output


def caught_at(chain: str, reseal_too: bool) -> str:
    return "seal content does not match its hash" if reseal_too else f"chain {chain}, seq"


@FORGERS
@RESEAL
def test_an_edited_event_is_caught_though_everything_was_recomputed(
    app, tamperable, forge, reseal_too
):
    db = tamperable
    chain = sealed_chain(db)
    rows = chain_rows(db, chain)
    rows[1]["after"] = {"n": 99}

    rewrite_chain(db, chain, rows, forge, seals=reseal_too)

    assert_caught(app, caught_at(chain, reseal_too))


@FORGERS
@RESEAL
def test_an_inserted_event_is_caught_though_everything_was_recomputed(
    app, tamperable, forge, reseal_too
):
    db = tamperable
    chain = sealed_chain(db)
    rows = chain_rows(db, chain)
    forged = {**rows[1], "id": uuid.uuid4(), "action": "consent.withdraw"}

    rewrite_chain(db, chain, [rows[0], forged, *rows[1:]], forge, seals=reseal_too)

    assert_caught(app, caught_at(chain, reseal_too))


@FORGERS
@RESEAL
def test_a_deleted_middle_event_is_caught_though_everything_was_recomputed(
    app, tamperable, forge, reseal_too
):
    db = tamperable
    chain = sealed_chain(db)
    rows = chain_rows(db, chain)

    rewrite_chain(db, chain, [rows[0], *rows[2:]], forge, seals=reseal_too)

    assert_caught(app, caught_at(chain, reseal_too))


@FORGERS
def test_a_deleted_tail_older_than_the_last_seal_is_caught(app, tamperable, forge):
    """The last two events go, the head is wound back to the survivor (its stored
    values, nothing to compute) and the seals are made to agree."""
    db = tamperable
    chain = sealed_chain(db)
    rows = chain_rows(db, chain)
    db.execute(delete(AuditEvent).where(AuditEvent.chain == chain, AuditEvent.seq > 2))
    wind_head(db, chain, 2, rows[1]["hash"])

    reseal(db, forge)

    assert_caught(app, "seal content does not match its hash")


@FORGERS
@RESEAL
def test_a_chain_recomputed_without_the_key_is_caught(app, tamperable, forge, reseal_too):
    """Nothing changed but the hashes: a trail the attacker could have made up."""
    db = tamperable
    chain = sealed_chain(db)

    rewrite_chain(db, chain, chain_rows(db, chain), forge, seals=reseal_too)

    assert_caught(app, caught_at(chain, reseal_too))


def test_the_same_steps_with_the_key_pass_verify(app, tamperable):
    """The attacker helpers themselves are sound: with the real key, the rewritten
    trail verifies, so what catches the rewrites above is the key alone."""
    db = tamperable
    chain = sealed_chain(db)

    rewrite_chain(db, chain, chain_rows(db, chain), audit_key.mac)

    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output


def test_a_tampered_reason_ciphertext_is_reported_not_raised(app, tamperable):
    db = tamperable
    event = audit.record(
        db, ACTOR, "visit.cancel", entity_type="visit", entity_id=None,
        subject=audit.Subject(participant_id=uuid.uuid4()), reason="patient in hospital",
    )  # fmt: skip
    db.execute(
        text("UPDATE audit_events SET reason = :r WHERE chain = :c"),
        {"r": "v1:" + "A" * 40, "c": event.chain},
    )

    report = assert_caught(app, f"event {event.id} (chain {event.chain}, seq 1)")
    assert "its reason does not decrypt: the event was edited" in report


@pytest.mark.parametrize(
    "stored",
    [
        "not json{",  # not even JSON
        '{"status": "cancelled"}',  # a payload written in clear over the ciphertext
        '"v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"',  # a token that does not open
    ],
)
def test_a_tampered_payload_is_reported_not_raised(app, tamperable, dialect, stored):
    if dialect == "postgresql" and stored == "not json{":
        pytest.skip("PostgreSQL's json type refuses to store it")
    db = tamperable
    event = audit.record(
        db, ACTOR, "visit.cancel", entity_type="visit", entity_id=None,
        subject=audit.Subject(participant_id=uuid.uuid4()), after={"status": "cancelled"},
    )  # fmt: skip
    db.execute(
        text('UPDATE audit_events SET "after" = :a WHERE chain = :c'),
        {"a": stored, "c": event.chain},
    )

    report = assert_caught(app, f"event {event.id} (chain {event.chain}, seq 1)")
    assert "its after does not decrypt: the event was edited" in report


def test_a_payload_token_moved_from_before_to_after_is_caught(app, tamperable):
    """Each payload column has its own purpose: a ciphertext copied across fails."""
    db = tamperable
    event = audit.record(
        db, ACTOR, "visit.cancel", entity_type="visit", entity_id=None,
        subject=audit.Subject(participant_id=uuid.uuid4()),
        before={"status": "scheduled"}, after={"status": "cancelled"},
    )  # fmt: skip
    db.execute(
        text('UPDATE audit_events SET "after" = "before" WHERE chain = :c'), {"c": event.chain}
    )

    report = assert_caught(app, f"event {event.id} (chain {event.chain}, seq 1)")
    assert "its after does not decrypt: the event was edited" in report
