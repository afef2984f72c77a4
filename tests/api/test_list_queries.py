"""The list endpoints run a fixed number of SQL statements, whatever the rows they list:
no N+1. Each count is pinned (a change shows here, to be looked at), and the lists
whose rows the tests can grow cheaply are read again with more rows, same count."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from services.actor import Role
from services.db import utcnow
from services.diagnostics import readings
from services.models import Participant
from services.people.participants import actor_for
from tests.conftest import QueryCounter
from tests.factories.people import (
    World,
    headers_for,
    make_participant,
    make_site,
    make_staff,
    make_study,
    user_of,
)
from tests.factories.visits import enrolled_with_visits

# name: (path, who reads it, statements per request)
LISTS: dict[str, tuple[str, str, int]] = {
    "studies": ("/api/v1/studies", "admin", 6),
    "sites": ("/api/v1/studies/{study}/sites", "admin", 7),
    "users": ("/api/v1/users", "admin", 8),
    "participants": ("/api/v1/studies/{study}/participants", "coordinator_a", 8),
    "consent-documents": ("/api/v1/studies/{study}/consent-documents", "coordinator_a", 7),
    "consents": ("/api/v1/participants/{participant}/consents", "coordinator_a", 8),
    "consent-status": ("/api/v1/studies/{study}/consent-status", "coordinator_a", 7),
    "audit": ("/api/v1/audit?study_id={study}", "admin", 6),
    "visit-definitions": ("/api/v1/studies/{study}/visit-definitions", "coordinator_a", 6),
    "visits": ("/api/v1/participants/{participant}/visits", "coordinator_a", 8),
    "delegations": ("/api/v1/nurses/{nurse}/delegations", "coordinator_a", 6),
    "my-visits": ("/api/v1/me/visits", "nurse_a", 5),
    "questionnaires": ("/api/v1/studies/{study}/questionnaires", "coordinator_a", 7),
    "epro-responses": ("/api/v1/participants/{participant}/epro/responses", "coordinator_a", 8),
    "readings": ("/api/v1/participants/{participant}/readings", "coordinator_a", 8),
    "thresholds": ("/api/v1/studies/{study}/reading-thresholds", "coordinator_a", 6),
    "flagged": ("/api/v1/studies/{study}/readings/flagged", "coordinator_a", 7),
    "notifications": ("/api/v1/participants/{participant}/notifications", "coordinator_a", 7),
    "uploads": ("/api/v1/participants/{participant}/uploads", "coordinator_a", 7),
}


def url_of(name: str, world: World) -> str:
    path = LISTS[name][0]
    return path.format(
        study=world.study.id,
        participant=world.patient_a.participant.id,
        nurse=world.nurse_a.id,
    )


def statements(
    client: FlaskClient, count_queries: QueryCounter, world: World, name: str
) -> tuple[int, int]:
    """The statements of one request (after a first one, so nothing is warming up) and
    how many rows it listed."""
    headers = headers_for(client, user_of(world, LISTS[name][1]))
    url = url_of(name, world)
    assert client.get(url, headers=headers).status_code == 200
    with count_queries() as queries:
        response = client.get(url, headers=headers)
    assert response.status_code == 200, response.get_json()
    return len(queries), len(response.get_json())


def add_readings(db: Session, world: World, participant: Participant, how_many: int) -> None:
    patient = actor_for(db, world.patient_a.user, "factory")
    for n in range(how_many):
        readings.record(
            db,
            patient,
            participant.id,
            readings.NewReading(
                "heart_rate",
                60 + n,
                "/min",
                utcnow() - dt.timedelta(minutes=n + 1),
                uuid.uuid4(),
            ),
            now=utcnow(),
        )
    db.flush()


@pytest.mark.parametrize("name", LISTS)
def test_a_list_runs_its_pinned_number_of_statements(client, db, world, count_queries, name):
    participant = enrolled_with_visits(db, world)
    add_readings(db, world, world.patient_a.participant, 2)
    assert participant is not None
    count, _ = statements(client, count_queries, world, name)
    assert count == LISTS[name][2], f"{name}: {count} statements"


def grow(db: Session, world: World) -> None:
    """More of every row the study-wide lists show: studies, sites, staff, participants
    (with their audit events and activation messages), readings."""
    for _ in range(3):
        make_study(db)
        site = make_site(db, world.study)
        make_staff(db, Role.COORDINATOR, sites=[world.site_a, site])
        make_participant(db, world.site_a, coordinator=world.coordinator_a)
    add_readings(db, world, world.patient_a.participant, 4)


@pytest.mark.parametrize(
    "name", ["studies", "sites", "users", "participants", "consent-status", "audit", "readings"]
)
def test_more_rows_cost_no_more_statements(client, db, world, count_queries, name):
    enrolled_with_visits(db, world)
    add_readings(db, world, world.patient_a.participant, 1)
    before, rows_before = statements(client, count_queries, world, name)
    grow(db, world)
    after, rows_after = statements(client, count_queries, world, name)
    assert rows_after > rows_before, f"{name}: the test did not add rows it lists"
    assert after == before, (
        f"{name}: {before} statements for {rows_before} rows, {after} for {rows_after}"
    )
