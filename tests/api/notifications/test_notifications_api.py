"""GET /participants/{id}/notifications: a participant's planned and sent SMS for the
coordinators of their site, with delivery status and never the text or parameters."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from services.models import SmsMessage
from services.notifications import planning as sms_rules
from tests.checks import assert_problem, count
from tests.factories.people import World, headers_for, random_id, user_of
from tests.factories.visits import book_via_api, enrolled_with_visits, make_nurse_ready

FIELDS = {
    "id",
    "template",
    "status",
    "status_reason",
    "due_at",
    "next_attempt_at",
    "sent_at",
    "delivered_at",
    "attempts",
    "error_code",
    "segments",
}
# The booking below is planned from before the visits of March 2027.
BEFORE = dt.datetime(2027, 3, 1, tzinfo=dt.UTC)
VISIT_START = "2027-03-29T10:00:00+02:00"


def url(participant_id: object) -> str:
    return f"/api/v1/participants/{participant_id}/notifications"


@pytest.fixture
def booked(db, world: World, client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> World:
    """patient_a: their activation code, then a D14 visit's two reminders."""
    monkeypatch.setattr(sms_rules, "utcnow", lambda: BEFORE)
    nurse = make_nurse_ready(db, world)
    planned = enrolled_with_visits(db, world, baseline=dt.date(2027, 3, 15))
    d14 = next(visit for visit in planned if visit.code == "D14")
    start = dt.datetime.fromisoformat(VISIT_START)
    assert book_via_api(client, world.coordinator_a, d14, nurse, start).status_code == 200
    return world


def test_the_coordinator_reads_planned_and_sent_messages_without_their_content(client, booked, db):
    response = client.get(
        url(booked.patient_a.participant.id), headers=headers_for(client, booked.coordinator_a)
    )
    assert response.status_code == 200, response.get_json()
    items = response.get_json()
    assert [item["template"] for item in items] == ["visit_morning", "visit_24h", "activation_code"]
    assert all(set(item) == FIELDS for item in items)
    morning = items[0]
    assert morning["status"] == "pending" and morning["attempts"] == 0
    assert morning["due_at"] == morning["next_attempt_at"] == "2027-03-29T06:00:00Z"
    assert "params" not in response.get_data(as_text=True)


def test_a_sent_message_shows_its_delivery(client, booked, db):
    row = db.scalars(select(SmsMessage).filter_by(template="visit_24h")).one()
    row.status, row.attempts, row.segments = "delivered", 1, 1
    row.sent_at = row.delivered_at = dt.datetime(2027, 3, 28, 8, 0, 5, tzinfo=dt.UTC)
    db.flush()
    response = client.get(
        url(booked.patient_a.participant.id), headers=headers_for(client, booked.coordinator_a)
    )
    item = next(item for item in response.get_json() if item["template"] == "visit_24h")
    assert (item["status"], item["segments"], item["delivered_at"]) == (
        "delivered",
        1,
        "2027-03-28T08:00:05Z",
    )


def test_the_list_is_paginated(client, booked):
    headers = headers_for(client, booked.coordinator_a)
    first = client.get(url(booked.patient_a.participant.id) + "?page_size=2", headers=headers)
    assert first.status_code == 200
    assert len(first.get_json()) == 2
    pagination = json.loads(first.headers["X-Pagination"])
    assert (pagination["total"], pagination["total_pages"]) == (3, 2)
    second = client.get(
        url(booked.patient_a.participant.id) + "?page=2&page_size=2", headers=headers
    )
    assert [item["template"] for item in second.get_json()] == ["activation_code"]


@pytest.mark.parametrize("who", ["admin", "nurse_a", "monitor", "patient", "other_monitor"])
def test_only_coordinators_read_notifications(client, world, who):
    response = client.get(
        url(world.patient_a.participant.id), headers=headers_for(client, user_of(world, who))
    )
    assert_problem(response, 403)


def test_another_sites_or_an_unknown_participant_is_not_found(client, world):
    headers = headers_for(client, world.coordinator_b)
    assert_problem(client.get(url(world.patient_a.participant.id), headers=headers), 404)
    assert_problem(client.get(url(random_id()), headers=headers), 404)


def test_a_bad_page_size_is_refused_and_nothing_changes(client, world, db):
    before = count(db, SmsMessage)
    response = client.get(
        url(world.patient_a.participant.id) + "?page_size=0",
        headers=headers_for(client, world.coordinator_a),
    )
    body = assert_problem(response, 422)
    assert "page_size" in json.dumps(body["errors"])
    assert count(db, SmsMessage) == before


def test_no_token_no_answer(client, world):
    assert_problem(client.get(url(world.patient_a.participant.id)), 401)
