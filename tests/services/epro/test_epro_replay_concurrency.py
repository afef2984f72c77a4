"""One submission sent 20 times at once (a phone retrying over a flaky network, or
syncing from two queues): exactly one record, and every answer carries it.

The requests need their own connections and must see each other's commits, so this
runs on a fresh PostgreSQL database of its own, not inside the test's transaction.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.db import utcnow
from services.epro import responses as epro_responses
from services.errors import Conflict
from services.models import AuditEvent, EproInstance, EproResponse, User
from services.people import participants as people
from tests.concurrency import at_once, fresh_postgres_database, while_first_holds
from tests.factories.epro import ANSWERS, make_instance, make_questionnaire
from tests.factories.people import headers_for, make_world
from tests.factories.visits import enrolled_with_visits

# Several processes or racing threads: run by `make test`, skipped by `-m 'not slow'`.
pytestmark = pytest.mark.slow

SENDERS = 20


@pytest.fixture(scope="module")
def fresh_url(database_url: str) -> Iterator[str]:
    with fresh_postgres_database(
        database_url,
        "dct_replay",
        "needs concurrent connections to a server database (SQLite serialises)",
    ) as url:
        yield url


@dataclass
class Open:
    """A patient with two open instances, committed so that every connection sees them."""

    patient: User
    instances: tuple[EproInstance, EproInstance]


@pytest.fixture
def app(fresh_url: str, make_app: Callable[..., Flask]) -> Flask:
    return make_app(DATABASE_URL=fresh_url)


@pytest.fixture
def opened(app: Flask) -> Open:
    with Session(app.extensions["db"].engine, expire_on_commit=False) as db:
        world = make_world(db)
        enrolled_with_visits(db, world)
        questionnaire = make_questionnaire(db, world.study, world.coordinator_a)
        participant = world.patient_a.participant
        instances = (
            make_instance(db, participant, questionnaire),
            make_instance(db, participant, questionnaire),
        )
        db.commit()
    return Open(world.patient_a.user, instances)


def test_the_same_client_id_sent_20_times_at_once_yields_one_record(
    app: Flask, opened: Open
) -> None:
    engine = app.extensions["db"].engine
    instance = opened.instances[0]
    headers = headers_for(app.test_client(), opened.patient)
    completed = utcnow() - dt.timedelta(minutes=1)
    body = {
        "client_id": str(uuid.uuid4()),
        "instance_id": str(instance.id),
        "answers": ANSWERS,
        "started_at": (completed - dt.timedelta(minutes=2)).isoformat(),
        "completed_at": completed.isoformat(),
    }

    def send() -> tuple[int, dict]:
        response = app.test_client().post("/api/v1/epro/responses", json=body, headers=headers)
        return response.status_code, response.get_json()

    results = at_once(*[send] * SENDERS)

    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * (SENDERS - 1) + [201], results
    (response_id,) = {answer["id"] for _, answer in results}
    with Session(engine) as db:
        stored = db.scalars(select(EproResponse).where(EproResponse.instance_id == instance.id))
        assert [str(response.id) for response in stored] == [response_id]
        assert db.get(EproInstance, instance.id).status == "completed"
        events = db.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "epro.response.submit", AuditEvent.entity_id == response_id)
        )
        assert events == 1


def submission(instance: EproInstance, client_id: uuid.UUID) -> epro_responses.Submission:
    completed = utcnow() - dt.timedelta(minutes=1)
    return epro_responses.Submission(
        client_id, instance.id, "completed", ANSWERS, completed, completed
    )


def test_the_database_refuses_one_client_id_on_two_instances_at_once(
    app: Flask, opened: Open
) -> None:
    """The instances differ, so their row locks do not serialise the two: the unique
    client_id does. The second waits for the first transaction, then answers 409."""
    engine = app.extensions["db"].engine
    client_id = uuid.uuid4()
    outcome: list[BaseException | None] = []
    grace = dt.timedelta(days=1)
    with Session(engine) as first, Session(engine) as second:
        actor = people.actor_for(first, first.merge(opened.patient), "first")
        epro_responses.submit(
            first, actor, submission(opened.instances[0], client_id), now=utcnow(), grace=grace
        )

        def other_instance() -> None:
            try:
                epro_responses.submit(
                    second,
                    actor,
                    submission(opened.instances[1], client_id),
                    now=utcnow(),
                    grace=grace,
                )
                outcome.append(None)
            except Conflict as error:
                outcome.append(error)

        while_first_holds(engine, first, second, other_instance)

    (error,) = outcome
    assert isinstance(error, Conflict)
    assert "another ePRO instance" in error.detail
    with Session(engine) as db:
        stored = db.scalars(select(EproResponse).where(EproResponse.client_id == client_id)).all()
        assert [response.instance_id for response in stored] == [opened.instances[0].id]
        assert db.get(EproInstance, opened.instances[1].id).status == "scheduled"
