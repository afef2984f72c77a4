"""Booking a nurse for a visit: every refusal answers 409 with its reason and books nothing."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from services.actor import Role
from services.models import User, Visit
from services.people import participants as people
from services.visits import nurses
from tests.checks import assert_problem, audit_events
from tests.factories.consent import make_consent_document
from tests.factories.people import World, headers_for, make_participant, make_staff, user_of
from tests.factories.visits import enrolled_with_visits, make_nurse_ready

# enrolled_with_visits: baseline Monday 2026-03-16, so V1 (home, 60 min) has the window
# 2026-03-16 only and D14 (home) 2026-03-28 to 2026-04-01.
MONDAY = "2026-03-16"


def local(day: str, hhmm: str, zone: str = "Europe/Brussels") -> str:
    return dt.datetime.fromisoformat(f"{day}T{hhmm}").replace(tzinfo=ZoneInfo(zone)).isoformat()


def schedule(
    client: FlaskClient,
    user: User,
    visit: Visit,
    nurse: User,
    start: str,
    end: str,
    **extra: object,
) -> TestResponse:
    return client.post(
        f"/api/v1/visits/{visit.id}/schedule",
        json={"nurse_id": str(nurse.id), "start": start, "end": end, **extra},
        headers=headers_for(client, user),
    )


def book_v1(client: FlaskClient, world: World, visit: Visit, start: str, end: str) -> TestResponse:
    return schedule(
        client, world.coordinator_a, visit, world.nurse_a, local(MONDAY, start), local(MONDAY, end)
    )


def unchanged(db: Session, visit: Visit) -> bool:
    """Still planned, without a nurse, and no booking audited."""
    db.expire_all()
    fresh = db.get(Visit, visit.id)
    return (
        fresh.status == "planned"
        and fresh.nurse_id is None
        and fresh.start_at is None
        and audit_events(db, "visit.schedule", visit.id) == []
    )


@pytest.fixture
def visits(db: Session, world: World) -> list[Visit]:
    make_nurse_ready(db, world)
    return enrolled_with_visits(db, world)


@pytest.fixture
def v1(visits: list[Visit]) -> Visit:
    return visits[0]


@pytest.fixture
def neighbour_v1(db: Session, world: World, visits: list[Visit]) -> Visit:
    """The V1 visit, on the same Monday, of a second participant of site A."""
    neighbour = make_participant(db, world.site_a, coordinator=world.coordinator_a)
    return enrolled_with_visits(db, world, neighbour)[0]


def test_a_coordinator_books_a_nurse_inside_window_and_hours(client, db, world, v1):
    response = book_v1(client, world, v1, "09:00", "10:00")

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "scheduled"
    assert body["nurse_id"] == str(world.nurse_a.id)
    assert (body["start_at"], body["end_at"]) == ("2026-03-16T08:00:00Z", "2026-03-16T09:00:00Z")
    assert body["deviation_reason"] is None
    db.expire_all()
    stored = db.get(Visit, v1.id)
    assert stored.busy_until == dt.datetime(2026, 3, 16, 9, 30, tzinfo=dt.UTC)
    (event,) = audit_events(db, "visit.schedule", v1.id)
    assert (event.before["status"], event.after["status"]) == ("planned", "scheduled")
    assert audit_events(db, "visit.protocol_deviation", v1.id) == []


@pytest.mark.requirement("VISIT-3")
def test_a_day_outside_the_window_is_refused(client, db, world, v1):
    response = schedule(
        client,
        world.coordinator_a,
        v1,
        world.nurse_a,
        local("2026-03-17", "09:00"),
        local("2026-03-17", "10:00"),
    )

    detail = assert_problem(response, 409)["detail"]
    assert "2026-03-17 is outside the visit window 2026-03-16 to 2026-03-16" in detail
    assert "override_reason" in detail
    assert unchanged(db, v1)


@pytest.mark.requirement("VISIT-3")
def test_an_override_reason_books_outside_the_window_as_a_protocol_deviation(client, db, world, v1):
    response = schedule(
        client,
        world.coordinator_a,
        v1,
        world.nurse_a,
        local("2026-03-17", "09:00"),
        local("2026-03-17", "10:00"),
        override_reason="participant in hospital on the baseline day",
    )

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "scheduled"
    assert body["deviation_reason"] == "participant in hospital on the baseline day"
    (deviation,) = audit_events(db, "visit.protocol_deviation", v1.id)
    assert deviation.reason == "participant in hospital on the baseline day"
    assert deviation.after == {
        "window_start": MONDAY,
        "window_end": MONDAY,
        "booked_day": "2026-03-17",
    }
    assert len(audit_events(db, "visit.schedule", v1.id)) == 1


@pytest.mark.parametrize(
    ("start", "end"),
    [("07:00", "08:00"), ("17:30", "18:30"), ("07:30", "08:30")],
    ids=["before-hours", "past-hours", "straddling-the-start"],
)
def test_outside_the_nurses_working_hours_is_refused(client, db, world, v1, start, end):
    response = book_v1(client, world, v1, start, end)

    assert assert_problem(response, 409)["detail"] == "outside the nurse's working hours"
    assert unchanged(db, v1)


def test_a_nurse_without_hours_on_that_weekday_is_refused(client, db, world, visits):
    make_nurse_ready(db, world, hours=[{"weekday": 1, "start": "08:00", "end": "18:00"}])

    response = book_v1(client, world, visits[0], "09:00", "10:00")

    assert assert_problem(response, 409)["detail"] == "outside the nurse's working hours"
    assert unchanged(db, visits[0])


def test_the_nurses_time_off_is_refused(client, db, world, v1):
    profile = nurses.get_availability(
        db, people.actor_for(db, world.nurse_a, "t"), world.nurse_a.id
    )
    day_off = (
        dt.datetime(2026, 3, 16, 7, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 16, 12, tzinfo=dt.UTC),
    )
    nurses.set_availability(
        db,
        people.actor_for(db, world.nurse_a, "t"),
        world.nurse_a.id,
        nurses.Availability(profile.timezone, profile.weekly_hours, [day_off]),
    )

    response = book_v1(client, world, v1, "09:00", "10:00")

    assert assert_problem(response, 409)["detail"] == "the nurse is on time off then"
    assert unchanged(db, v1)


@pytest.mark.parametrize(
    ("start", "end", "status"),
    [("09:30", "10:30", 409), ("10:15", "11:15", 409), ("10:30", "11:30", 200)],
    ids=["overlapping", "inside-travel-buffer", "after-travel-buffer"],
)
def test_the_nurses_next_home_visit_keeps_the_travel_buffer(
    client, db, world, v1, neighbour_v1, start, end, status
):
    assert book_v1(client, world, v1, "09:00", "10:00").status_code == 200

    response = book_v1(client, world, neighbour_v1, start, end)

    if status == 409:
        detail = assert_problem(response, 409)["detail"]
        assert "the nurse has another visit from 2026-03-16 08:00 UTC" in detail
        assert "30 minutes' travel" in detail
        assert unchanged(db, neighbour_v1)
    else:
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["start_at"] == "2026-03-16T09:30:00Z"


def test_a_visit_ending_within_the_buffer_before_another_is_refused(
    client, db, world, v1, neighbour_v1
):
    assert book_v1(client, world, v1, "11:00", "12:00").status_code == 200

    response = book_v1(client, world, neighbour_v1, "09:45", "10:45")

    assert "the nurse has another visit" in assert_problem(response, 409)["detail"]
    assert unchanged(db, neighbour_v1)


def test_the_travel_buffer_comes_from_configuration(db, world, v1, neighbour_v1, make_app):
    client = make_app(DCT_TRAVEL_BUFFER_MINUTES=10).test_client()
    assert book_v1(client, world, v1, "09:00", "10:00").status_code == 200

    response = book_v1(client, world, neighbour_v1, "10:15", "11:15")

    assert response.status_code == 200, response.get_json()


def test_a_cancelled_visit_no_longer_blocks_the_nurse(client, db, world, v1, neighbour_v1):
    assert book_v1(client, world, v1, "09:00", "10:00").status_code == 200
    client.post(
        f"/api/v1/visits/{v1.id}/cancel",
        json={"reason": "participant unwell"},
        headers=headers_for(client, world.coordinator_a),
    )

    response = book_v1(client, world, neighbour_v1, "09:00", "10:00")

    assert response.status_code == 200, response.get_json()


@pytest.fixture
def second_nurse(db: Session, world: World) -> User:
    return make_nurse_ready(db, world, make_staff(db, Role.NURSE, sites=[world.site_a]))


def test_overlapping_another_visit_of_the_participant_is_refused(
    client, db, world, visits, second_nurse
):
    v1, d14 = visits[0], visits[1]
    assert book_v1(client, world, v1, "09:00", "10:00").status_code == 200

    response = schedule(
        client,
        world.coordinator_a,
        d14,
        second_nurse,
        local(MONDAY, "09:30"),
        local(MONDAY, "10:30"),
        override_reason="both visits on one day",
    )

    assert (
        assert_problem(response, 409)["detail"] == "the participant has another visit at that time"
    )
    assert unchanged(db, d14)
    assert audit_events(db, "visit.protocol_deviation", d14.id) == []


def test_the_participant_needs_no_travel_buffer_between_their_visits(
    client, world, visits, second_nurse
):
    v1, d14 = visits[0], visits[1]
    assert book_v1(client, world, v1, "09:00", "10:00").status_code == 200

    response = schedule(
        client,
        world.coordinator_a,
        d14,
        second_nurse,
        local(MONDAY, "10:00"),
        local(MONDAY, "11:00"),
        override_reason="both visits on one day",
    )

    assert response.status_code == 200, response.get_json()


@pytest.mark.requirement("VISIT-1")
def test_a_nurse_without_delegation_is_refused(client, db, world, v1):
    nurse = make_staff(db, Role.NURSE, sites=[world.site_a])
    nurses.set_availability(
        db,
        people.actor_for(db, nurse, "t"),
        nurse.id,
        nurses.Availability(
            "Europe/Brussels", [{"weekday": 0, "start": "08:00", "end": "18:00"}], []
        ),
    )

    response = schedule(
        client, world.coordinator_a, v1, nurse, local(MONDAY, "09:00"), local(MONDAY, "10:00")
    )

    assert "has not delegated home visits" in assert_problem(response, 409)["detail"]
    assert unchanged(db, v1)


@pytest.mark.requirement("VISIT-1")
def test_a_nurse_with_expired_training_is_refused(client, db, world, v1):
    nurse = make_staff(db, Role.NURSE, sites=[world.site_a])
    make_nurse_ready(db, world, nurse, valid_until=dt.date(2026, 3, 15))

    response = schedule(
        client, world.coordinator_a, v1, nurse, local(MONDAY, "09:00"), local(MONDAY, "10:00")
    )

    detail = assert_problem(response, 409)["detail"]
    assert detail == "this nurse's study training expired on 2026-03-15"
    assert unchanged(db, v1)


def test_training_valid_through_the_visit_day_is_enough(client, db, world, v1):
    nurse = make_staff(db, Role.NURSE, sites=[world.site_a])
    make_nurse_ready(db, world, nurse, valid_until=dt.date(2026, 3, 16))

    response = schedule(
        client, world.coordinator_a, v1, nurse, local(MONDAY, "09:00"), local(MONDAY, "10:00")
    )

    assert response.status_code == 200, response.get_json()


def test_a_nurse_of_another_site_is_refused(client, db, world, v1):
    nurse_b = make_nurse_ready(db, world, make_staff(db, Role.NURSE, sites=[world.site_b]))

    response = schedule(
        client, world.coordinator_a, v1, nurse_b, local(MONDAY, "09:00"), local(MONDAY, "10:00")
    )

    detail = assert_problem(response, 409)["detail"]
    assert detail == "this nurse does not serve the participant's site"
    assert unchanged(db, v1)


@pytest.mark.parametrize("who", ["coordinator_a", "monitor"])
def test_a_user_who_is_not_a_nurse_cannot_be_booked(client, db, world, v1, who):
    response = schedule(
        client,
        world.coordinator_a,
        v1,
        user_of(world, who),
        local(MONDAY, "09:00"),
        local(MONDAY, "10:00"),
    )

    assert "nurse_id" in assert_problem(response, 422)["errors"]
    assert unchanged(db, v1)


@pytest.mark.requirement("X-STEP-ORDER")
def test_booking_needs_a_current_consent(client, db, world, v1):
    make_consent_document(db, world.study, requires_reconsent=True)

    response = book_v1(client, world, v1, "09:00", "10:00")

    assert "re-consent" in assert_problem(response, 409)["detail"]
    assert unchanged(db, v1)


@pytest.mark.parametrize("who", ["nurse_a", "monitor", "patient", "admin"])
def test_only_coordinators_book(client, db, world, v1, who):
    response = schedule(
        client,
        user_of(world, who),
        v1,
        world.nurse_a,
        local(MONDAY, "09:00"),
        local(MONDAY, "10:00"),
    )

    assert_problem(response, 403)
    assert unchanged(db, v1)


def test_another_sites_visit_is_not_found(client, db, world, v1):
    response = schedule(
        client,
        world.coordinator_b,
        v1,
        world.nurse_a,
        local(MONDAY, "09:00"),
        local(MONDAY, "10:00"),
    )

    assert_problem(response, 404)
    assert unchanged(db, v1)


def test_booking_needs_a_token(client, db, v1):
    response = client.post(f"/api/v1/visits/{v1.id}/schedule", json={})

    assert_problem(response, 401)
    assert unchanged(db, v1)


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        (local(MONDAY, "10:00"), local(MONDAY, "09:00"), "end"),
        (local(MONDAY, "09:00"), local(MONDAY, "09:00"), "end"),
        ("2026-03-16T09:00:00", local(MONDAY, "10:00"), "start"),
        (local(MONDAY, "09:00"), "2026-03-16T10:00:00", "end"),
        ("next monday", local(MONDAY, "10:00"), "start"),
    ],
    ids=["end-before-start", "empty", "naive-start", "naive-end", "not-a-time"],
)
def test_bad_times_are_refused_and_book_nothing(client, db, world, v1, start, end, field):
    response = schedule(client, world.coordinator_a, v1, world.nurse_a, start, end)

    assert field in assert_problem(response, 422)["errors"]
    assert unchanged(db, v1)


def test_a_missing_nurse_is_refused(client, db, world, v1):
    response = client.post(
        f"/api/v1/visits/{v1.id}/schedule",
        json={"start": local(MONDAY, "09:00"), "end": local(MONDAY, "10:00")},
        headers=headers_for(client, world.coordinator_a),
    )

    assert "nurse_id" in assert_problem(response, 422)["errors"]
    assert unchanged(db, v1)
