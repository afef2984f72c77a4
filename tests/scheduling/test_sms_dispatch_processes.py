"""Dispatchers as separate processes on one PostgreSQL database and one fake Twilio:
two at once send each of 1,000 reminders exactly once, and one SIGKILLed mid-batch
then restarted loses none and sends none twice. Also one dispatcher sending from
several threads, which needs connections of its own as much as processes do, and
whose threads must not together exceed a recipient's daily cap.

The processes need their own connections and must see each other's commits, so this
runs on a fresh database of its own, not inside the test's transaction. The fake
Twilio listens on 127.0.0.1 in this process; the dispatchers reach it over HTTP.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from scheduling.sms_dispatch import Dispatcher
from services.db import utcnow
from services.models import SmsMessage
from services.notifications.gateway import TwilioGateway
from services.notifications.settings import DEFAULT_SENDER_NAME
from tests.concurrency import fresh_postgres_database
from tests.conftest import app_settings
from tests.factories.people import make_world
from tests.fakes.twilio import FakeTwilio, twilio_settings
from tests.scheduling.test_sms_dispatch import CONTACT, daytime_zone

# Several processes or racing threads: run by `make test`, skipped by `-m 'not slow'`.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
ROWS = 1000
AGAIN = "START to receive them again."
# One dispatcher process: dispatch rounds until nothing is due or in flight. Its
# gateway's timeout must be shorter than the lease, or it would never start a send.
DISPATCHER = """
import json, sys, time
from sqlalchemy import func, or_, select
from api import create_app
from scheduling.sms_dispatch import Dispatcher
from services.models import SmsMessage
from services.notifications.gateway import TwilioGateway

settings, worker, batch = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
app = create_app(settings)
sessions = app.extensions["db"].sessions
gateway = TwilioGateway.from_settings(app.config, timeout=float(sys.argv[4]))
unsettled = or_(
    SmsMessage.status == "sending",
    (SmsMessage.status == "pending") & (SmsMessage.next_attempt_at <= func.now()),
)
deadline = time.monotonic() + 180
while time.monotonic() < deadline:
    if not Dispatcher(sessions, gateway, app.config, worker=worker).dispatch(batch=batch):
        with sessions() as session:
            if not session.scalar(select(func.count()).select_from(SmsMessage).where(unsettled)):
                sys.exit(0)
        time.sleep(0.05)
sys.exit("dispatcher gave up: rows still unsettled")
"""


@pytest.fixture(scope="module")
def fresh_url(database_url: str) -> Iterator[str]:
    with fresh_postgres_database(
        database_url, "dct_sms", "needs dispatcher processes on a server database"
    ) as url:
        yield url


@pytest.fixture
def app(fresh_url: str, make_app: Callable[..., Flask]) -> Flask:
    return make_app(DATABASE_URL=fresh_url)


def plan_rows(app: Flask, count: int, prefix: str) -> dict[str, str]:
    """`count` due rows for one patient (in a zone where it is daytime now), each with
    its own text; returns the text by dedupe key."""
    now = utcnow()
    with Session(app.extensions["db"].engine, expire_on_commit=False) as db:
        world = make_world(db)
        patient = world.patient_a
        patient.user.timezone = daytime_zone(now)
        texts = {}
        for n in range(count):
            key = f"{prefix}:{n}"
            contact = f"{CONTACT} ext {n:04d}"
            db.add(
                SmsMessage(
                    dedupe_key=key,
                    user_id=patient.user.id,
                    participant_id=patient.participant.id,
                    study_id=patient.participant.study_id,
                    template="help",
                    params=json.dumps({"contact": contact}),
                    relevance={},
                    due_at=now - dt.timedelta(minutes=1),
                    next_attempt_at=now - dt.timedelta(minutes=1),
                )
            )
            texts[key] = f"{DEFAULT_SENDER_NAME}: help: {contact}. Reply STOP to stop SMS, {AGAIN}"
        patient.user.locale = "en"
        db.commit()
    return texts


def start_dispatcher(
    settings: dict, worker: str, batch: int = 50, timeout: float = 10.0
) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - our own command line
        [sys.executable, "-c", DISPATCHER, json.dumps(settings), worker, str(batch), str(timeout)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> None:
    _, errors = process.communicate(timeout=240)
    assert process.returncode == 0, errors


def stored(app: Flask, prefix: str) -> list[SmsMessage]:
    with Session(app.extensions["db"].engine) as db:
        return list(
            db.scalars(select(SmsMessage).where(SmsMessage.dedupe_key.startswith(f"{prefix}:")))
        )


def assert_each_sent_once(app: Flask, fake: FakeTwilio, texts: dict[str, str], prefix: str) -> None:
    sent = collections.Counter(form["Body"] for form in fake.requests)
    assert sent == collections.Counter(texts.values())
    rows = stored(app, prefix)
    assert len(rows) == len(texts)
    assert {row.status for row in rows} == {"sent"}
    sids = {message["body"]: message["sid"] for message in fake.messages}
    assert all(row.twilio_sid == sids[texts[row.dedupe_key]] for row in rows)


def test_two_dispatcher_processes_send_each_of_1000_rows_exactly_once(
    app: Flask, fresh_url: str, fake_twilio: FakeTwilio
):
    texts = plan_rows(app, ROWS, "pair")
    fake_twilio.latency = 0.005
    settings = app_settings(fresh_url, **twilio_settings(fake_twilio), DCT_SMS_DAILY_CAP=ROWS)

    dispatchers = [start_dispatcher(settings, worker) for worker in ("one", "two")]
    for process in dispatchers:
        finish(process)

    assert_each_sent_once(app, fake_twilio, texts, "pair")
    assert {row.claimed_by for row in stored(app, "pair")} == {"one", "two"}


def test_a_dispatcher_killed_mid_batch_then_restarted_loses_and_repeats_nothing(
    app: Flask, fresh_url: str, fake_twilio: FakeTwilio
):
    """Killed while Twilio holds its answer: that message was accepted but never
    recorded. After the lease, the restarted dispatcher finds it in Twilio's list."""
    texts = plan_rows(app, 200, "killed")
    fake_twilio.latency = 0.05
    settings = app_settings(
        fresh_url,
        **twilio_settings(fake_twilio),
        DCT_SMS_DAILY_CAP=ROWS,
        DCT_SMS_LEASE_SECONDS=3,
    )
    first = start_dispatcher(settings, "first", batch=20, timeout=1.0)
    deadline = time.monotonic() + 60
    while len(fake_twilio.requests) < 30 and time.monotonic() < deadline:
        time.sleep(0.001)
    first.kill()  # SIGKILL
    first.communicate()
    in_flight = fake_twilio.requests[-1]["Body"]
    unanswered = stored(app, "killed")
    assert {row.status for row in unanswered} >= {"sent", "sending"}

    finish(start_dispatcher(settings, "second", batch=20, timeout=1.0))

    assert_each_sent_once(app, fake_twilio, texts, "killed")
    assert fake_twilio.queries  # the in-flight message was looked up, not resent
    (recovered,) = [row for row in stored(app, "killed") if texts[row.dedupe_key] == in_flight]
    # Reconciliation clears the claim; a dispatcher's own send leaves its name there.
    assert recovered.claimed_by is None


def test_a_dispatcher_sending_from_threads_sends_each_row_once(
    app: Flask, fresh_url: str, fake_twilio: FakeTwilio
):
    texts = plan_rows(app, 200, "threads")
    fake_twilio.latency = 0.05
    settings = {**app.config, **twilio_settings(fake_twilio), "DCT_SMS_DAILY_CAP": ROWS}
    gateway = TwilioGateway.from_settings(settings)
    sessions = app.extensions["db"].sessions

    sent = Dispatcher(sessions, gateway, settings, worker="threaded").dispatch(
        batch=250, threads=10
    )

    assert sent == 200
    assert_each_sent_once(app, fake_twilio, texts, "threads")


def test_threads_sending_to_one_recipient_keep_to_the_daily_cap(
    app: Flask, fresh_url: str, fake_twilio: FakeTwilio
):
    """Every thread checks the cap for the same person at once: the recipient's row
    lock makes them decide one after the other, each seeing the others' messages."""
    plan_rows(app, 40, "capped")
    fake_twilio.latency = 0.05
    settings = {**app.config, **twilio_settings(fake_twilio), "DCT_SMS_DAILY_CAP": 3}
    gateway = TwilioGateway.from_settings(settings)
    sessions = app.extensions["db"].sessions

    sent = Dispatcher(sessions, gateway, settings, worker="capped").dispatch(batch=40, threads=20)

    assert sent == 3
    assert len(fake_twilio.requests) == 3
    rows = stored(app, "capped")
    assert collections.Counter(row.status_reason for row in rows if row.status == "pending") == {
        "deferred: daily cap": 37
    }
