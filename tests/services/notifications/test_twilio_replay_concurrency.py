"""The same signed Twilio request several times at once (a replay racing Twilio's own
retry): the unique `sms_events.dedupe_key` lets exactly one through; every copy is
acknowledged.

The requests need their own connections and must see each other's commits, so this
runs on a fresh PostgreSQL database of its own, not inside the test's transaction.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.db import utcnow
from services.models import AuditEvent, SmsEvent, SmsMessage
from tests.api.notifications.test_twilio_webhooks import (
    BASE,
    INBOUND,
    STATUS,
    TOKEN,
    post_signed,
    status_form,
)
from tests.concurrency import at_once, fresh_postgres_database
from tests.factories.people import make_world

# Several processes or racing threads: run by `make test`, skipped by `-m 'not slow'`.
pytestmark = pytest.mark.slow

COPIES = 8


@pytest.fixture(scope="module")
def fresh_url(database_url: str) -> Iterator[str]:
    with fresh_postgres_database(
        database_url,
        "dct_twilio_replay",
        "needs concurrent connections to a server database (SQLite serialises)",
    ) as url:
        yield url


@pytest.fixture
def app(fresh_url: str, make_app: Callable[..., Flask]) -> Flask:
    return make_app(DATABASE_URL=fresh_url, PUBLIC_BASE_URL=BASE, TWILIO_AUTH_TOKEN=TOKEN)


def actions(db: Session, action: str, entity_id: uuid.UUID) -> int:
    query = select(func.count()).where(
        AuditEvent.action == action, AuditEvent.entity_id == str(entity_id)
    )
    return db.scalar(query) or 0


def test_one_stop_sent_at_once_several_times_opts_out_once(app: Flask) -> None:
    engine = app.extensions["db"].engine
    with Session(engine, expire_on_commit=False) as db:
        patient = make_world(db).patient_a.user
        db.commit()
    sid = "SM" + uuid.uuid4().hex
    form = {"MessageSid": sid, "From": patient.phone, "To": "+3225550100", "Body": "STOP"}

    def send() -> int:
        return post_signed(app.test_client(), INBOUND, form).status_code

    assert at_once(*[send] * COPIES) == [200] * COPIES

    with Session(engine) as db:
        events = db.scalars(select(SmsEvent).where(SmsEvent.twilio_sid == sid)).all()
        assert len(events) == 1
        assert actions(db, "sms.opt_out", patient.id) == 1


def test_one_status_callback_sent_at_once_several_times_is_kept_once(app: Flask) -> None:
    engine = app.extensions["db"].engine
    sid = "SM" + uuid.uuid4().hex
    with Session(engine, expire_on_commit=False) as db:
        patient = make_world(db).patient_a
        now = utcnow()
        message = SmsMessage(
            dedupe_key=f"test:{uuid.uuid4()}",
            user_id=patient.user.id,
            participant_id=patient.participant.id,
            study_id=patient.participant.study_id,
            template="epro_open",
            params=json.dumps({}),
            relevance={},
            due_at=now,
            next_attempt_at=now,
            status="sent",
            twilio_sid=sid,
        )
        db.add(message)
        db.commit()

    def send() -> int:
        return post_signed(app.test_client(), STATUS, status_form(sid, "delivered")).status_code

    assert at_once(*[send] * COPIES) == [204] * COPIES

    with Session(engine) as db:
        assert db.scalar(select(func.count()).where(SmsEvent.twilio_sid == sid)) == 1
        assert db.get_one(SmsMessage, message.id).status == "delivered"
        assert actions(db, "sms.status", message.id) == 1
