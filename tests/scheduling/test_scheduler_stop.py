"""The scheduler process as production runs it (`flask --app wsgi scheduler run`),
stopped as a process manager stops it (SIGTERM): it exits cleanly, and its last act is
an audit seal over what was written since the periodic one (issue 12, finding 5)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from api.config import ROOT
from services.actor import Actor
from services.audit import chain as audit
from services.models import AuditSeal
from tests.conftest import app_settings

# Several processes or racing threads: run by `make test`, skipped by `-m 'not slow'`.
pytestmark = pytest.mark.slow


def test_sigterm_stops_the_scheduler_after_a_last_seal(make_app, tmp_path: Path):
    settings = app_settings(f"sqlite:///{tmp_path / 'scheduler.sqlite3'}")
    app = make_app(**settings)
    assert app.test_cli_runner().invoke(args=["db", "upgrade"]).exit_code == 0
    with app.extensions["db"].sessions() as session:
        event = audit.record(
            session, Actor.system("test"), "thing.change", entity_type="thing", entity_id=None,
            subject=audit.Subject(participant_id=uuid.uuid4()),
        )  # fmt: skip
        session.commit()
        chain, seq, digest = event.chain, event.seq, event.hash
    env = {**os.environ, **{name: str(value) for name, value in settings.items()}}
    env["DCT_SMS_GATEWAY"] = "console"
    process = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "scheduler", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert "scheduler running" in process.stdout.readline()  # it runs: its jobs too
        process.send_signal(signal.SIGTERM)
        output, errors = process.communicate(timeout=60)
    finally:
        process.kill()  # never left running, nor its pipes open, when a step failed
        process.communicate()

    assert process.returncode == 0, errors
    assert "scheduler stopped" in output
    with app.extensions["db"].sessions() as session:
        (last,) = session.scalars(select(AuditSeal)).all()
        assert last.heads[chain] == [seq, digest]
