"""The nurse's iCalendar feed: a secret, revocable token in the URL and nothing sensitive
in the feed."""

from __future__ import annotations

import datetime as dt
import hashlib
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import icalendar
import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from services.actor import Role
from services.models import NurseProfile, User, Visit
from tests.checks import assert_problem, audit_events
from tests.factories.people import World, headers_for, make_participant, make_staff, user_of
from tests.factories.visits import book_via_api, enrolled_with_visits, make_nurse_ready

BRUSSELS = ZoneInfo("Europe/Brussels")
EVERY_DAY = tuple({"weekday": d, "start": "08:00", "end": "18:00"} for d in range(7))
TOKEN_URL = "/api/v1/me/calendar-token"
FEED = "/api/v1/me/visits.ics"


def at(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), BRUSSELS)


def issue(client: FlaskClient, nurse: User) -> dict:
    response = client.post(TOKEN_URL, headers=headers_for(client, nurse))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def read_feed(client: FlaskClient, token: str) -> TestResponse:
    return client.get(FEED, query_string={"token": token})


def events(response: TestResponse) -> dict[str, icalendar.Event]:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/calendar"
    calendar = icalendar.Calendar.from_ical(response.get_data())
    return {str(event["UID"]): event for event in calendar.walk("VEVENT")}


def book(client: FlaskClient, world: World, visit: Visit, nurse: User, start: dt.datetime) -> None:
    response = book_via_api(client, world.coordinator_a, visit, nurse, start)
    assert response.status_code == 200, response.get_json()


@pytest.fixture
def baseline() -> dt.date:
    """40 days ahead: V1 and D14 fall inside the feed's 60 days, D28 (day 68) after it."""
    return dt.datetime.now(BRUSSELS).date() + dt.timedelta(days=40)


@pytest.fixture
def visits(client: FlaskClient, db: Session, world: World, baseline: dt.date) -> list[Visit]:
    """Patient A's V1, D14 and D28 all booked with nurse A at 10:00."""
    make_nurse_ready(db, world, hours=EVERY_DAY)
    found = enrolled_with_visits(db, world, baseline=baseline)
    for visit in found:
        book(client, world, visit, world.nurse_a, at(visit.target_date, 10))
    return found


def test_the_feed_lists_the_nurses_booked_visits_in_utc(client, world, visits, baseline):
    v1, d14, _d28 = visits
    token = issue(client, world.nurse_a)["token"]

    found = events(read_feed(client, token))

    assert set(found) == {str(v1.id), str(d14.id)}  # D28 is beyond 60 days
    event = found[str(v1.id)]
    assert event.decoded("DTSTART") == at(baseline, 10)
    assert event.decoded("DTEND") == at(baseline, 11)
    assert event.decoded("DTSTART").utcoffset() == dt.timedelta(0)
    subject = world.patient_a.participant.subject_code
    assert str(event["SUMMARY"]) == f"Home visit {subject} V1"
    assert str(found[str(d14.id)]["SUMMARY"]) == f"Home visit {subject} D14"
    assert str(event["STATUS"]) == "TENTATIVE"


def test_the_feed_carries_no_health_or_personal_data(client, world, visits):
    token = issue(client, world.nurse_a)["token"]

    raw = read_feed(client, token).get_data(as_text=True)

    patient = world.patient_a
    for secret in (
        "vitals",
        "blood",
        "ecg",
        "Baseline",
        patient.user.full_name,
        patient.user.phone,
        patient.user.email,
        patient.participant.address,
        world.nurse_a.full_name,
    ):
        assert secret not in raw


def test_the_url_answered_is_the_feed(client, world, visits):
    issued = issue(client, world.nurse_a)
    url = urlsplit(issued["url"])

    assert url.path == FEED
    assert url.query == f"token={issued['token']}"
    assert events(client.get(f"{url.path}?{url.query}"))


def test_only_booked_visits_of_the_window_are_in_the_feed(client, db, world, baseline):
    make_nurse_ready(db, world, hours=EVERY_DAY)
    today = dt.datetime.now(BRUSSELS).date()
    past = make_participant(db, world.site_a, coordinator=world.coordinator_a)
    recent = make_participant(db, world.site_a, coordinator=world.coordinator_a)
    # V1 of one participant 10 days ago, of another 3 days ago; patient A's V1 is left
    # planned and their D14 is booked, then cancelled.
    old_v1 = enrolled_with_visits(db, world, past, baseline=today - dt.timedelta(days=10))[0]
    recent_v1 = enrolled_with_visits(db, world, recent, baseline=today - dt.timedelta(days=3))[0]
    _, d14, _ = enrolled_with_visits(db, world, baseline=today)
    book(client, world, old_v1, world.nurse_a, at(old_v1.target_date, 10))
    book(client, world, recent_v1, world.nurse_a, at(recent_v1.target_date, 10))
    book(client, world, d14, world.nurse_a, at(d14.target_date, 10))
    cancel = client.post(
        f"/api/v1/visits/{d14.id}/cancel",
        json={"reason": "moved"},
        headers=headers_for(client, world.coordinator_a),
    )
    assert cancel.status_code == 200, cancel.get_json()

    found = events(read_feed(client, issue(client, world.nurse_a)["token"]))

    assert set(found) == {str(recent_v1.id)}


def test_a_confirmed_visit_is_confirmed_in_the_feed(client, world, visits):
    response = client.post(
        f"/api/v1/visits/{visits[0].id}/confirm", headers=headers_for(client, world.patient_a.user)
    )
    assert response.status_code == 200, response.get_json()

    found = events(read_feed(client, issue(client, world.nurse_a)["token"]))

    assert str(found[str(visits[0].id)]["STATUS"]) == "CONFIRMED"


def test_only_a_hash_of_the_token_is_stored(client, db, world):
    token = issue(client, world.nurse_a)["token"]

    db.expire_all()
    profile = db.get(NurseProfile, world.nurse_a.id)
    assert profile.calendar_token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(audit_events(db, "nurse.calendar_token", world.nurse_a.id)[0].after)


def test_a_nurse_without_a_profile_gets_one_in_their_zone_without_hours(client, db, world):
    assert db.get(NurseProfile, world.nurse_a.id) is None

    issue(client, world.nurse_a)

    db.expire_all()
    profile = db.get(NurseProfile, world.nurse_a.id)
    assert (profile.timezone, profile.weekly_hours) == (world.nurse_a.timezone, [])


def test_rotating_the_token_retires_the_old_one(client, db, world, visits):
    old = issue(client, world.nurse_a)["token"]
    new = issue(client, world.nurse_a)["token"]

    assert new != old
    assert_problem(read_feed(client, old), 404)
    assert events(read_feed(client, new))
    feeds = [e.after["feed"] for e in audit_events(db, "nurse.calendar_token", world.nurse_a.id)]
    assert feeds == ["issued", "rotated"]


def test_a_revoked_token_opens_nothing(client, db, world, visits):
    token = issue(client, world.nurse_a)["token"]

    response = client.delete(TOKEN_URL, headers=headers_for(client, world.nurse_a))

    assert response.status_code == 204
    assert_problem(read_feed(client, token), 404)
    db.expire_all()
    assert db.get(NurseProfile, world.nurse_a.id).calendar_token_hash is None
    again = client.delete(TOKEN_URL, headers=headers_for(client, world.nurse_a))
    assert again.status_code == 204


def test_a_token_opens_its_own_nurses_feed_only(client, db, world, visits, baseline):
    other = make_nurse_ready(
        db, world, make_staff(db, Role.NURSE, sites=[world.site_a]), hours=EVERY_DAY
    )
    neighbour = make_participant(db, world.site_a, coordinator=world.coordinator_a)
    their_v1 = enrolled_with_visits(db, world, neighbour, baseline=baseline)[0]
    book(client, world, their_v1, other, at(baseline, 14))
    mine, theirs = issue(client, world.nurse_a)["token"], issue(client, other)["token"]

    assert set(events(read_feed(client, theirs))) == {str(their_v1.id)}
    assert str(their_v1.id) not in events(read_feed(client, mine))


def test_a_disabled_nurses_feed_is_gone(client, db, world, visits):
    token = issue(client, world.nurse_a)["token"]
    nurse = db.scalars(select(User).where(User.id == world.nurse_a.id)).one()
    nurse.is_active = False
    db.flush()

    assert_problem(read_feed(client, token), 404)


def test_an_unknown_token_is_not_found(client, world):
    body = assert_problem(read_feed(client, "not-a-token"), 404)

    assert "not-a-token" not in body["detail"]


def test_the_feed_requires_a_token(client):
    assert "token" in assert_problem(client.get(FEED), 422)["errors"]


def test_a_bearer_token_is_no_substitute_for_the_feed_token(client, world):
    assert_problem(client.get(FEED, headers=headers_for(client, world.nurse_a)), 422)


@pytest.mark.parametrize("who", ["coordinator_a", "patient", "monitor", "admin"])
@pytest.mark.parametrize("method", ["post", "delete"])
def test_only_nurses_have_a_calendar_token(client, db, world, who, method):
    user = user_of(world, who)
    response = getattr(client, method)(TOKEN_URL, headers=headers_for(client, user))

    assert_problem(response, 403)
    assert db.get(NurseProfile, user.id) is None


def test_a_token_needs_a_logged_in_nurse(client):
    assert_problem(client.post(TOKEN_URL), 401)
