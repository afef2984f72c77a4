"""GET /api/v1/audit: who reads which events, filters, pagination, request ids."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from flask.testing import FlaskClient

from services.db import utcnow
from services.models import AuditEvent
from tests.checks import assert_problem, count
from tests.factories.people import World, headers_for, make_world

AUDIT = "/api/v1/audit"


def events(client: FlaskClient, headers: dict[str, str], **query: object) -> list[dict]:
    response = client.get(AUDIT, headers=headers, query_string={"page_size": 500, **query})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def participant_ids(found: list[dict]) -> set[str | None]:
    return {event["participant_id"] for event in found}


def create_participant(client: FlaskClient, world: World, headers: dict[str, str]) -> dict:
    response = client.post(
        f"/api/v1/studies/{world.study.id}/participants",
        headers=headers,
        json={
            "site_id": str(world.site_a.id),
            "full_name": "Marie Dubois-Lambert",
            "phone": "0471 23 45 67",
            "email": "marie.dubois@example.org",
            "locale": "fr",
            "timezone": "Europe/Brussels",
            "address": "Rue de la Loi 16, 1000 Bruxelles",
            "date_of_birth": "1961-04-12",
        },
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_admin_reads_every_event(client, db):
    world = make_world(db)
    headers = headers_for(client, world.admin)

    found = events(client, headers)

    assert len(found) == count(db, AuditEvent)
    assert {str(world.study.id), str(world.other_study.id)} <= {e["study_id"] for e in found}
    assert str(world.patient_b.participant.id) in participant_ids(found)


def test_coordinator_reads_the_events_of_their_sites_only(client, db):
    world = make_world(db)

    found = events(client, headers_for(client, world.coordinator_a))

    assert found
    assert {e["site_id"] for e in found} == {str(world.site_a.id)}
    assert str(world.patient_a.participant.id) in participant_ids(found)
    assert str(world.patient_b.participant.id) not in participant_ids(found)


def test_monitor_reads_the_events_of_their_study_only(client, db):
    world = make_world(db)

    found = events(client, headers_for(client, world.monitor))

    assert {e["study_id"] for e in found} == {str(world.study.id)}
    assert {str(world.patient_a.participant.id), str(world.patient_b.participant.id)} <= (
        participant_ids(found)
    )
    other = events(client, headers_for(client, world.other_monitor))
    assert {e["study_id"] for e in other} == {str(world.other_study.id)}


def test_nurses_and_patients_may_not_read_the_audit_trail(client, db):
    world = make_world(db)
    for user in (world.nurse_a, world.patient_a.user):
        assert_problem(client.get(AUDIT, headers=headers_for(client, user)), 403)


def test_reading_the_audit_trail_needs_a_token(client, db):
    assert_problem(client.get(AUDIT), 401)


@pytest.mark.requirement("X-AUDIT-REVIEW")
def test_filters_by_entity_and_actor(client, db):
    world = make_world(db)
    headers = headers_for(client, world.admin)
    patient_a = str(world.patient_a.participant.id)

    by_type = events(client, headers, entity_type="participant")
    assert by_type and {e["entity_type"] for e in by_type} == {"participant"}
    assert {e["entity_id"] for e in by_type} == {
        patient_a,
        str(world.patient_b.participant.id),
    }

    by_id = events(client, headers, entity_id=patient_a)
    assert [e["action"] for e in by_id] == ["participant.create"]

    by_actor = events(client, headers, actor_id=str(world.coordinator_b.id))
    assert by_actor and {e["actor_id"] for e in by_actor} == {str(world.coordinator_b.id)}
    assert str(world.patient_b.participant.id) in {e["entity_id"] for e in by_actor}


@pytest.mark.requirement("X-AUDIT-REVIEW")
def test_filters_by_time_window(client, db):
    world = make_world(db)
    headers = headers_for(client, world.coordinator_a)
    boundary = utcnow()
    created = create_participant(client, world, headers)

    since = events(client, headers, since=boundary.isoformat())
    assert [e["entity_id"] for e in since] == [created["id"]]

    until = events(client, headers, until=boundary.isoformat())
    assert until and created["id"] not in {e["entity_id"] for e in until}

    # Any offset is accepted: the same instant in Brussels time selects the same events.
    brussels = boundary.astimezone(dt.timezone(dt.timedelta(hours=2)))
    assert events(client, headers, since=brussels.isoformat()) == since


def test_naive_since_is_refused(client, db):
    world = make_world(db)
    response = client.get(
        AUDIT, headers=headers_for(client, world.admin), query_string={"since": "2026-01-01T00:00"}
    )

    assert "since" in assert_problem(response, 422)["errors"]


def test_pages_carry_the_x_pagination_header(client, db):
    world = make_world(db)
    headers = headers_for(client, world.admin)
    total = count(db, AuditEvent)

    first = client.get(AUDIT, headers=headers, query_string={"page_size": 2})
    second = client.get(AUDIT, headers=headers, query_string={"page_size": 2, "page": 2})

    pagination = json.loads(first.headers["X-Pagination"])
    assert pagination["total"] == total
    assert pagination["total_pages"] == (total + 1) // 2
    assert pagination["next_page"] == 2
    assert len(first.get_json()) == len(second.get_json()) == 2
    assert {e["id"] for e in first.get_json()}.isdisjoint(e["id"] for e in second.get_json())
    too_big = client.get(AUDIT, headers=headers, query_string={"page_size": 501})
    assert_problem(too_big, 422)


def test_events_carry_the_request_id_of_the_request_that_caused_them(client, db):
    world = make_world(db)
    headers = headers_for(client, world.coordinator_a)

    created = create_participant(client, world, {**headers, "X-Request-ID": "app-7f3e-create"})

    found = events(client, headers, entity_id=created["id"])
    assert [(e["action"], e["request_id"]) for e in found] == [
        ("participant.create", "app-7f3e-create")
    ]


def test_audit_payloads_hold_no_direct_identifiers(client, db):
    world = make_world(db)
    headers = headers_for(client, world.coordinator_a)
    created = create_participant(client, world, headers)
    new_contact = {
        "full_name": "Marie Lambert",
        "phone": "+32 472 98 76 54",
        "email": "m.lambert@example.org",
        "address": "Avenue Louise 100, 1050 Ixelles",
        "date_of_birth": "1961-04-21",
    }
    patched = client.patch(
        f"/api/v1/participants/{created['id']}", headers=headers, json=new_contact
    )
    assert patched.status_code == 200, patched.get_json()

    found = events(client, headers_for(client, world.admin), entity_id=created["id"])

    assert [e["action"] for e in found] == ["participant.update", "participant.create"]
    update = found[0]
    assert {name: update["after"][name] for name in new_contact} == dict.fromkeys(
        new_contact, "[changed]"
    )
    text = json.dumps(found)
    for value in (
        *new_contact.values(),
        "+32472987654",
        "Marie Dubois-Lambert",
        "+32471234567",
        "marie.dubois@example.org",
        "Rue de la Loi",
        "1961-04-12",
    ):
        assert value not in text
