"""The hash-chained audit trail: chains per subject, `audit verify`, seals, and the
append-only guarantee of PostgreSQL.

Tampering is done with plain SQL, as someone with database access would; on
PostgreSQL the append-only trigger is first disabled inside the test's transaction
(rolled back with it), since the database would refuse the edit otherwise.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import sqlalchemy as sa
from click.testing import Result
from flask import Flask
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from scheduling import housekeeping
from scheduling.runner import run_job
from services import crypto
from services.actor import Actor, Role
from services.audit import chain as audit
from services.audit import integrity
from services.audit.models import REASON_PURPOSE
from services.db import utcnow
from services.errors import Conflict
from services.models import AuditChainHead, AuditEvent, AuditSeal, AuthSession, LoginLockout
from services.studies import studies
from tests.checks import count
from tests.factories.people import ADMIN, make_participant, make_site, make_study, make_world

ACTOR = Actor(user_id=uuid.uuid4(), role=Role.COORDINATOR, request_id="req-chain")


def record(db: Session, subject: audit.Subject, action: str = "thing.change") -> AuditEvent:
    return audit.record(
        db, ACTOR, action, entity_type="thing", entity_id=uuid.uuid4(), subject=subject
    )


def three_events(db: Session) -> list[AuditEvent]:
    subject = audit.Subject(participant_id=uuid.uuid4())
    return [record(db, subject) for _ in range(3)]


def verify_cli(app: Flask) -> Result:
    return app.test_cli_runner().invoke(args=["audit", "verify"])


def failed_verify(app: Flask) -> str:
    """The report of `audit verify` on a broken trail, which must exit with 1."""
    result = verify_cli(app)
    assert result.exit_code == 1, result.output
    return result.output


@pytest.fixture
def tamperable(db: Session, dialect: str) -> Session:
    """Lift PostgreSQL's append-only trigger for this test's transaction only."""
    if dialect == "postgresql":
        db.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
    return db


def test_events_of_one_subject_form_a_chain(db):
    first, second, third = three_events(db)

    assert {e.chain for e in (first, second, third)} == {first.chain}
    assert [e.seq for e in (first, second, third)] == [1, 2, 3]
    assert first.prev_hash == audit.GENESIS
    assert second.prev_hash == first.hash
    assert third.prev_hash == second.hash
    assert all(e.hash == audit.event_hash(e) for e in (first, second, third))
    head = db.get(AuditChainHead, first.chain)
    assert (head.seq, head.hash) == (3, third.hash)


def test_each_subject_has_its_own_chain(db):
    world = make_world(db)
    a, b = world.patient_a.participant, world.patient_b.participant

    event_a = record(db, audit.Subject(study_id=a.study_id, site_id=a.site_id, participant_id=a.id))
    event_b = record(db, audit.Subject(study_id=b.study_id, site_id=b.site_id, participant_id=b.id))

    assert event_a.chain == f"participant:{a.id}"
    assert event_b.chain == f"participant:{b.id}"
    for participant, event in ((a, event_a), (b, event_b)):
        chain = db.scalars(select(AuditEvent).where(AuditEvent.chain == event.chain)).all()
        assert {e.participant_id for e in chain} == {participant.id}
        assert "participant.create" in {e.action for e in chain}
        assert sorted(e.seq for e in chain) == list(range(1, event.seq + 1))
    assert audit.Subject(site_id=a.site_id).chain == f"site:{a.site_id}"
    assert audit.Subject().chain == "global"


def test_direct_identifiers_are_recorded_by_name_only(db):
    event = audit.record(
        db,
        ACTOR,
        "participant.update",
        entity_type="participant",
        entity_id=uuid.uuid4(),
        subject=audit.Subject(participant_id=uuid.uuid4()),
        before={"full_name": "Jan Peeters", "status": "screening"},
        after={"phone": "+32470000000", "status": "consented"},
    )

    assert event.before == {"full_name": audit.REDACTED, "status": "screening"}
    assert event.after == {"phone": audit.REDACTED, "status": "consented"}


def test_verify_passes_on_an_intact_trail(app, db):
    make_world(db)
    three_events(db)
    checked, broken = integrity.verify(db)

    assert broken is None
    assert checked == count(db, AuditEvent)
    result = verify_cli(app)
    assert result.exit_code == 0, result.output
    assert f"audit trail intact: {checked} events verified" in result.output


@pytest.mark.requirement("X-AUDIT-TRAIL")
def test_verify_names_an_edited_event(app, tamperable):
    db = tamperable
    _, second, _ = three_events(db)
    assert verify_cli(app).exit_code == 0

    db.execute(
        text("UPDATE audit_events SET reason = 'nothing happened' WHERE chain = :c AND seq = 2"),
        {"c": second.chain},
    )

    report = failed_verify(app)
    assert f"event {second.id} (chain {second.chain}, seq 2)" in report
    assert "the event was edited" in report


def test_verify_names_the_gap_left_by_a_deleted_event(app, tamperable):
    db = tamperable
    _, second, third = three_events(db)

    db.execute(text("DELETE FROM audit_events WHERE chain = :c AND seq = 2"), {"c": second.chain})

    report = failed_verify(app)
    assert f"event {third.id} (chain {third.chain}, seq 3)" in report
    assert "expected seq 2: an event is missing" in report


def test_verify_detects_a_deleted_last_event_through_the_chain_head(app, tamperable):
    db = tamperable
    _, _, third = three_events(db)

    db.execute(text("DELETE FROM audit_events WHERE chain = :c AND seq = 3"), {"c": third.chain})

    report = failed_verify(app)
    assert f"chain {third.chain}: events up to the recorded head are missing" in report


def test_verify_detects_a_deleted_chain_through_the_seal(app, tamperable):
    db = tamperable
    make_world(db)
    first, _, _ = three_events(db)
    assert integrity.seal(db) is not None

    # Erase the chain and its head: only the seal still remembers it.
    db.execute(text("DELETE FROM audit_events WHERE chain = :c"), {"c": first.chain})
    db.execute(text("DELETE FROM audit_chain_heads WHERE chain = :c"), {"c": first.chain})

    report = failed_verify(app)
    assert f"chain {first.chain}: sealed events are missing" in report


def test_verify_detects_a_rewritten_chain_through_the_seal(app, tamperable):
    """Even an editor holding the key, who recomputes the hashes and the head, is
    caught by the seal."""
    db = tamperable
    _, _, third = three_events(db)
    integrity.seal(db)

    db.execute(
        text("UPDATE audit_events SET reason = :r WHERE chain = :c AND seq = 3"),
        {"c": third.chain, "r": crypto.encrypt("rewritten", REASON_PURPOSE)},
    )
    db.refresh(third)
    forged = audit.event_hash(third)
    db.execute(sa.update(AuditEvent).where(AuditEvent.id == third.id).values(hash=forged))
    db.execute(
        sa.update(AuditChainHead).where(AuditChainHead.chain == third.chain).values(hash=forged)
    )

    report = failed_verify(app)
    assert f"event {third.id} (chain {third.chain}, seq 3)" in report
    assert "the chain was rewritten" in report


def test_a_failed_service_call_leaves_no_audit_event(db):
    study = make_study(db)
    events_before = count(db, AuditEvent)

    with pytest.raises(Conflict), db.begin_nested():
        studies.create_study(db, ADMIN, studies.NewStudy(study.code, "Again", ["en"], "UTC"))

    assert count(db, AuditEvent) == events_before


def test_an_event_is_rolled_back_with_its_change(db):
    """The event lives in the caller's transaction: no change, no event, no chain head."""
    study = make_study(db)
    events_before = count(db, AuditEvent)

    savepoint = db.begin_nested()
    site_chain = f"site:{make_site(db, study).id}"
    assert count(db, AuditEvent) == events_before + 1
    savepoint.rollback()

    assert count(db, AuditEvent) == events_before
    heads = db.scalars(select(AuditChainHead.chain)).all()
    assert site_chain not in heads
    assert integrity.verify(db)[1] is None


def test_seal_job_writes_a_seal_only_when_something_changed(db):
    make_world(db)
    system = Actor.system("job-test")

    assert housekeeping.seal_audit_trail(db, system) == "seal 1"
    assert housekeeping.seal_audit_trail(db, system) == "nothing new to seal"
    assert count(db, AuditSeal) == 1

    record(db, audit.Subject(user_id=uuid.uuid4()))
    assert housekeeping.seal_audit_trail(db, system) == "seal 2"
    seals = db.scalars(select(AuditSeal).order_by(AuditSeal.seq)).all()
    assert seals[1].prev_hash == seals[0].hash
    assert integrity.verify(db)[1] is None


def test_seal_job_runs_in_its_own_committed_transaction(app, db):
    make_participant(db, make_site(db, make_study(db)))

    run_job(app.extensions["db"].sessions, "audit-seal", housekeeping.seal_audit_trail)

    sealed = db.scalars(select(AuditSeal)).one()
    heads = {h.chain: [h.seq, h.hash] for h in db.scalars(select(AuditChainHead))}
    heads.pop(integrity.SEAL_CHAIN)
    assert sealed.heads == heads


@pytest.mark.requirement("X-RETENTION")
def test_housekeeping_purges_expired_sessions_and_lock_outs_but_no_audit_event(db):
    world = make_world(db)
    now = utcnow()
    sessions, lockouts = count(db, AuthSession), count(db, LoginLockout)
    db.add_all(
        [
            AuthSession(user_id=world.admin.id, expires_at=now - dt.timedelta(days=400)),
            LoginLockout(
                user_id=world.admin.id,
                client_key="203.0.113.9",
                failures=2,
                updated_at=now - dt.timedelta(days=400),
            ),
        ]
    )
    db.flush()
    trail_before = set(db.scalars(select(AuditEvent.id)))
    assert trail_before

    done = housekeeping.purge_expired_sessions(db, Actor.system("job-test"))

    assert done == "1 expired sessions and 1 stale lock-out counts purged"
    assert (count(db, AuthSession), count(db, LoginLockout)) == (sessions, lockouts)
    assert set(db.scalars(select(AuditEvent.id))) == trail_before
    assert integrity.verify(db)[1] is None


@pytest.mark.requirement("X-AUDIT-TRAIL")
def test_postgresql_refuses_to_update_or_delete_audit_rows(db, dialect):
    if dialect != "postgresql":
        pytest.skip("the append-only trigger exists on PostgreSQL only")
    first, _, _ = three_events(db)
    integrity.seal(db)

    for statement in (
        "UPDATE audit_events SET reason = 'edited'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
        "UPDATE audit_seals SET heads = '{}'",
        "DELETE FROM audit_seals",
    ):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), db.begin_nested():
            db.execute(text(statement))

    db.expire_all()
    assert db.get(AuditEvent, first.id).reason is None
    assert count(db, AuditEvent) == 3
    assert count(db, AuditSeal) == 1
