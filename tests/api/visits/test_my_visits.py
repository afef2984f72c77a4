"""GET /me/visits: the nurse's day with what the visit needs, the patient's upcoming visits."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from services.actor import Role
from services.models import User, Visit
from tests.checks import assert_problem
from tests.factories.people import World, headers_for, make_participant, make_staff, user_of
from tests.factories.visits import book_via_api, enrolled_with_visits, make_nurse_ready

BRUSSELS = ZoneInfo("Europe/Brussels")
EVERY_DAY = tuple({"weekday": d, "start": "08:00", "end": "18:00"} for d in range(7))
COMMON = {"id", "code", "name", "location", "status", "start_at", "end_at"}
NURSE_READS = COMMON | {"participant_id", "subject_code", "address", "phone", "procedures"}
PATIENT_READS = COMMON | {"nurse_name"}


def z(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def my_visits(client: FlaskClient, user: User, **query: str) -> TestResponse:
    return client.get("/api/v1/me/visits", query_string=query, headers=headers_for(client, user))


def book(client: FlaskClient, world: World, visit: Visit, nurse: User, start: dt.datetime) -> None:
    coordinator = world.coordinator_a if visit.site_id == world.site_a.id else world.coordinator_b
    response = book_via_api(client, coordinator, visit, nurse, start)
    assert response.status_code == 200, response.get_json()


@pytest.fixture
def baseline() -> dt.date:
    """In two days: V1 then falls in the default week, D14 after it."""
    return dt.datetime.now(BRUSSELS).date() + dt.timedelta(days=2)


@pytest.fixture
def booked(client: FlaskClient, db: Session, world: World, baseline: dt.date) -> list[Visit]:
    """Patient A's V1 and D14 booked with nurse A at 10:00; D28 left planned."""
    make_nurse_ready(db, world, hours=EVERY_DAY)
    v1, d14, d28 = enrolled_with_visits(db, world, baseline=baseline)
    book(client, world, v1, world.nurse_a, at(baseline, 10))
    book(client, world, d14, world.nurse_a, at(baseline + dt.timedelta(days=14), 10))
    return [v1, d14, d28]


def at(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), BRUSSELS)


def a_month(baseline: dt.date) -> dict[str, str]:
    start = at(baseline - dt.timedelta(days=1), 0)
    return {"from": start.isoformat(), "to": (start + dt.timedelta(days=31)).isoformat()}


def test_the_nurse_reads_what_the_visit_needs_and_nothing_more(client, world, booked, baseline):
    response = my_visits(client, world.nurse_a, **a_month(baseline))

    assert response.status_code == 200, response.get_json()
    first, second = response.get_json()
    patient = world.patient_a
    assert first == {
        "id": str(booked[0].id),
        "code": "V1",
        "name": "Baseline",
        "location": "home",
        "status": "scheduled",
        "start_at": z(at(baseline, 10)),
        "end_at": z(at(baseline, 11)),
        "participant_id": str(patient.participant.id),
        "subject_code": patient.participant.subject_code,
        "address": patient.participant.address,
        "phone": patient.user.phone,
        "procedures": ["vitals", "blood"],
    }
    assert set(second) == NURSE_READS
    assert second["code"] == "D14"
    text = response.get_data(as_text=True)
    assert patient.user.full_name not in text
    assert patient.user.email not in text


def test_the_patient_reads_when_and_which_nurse_comes(client, world, booked, baseline):
    response = my_visits(client, world.patient_a.user, **a_month(baseline))

    assert response.status_code == 200, response.get_json()
    visits = response.get_json()
    assert [v["code"] for v in visits] == ["V1", "D14"]
    assert all(set(v) == PATIENT_READS for v in visits)
    assert visits[0]["nurse_name"] == world.nurse_a.full_name
    assert visits[0]["start_at"] == z(at(baseline, 10))
    text = response.get_data(as_text=True)
    assert world.nurse_a.email not in text
    assert "vitals" not in text


def test_the_default_range_is_the_coming_week(client, world, booked):
    response = my_visits(client, world.nurse_a)

    assert response.status_code == 200, response.get_json()
    assert [v["code"] for v in response.get_json()] == ["V1"]


def test_visits_outside_the_range_are_left_out(client, world, booked, baseline):
    day_14 = at(baseline + dt.timedelta(days=14), 0)
    query = {"from": day_14.isoformat(), "to": (day_14 + dt.timedelta(days=1)).isoformat()}

    response = my_visits(client, world.nurse_a, **query)

    assert [v["code"] for v in response.get_json()] == ["D14"]


def test_a_nurse_sees_only_visits_assigned_to_them(client, db, world, booked, baseline):
    other_nurse = make_nurse_ready(
        db, world, make_staff(db, Role.NURSE, sites=[world.site_a]), hours=EVERY_DAY
    )
    neighbour = make_participant(db, world.site_a, coordinator=world.coordinator_a)
    their_v1 = enrolled_with_visits(db, world, neighbour, baseline=baseline)[0]
    book(client, world, their_v1, other_nurse, at(baseline, 14))

    mine = my_visits(client, world.nurse_a, **a_month(baseline)).get_json()
    theirs = my_visits(client, other_nurse, **a_month(baseline)).get_json()

    assert [v["id"] for v in mine] == [str(booked[0].id), str(booked[1].id)]
    assert [v["id"] for v in theirs] == [str(their_v1.id)]
    assert neighbour.participant.subject_code not in str(mine)


def test_a_patient_sees_only_their_own_visits(client, db, world, booked, baseline):
    neighbour = make_participant(db, world.site_a, coordinator=world.coordinator_a)
    their_v1 = enrolled_with_visits(db, world, neighbour, baseline=baseline)[0]
    book(client, world, their_v1, world.nurse_a, at(baseline, 14))

    response = my_visits(client, neighbour.user, **a_month(baseline))

    assert [v["id"] for v in response.get_json()] == [str(their_v1.id)]


def test_a_cancelled_visit_leaves_the_nurses_list(client, world, booked, baseline):
    cancel = client.post(
        f"/api/v1/visits/{booked[0].id}/cancel",
        json={"reason": "admitted to hospital"},
        headers=headers_for(client, world.coordinator_a),
    )
    assert cancel.status_code == 200, cancel.get_json()

    response = my_visits(client, world.nurse_a, **a_month(baseline))

    assert [v["code"] for v in response.get_json()] == ["D14"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"from": "2026-12-01T00:00:00"}, "from"),
        ({"from": "2026-12-01T00:00:00Z", "to": "2026-12-02T00:00:00"}, "to"),
        ({"from": "2026-12-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}, "to"),
        ({"from": "2026-12-01T00:00:00Z", "to": "2027-02-02T00:00:01Z"}, "to"),
        ({"from": "tomorrow"}, "from"),
    ],
    ids=["naive-from", "naive-to", "empty-range", "over-62-days", "not-a-time"],
)
def test_a_bad_range_is_refused(client, world, booked, query, field):
    body = assert_problem(my_visits(client, world.nurse_a, **query), 422)

    assert field in body["errors"]


def test_62_days_is_the_longest_range(client, world, booked):
    query = {"from": "2026-12-01T00:00:00+01:00", "to": "2027-02-01T00:00:00+01:00"}

    assert my_visits(client, world.nurse_a, **query).status_code == 200


@pytest.mark.parametrize("who", ["coordinator_a", "monitor", "admin"])
def test_only_nurses_and_patients_have_visit_lists(client, world, who):
    assert_problem(my_visits(client, user_of(world, who)), 403)


def test_without_a_token_the_list_is_refused(client, world):
    assert_problem(client.get("/api/v1/me/visits"), 401)
