"""Seals anchored outside the database (issue 12, finding 5): `audit export-seals`
writes a day's seals, `audit verify --anchors` catches what the database alone cannot
show: its newest seals deleted (and the events after the last one left), or the whole
trail rewritten by someone who also holds the audit key. And a last seal is written
when the scheduler stops."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from scheduling.runner import build_scheduler
from services.audit import chain as audit
from services.audit import integrity
from services.audit import key as audit_key
from services.models import AuditEvent, AuditSeal
from tests.services.audit import test_audit_tamper
from tests.services.audit.test_audit_tamper import (
    ACTOR,
    chain_rows,
    rewrite_chain,
    sealed_chain,
    wind_head,
)

tamperable = test_audit_tamper.tamperable


def export(app: Flask, tmp_path: Path, day: dt.date | None = None) -> Path:
    args = ["audit", "export-seals"] + (["--date", day.isoformat()] if day else [])
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code == 0, result.output
    anchor = tmp_path / f"seals-{uuid.uuid4().hex}.jsonl"
    anchor.write_text(result.output)
    return anchor


def verify(app: Flask, *anchors: Path):  # type: ignore[no-untyped-def]
    args = ["audit", "verify"] + [arg for a in anchors for arg in ("--anchors", str(a))]
    return app.test_cli_runner().invoke(args=args)


def alerts(db: Session) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.action == "security.alert.audit_anchor_mismatch")
    return list(db.scalars(query))


def test_a_days_seals_are_exported_as_json_lines_and_match(app, db, tmp_path):
    sealed_chain(db)
    audit.record(
        db, ACTOR, "thing.change", entity_type="thing", entity_id=None,
        subject=audit.Subject(study_id=uuid.uuid4()),
    )  # fmt: skip
    integrity.seal(db)

    anchor = export(app, tmp_path, dt.datetime.now(dt.UTC).date())

    lines = [json.loads(line) for line in anchor.read_text().splitlines()]
    stored = db.scalars(select(AuditSeal).order_by(AuditSeal.seq)).all()
    assert [(line["seq"], line["hash"]) for line in lines] == [(s.seq, s.hash) for s in stored]
    assert set(lines[0]) == {"seq", "sealed_at", "hash", "prev_hash", "chains"}
    result = verify(app, anchor)
    assert result.exit_code == 0, result.output
    assert f"{len(lines)} anchored seals match" in result.output


def test_the_default_day_is_yesterday_so_todays_seals_are_not_in_it(app, db, tmp_path):
    sealed_chain(db)

    assert export(app, tmp_path).read_text() == ""


def test_deleting_the_newest_seal_and_the_events_after_the_last_one_left_is_caught(
    app, tamperable, tmp_path
):
    """Without the key the attacker can still cut the seal chain back and then the
    events after the seal that is left: the trail verifies, the anchor does not."""
    db = tamperable
    chain = sealed_chain(db, length=2)
    first = db.scalars(select(AuditSeal)).one()
    more = audit.record(
        db, ACTOR, "thing.change", entity_type="thing", entity_id=None,
        subject=audit.Subject(participant_id=uuid.UUID(chain.split(":")[1])),
    )  # fmt: skip
    newest = integrity.seal(db)
    anchor = export(app, tmp_path, dt.datetime.now(dt.UTC).date())

    db.execute(delete(AuditSeal).where(AuditSeal.seq == newest.seq))
    wind_head(db, integrity.SEAL_CHAIN, first.seq, first.hash)
    db.execute(delete(AuditEvent).where(AuditEvent.id == more.id))
    wind_head(db, chain, more.seq - 1, more.prev_hash)
    db.expire_all()
    assert verify(app).exit_code == 0  # the database alone cannot tell

    result = verify(app, anchor)

    assert result.exit_code == 1, result.output
    assert f"ANCHOR MISMATCH seal {newest.seq}: exported, now missing" in result.output
    (alert,) = alerts(db)
    assert alert.after == {"seals": [f"seal {newest.seq}: exported, now missing from the database"]}


def test_a_trail_rewritten_with_the_stolen_key_is_caught_by_an_older_anchor(
    app, tamperable, tmp_path
):
    db = tamperable
    chain = sealed_chain(db)
    anchor = export(app, tmp_path, dt.datetime.now(dt.UTC).date())

    rows = chain_rows(db, chain)
    rows[1]["after"] = {"n": 99}
    rewrite_chain(db, chain, rows, audit_key.mac)  # the real key: verify is fooled
    assert verify(app).exit_code == 0

    result = verify(app, anchor)

    assert result.exit_code == 1, result.output
    assert "differs from the export in hash" in result.output


@pytest.mark.parametrize(
    ("content", "complaint"),
    [("not json\n", "line 1 is not JSON"), ('{"seq": 1}\n', "line 1 is not a seal")],
)
def test_an_anchor_file_that_is_not_ours_is_a_usage_error(app, db, tmp_path, content, complaint):
    anchor = tmp_path / "seals.jsonl"
    anchor.write_text(content)

    result = verify(app, anchor)

    assert result.exit_code == 2
    assert complaint in result.output
    assert alerts(db) == []


def test_the_scheduler_writes_a_last_seal_when_it_stops(app, db):
    """A real APScheduler, started and shut down: the periodic seal (every minute) has
    not run yet, the one at shutdown pins what was written."""
    event = audit.record(
        db, ACTOR, "thing.change", entity_type="thing", entity_id=None,
        subject=audit.Subject(participant_id=uuid.uuid4()),
    )  # fmt: skip
    scheduler = build_scheduler(app.extensions["db"].sessions, app.config, blocking=False)
    scheduler.start(paused=True)  # no job runs; only the shutdown does anything
    assert db.scalar(select(func.count()).select_from(AuditSeal)) == 0

    scheduler.shutdown()

    (last,) = db.scalars(select(AuditSeal)).all()
    assert last.heads[event.chain] == [event.seq, event.hash]
