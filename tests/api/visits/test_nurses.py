"""A nurse's availability (PUT/GET /nurses/{id}/availability) and delegation per study
(PUT/GET /nurses/{id}/delegations)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from services.actor import Role
from services.models import Delegation, NurseProfile, NurseTimeOff, User
from tests.checks import assert_problem, audit_events
from tests.factories.people import headers_for, make_staff, random_id, user_of
from tests.factories.visits import make_nurse_ready

AVAILABILITY: dict[str, Any] = {
    "timezone": "Europe/Paris",
    "weekly_hours": [
        {"weekday": 0, "start": "08:00", "end": "12:00"},
        {"weekday": 0, "start": "13:00", "end": "17:30"},
        {"weekday": 4, "start": "09:00", "end": "15:00"},
    ],
    "time_off": [{"start": "2026-04-06T00:00:00+02:00", "end": "2026-04-11T00:00:00+02:00"}],
}


def availability_url(nurse_id: object) -> str:
    return f"/api/v1/nurses/{nurse_id}/availability"


def delegations_url(nurse_id: object) -> str:
    return f"/api/v1/nurses/{nurse_id}/delegations"


def put(client: FlaskClient, user: User, url: str, body: object) -> TestResponse:
    return client.put(url, json=body, headers=headers_for(client, user))


def get(client: FlaskClient, user: User, url: str) -> TestResponse:
    return client.get(url, headers=headers_for(client, user))


def availability_row(db: Session, nurse: User) -> tuple[Any, ...] | None:
    db.expire_all()
    profile = db.get(NurseProfile, nurse.id)
    off = db.scalars(select(NurseTimeOff.start_at).where(NurseTimeOff.nurse_id == nurse.id))
    if profile is None:
        return None
    return profile.timezone, profile.weekly_hours, sorted(off)


def delegations(db: Session, nurse: User) -> list[tuple[Any, dt.date]]:
    db.expire_all()
    rows = db.scalars(select(Delegation).where(Delegation.nurse_id == nurse.id))
    return sorted((d.study_id, d.training_valid_until) for d in rows)


# --- availability -------------------------------------------------------------------


def test_a_nurse_sets_their_availability_and_reads_it_back(client, db, world):
    nurse = world.nurse_a

    response = put(client, nurse, availability_url(nurse.id), AVAILABILITY)

    expected = {
        **AVAILABILITY,
        "time_off": [{"start": "2026-04-05T22:00:00Z", "end": "2026-04-10T22:00:00Z"}],
    }
    assert response.status_code == 200
    assert response.get_json() == expected
    assert get(client, nurse, availability_url(nurse.id)).get_json() == expected
    assert availability_row(db, nurse) == (
        "Europe/Paris",
        AVAILABILITY["weekly_hours"],
        [dt.datetime(2026, 4, 5, 22, tzinfo=dt.UTC)],
    )
    (event,) = audit_events(db, "nurse.availability", nurse.id)
    assert event.after["timezone"] == "Europe/Paris"


def test_a_coordinator_of_the_nurses_site_sets_it_and_time_off_is_replaced(client, db, world):
    nurse = world.nurse_a
    put(client, nurse, availability_url(nurse.id), AVAILABILITY)
    later = {"start": "2026-07-01T00:00:00Z", "end": "2026-07-15T00:00:00Z"}

    response = put(
        client,
        world.coordinator_a,
        availability_url(nurse.id),
        {**AVAILABILITY, "time_off": [later]},
    )

    assert response.status_code == 200
    assert response.get_json()["time_off"] == [
        {"start": "2026-07-01T00:00:00Z", "end": "2026-07-15T00:00:00Z"}
    ]
    assert availability_row(db, nurse)[2] == [dt.datetime(2026, 7, 1, tzinfo=dt.UTC)]


def test_a_nurse_without_availability_reads_none_in_their_own_zone(client, db, world):
    response = get(client, world.coordinator_a, availability_url(world.nurse_a.id))

    assert response.status_code == 200
    assert response.get_json() == {
        "timezone": world.nurse_a.timezone,
        "weekly_hours": [],
        "time_off": [],
    }


def test_an_admin_reads_but_does_not_set_availability(client, db, world):
    make_nurse_ready(db, world)
    before = availability_row(db, world.nurse_a)

    assert get(client, world.admin, availability_url(world.nurse_a.id)).status_code == 200
    assert_problem(put(client, world.admin, availability_url(world.nurse_a.id), AVAILABILITY), 403)
    assert availability_row(db, world.nurse_a) == before


@pytest.mark.parametrize("who", ["monitor", "patient"])
def test_monitors_and_patients_are_refused_availability(client, db, world, who):
    user, url = user_of(world, who), availability_url(world.nurse_a.id)

    assert_problem(put(client, user, url, AVAILABILITY), 403)
    assert_problem(get(client, user, url), 403)
    assert availability_row(db, world.nurse_a) is None


def test_a_coordinator_of_another_site_does_not_find_the_nurse(client, db, world):
    url = availability_url(world.nurse_a.id)

    assert_problem(put(client, world.coordinator_b, url, AVAILABILITY), 404)
    assert_problem(get(client, world.coordinator_b, url), 404)
    assert availability_row(db, world.nurse_a) is None


def test_a_nurse_does_not_find_a_colleague(client, db, world):
    colleague = make_staff(db, Role.NURSE, sites=[world.site_a])

    assert_problem(put(client, colleague, availability_url(world.nurse_a.id), AVAILABILITY), 404)
    assert_problem(get(client, colleague, availability_url(world.nurse_a.id)), 404)


@pytest.mark.parametrize("target", ["coordinator_a", "unknown"])
def test_only_nurses_have_availability(client, db, world, target):
    nurse_id = world.coordinator_a.id if target == "coordinator_a" else random_id()

    assert_problem(put(client, world.coordinator_a, availability_url(nurse_id), AVAILABILITY), 404)


def hours(**entry: object) -> dict[str, Any]:
    return {
        **AVAILABILITY,
        "weekly_hours": [{"weekday": 1, "start": "08:00", "end": "16:00", **entry}],
    }


def time_off(**entry: object) -> dict[str, Any]:
    base = {"start": "2026-04-06T00:00:00Z", "end": "2026-04-07T00:00:00Z"}
    return {**AVAILABILITY, "time_off": [{**base, **entry}]}


BAD_AVAILABILITY = {
    "hours end before start": hours(start="16:00", end="08:00"),
    "hours end equal start": hours(end="08:00"),
    "weekday 7": hours(weekday=7),
    "weekday -1": hours(weekday=-1),
    "weekday as text": hours(weekday="1"),
    "time 24:00": hours(end="24:00"),
    "time without leading zero": hours(start="8:00"),
    "naive time off": time_off(start="2026-04-06T00:00:00"),
    "time off end before start": time_off(end="2026-04-05T00:00:00Z"),
    "unknown time zone": {**AVAILABILITY, "timezone": "Europe/Atlantis"},
    "no time zone": {k: v for k, v in AVAILABILITY.items() if k != "timezone"},
    "no weekly hours": {k: v for k, v in AVAILABILITY.items() if k != "weekly_hours"},
}


@pytest.mark.parametrize("body", BAD_AVAILABILITY.values(), ids=BAD_AVAILABILITY.keys())
def test_invalid_availability_is_refused_and_nothing_changes(client, db, world, body):
    make_nurse_ready(db, world)
    before = availability_row(db, world.nurse_a)

    response = put(client, world.nurse_a, availability_url(world.nurse_a.id), body)

    assert assert_problem(response, 422)["errors"]
    assert availability_row(db, world.nurse_a) == before
    assert len(audit_events(db, "nurse.availability", world.nurse_a.id)) == 1


# --- delegations --------------------------------------------------------------------


def delegate(
    client: FlaskClient, user: User, nurse: User, study_id: object, until: str
) -> TestResponse:
    body = {"study_id": str(study_id), "training_valid_until": until}
    return put(client, user, delegations_url(nurse.id), body)


def test_a_coordinator_delegates_a_study_to_a_nurse_of_their_site(client, db, world):
    response = delegate(client, world.coordinator_a, world.nurse_a, world.study.id, "2027-01-31")

    assert response.status_code == 200
    body = response.get_json()
    assert (body["nurse_id"], body["study_id"], body["training_valid_until"]) == (
        str(world.nurse_a.id),
        str(world.study.id),
        "2027-01-31",
    )
    assert body["delegated_by"] == str(world.coordinator_a.id)
    assert delegations(db, world.nurse_a) == [(world.study.id, dt.date(2027, 1, 31))]
    (event,) = audit_events(db, "nurse.delegation", body["id"])
    assert event.after == {"study_id": str(world.study.id), "training_valid_until": "2027-01-31"}


def test_a_new_training_date_updates_the_same_delegation(client, db, world):
    first = delegate(client, world.coordinator_a, world.nurse_a, world.study.id, "2026-06-30")

    second = delegate(client, world.coordinator_a, world.nurse_a, world.study.id, "2027-06-30")

    assert second.get_json()["id"] == first.get_json()["id"]
    assert delegations(db, world.nurse_a) == [(world.study.id, dt.date(2027, 6, 30))]
    events = audit_events(db, "nurse.delegation", first.get_json()["id"])
    assert events[-1].before == {"training_valid_until": "2026-06-30"}


@pytest.mark.parametrize("who", ["coordinator_a", "nurse_a", "admin"])
def test_the_nurse_their_coordinator_and_admins_list_the_delegations(client, db, world, who):
    make_nurse_ready(db, world, valid_until=dt.date(2026, 12, 31))

    response = get(client, user_of(world, who), delegations_url(world.nurse_a.id))

    assert response.status_code == 200
    assert [(d["study_id"], d["training_valid_until"]) for d in response.get_json()] == [
        (str(world.study.id), "2026-12-31")
    ]


@pytest.mark.parametrize("who", ["nurse_a", "admin", "monitor", "patient"])
def test_only_coordinators_delegate(client, db, world, who):
    response = delegate(client, user_of(world, who), world.nurse_a, world.study.id, "2027-01-31")

    assert_problem(response, 403)
    assert delegations(db, world.nurse_a) == []


@pytest.mark.parametrize("who", ["monitor", "patient"])
def test_monitors_and_patients_cannot_list_delegations(client, db, world, who):
    assert_problem(get(client, user_of(world, who), delegations_url(world.nurse_a.id)), 403)


def test_a_coordinator_cannot_delegate_a_study_they_do_not_work_on(client, db, world):
    response = delegate(
        client, world.coordinator_a, world.nurse_a, world.other_study.id, "2027-01-31"
    )

    assert_problem(response, 404)
    assert delegations(db, world.nurse_a) == []


def test_a_coordinator_of_another_site_does_not_find_the_nurse_to_delegate(client, db, world):
    response = delegate(client, world.coordinator_b, world.nurse_a, world.study.id, "2027-01-31")

    assert_problem(response, 404)
    assert_problem(get(client, world.coordinator_b, delegations_url(world.nurse_a.id)), 404)
    assert delegations(db, world.nurse_a) == []


BAD_DELEGATIONS = {
    "no study": {"training_valid_until": "2027-01-31"},
    "no date": {"study_id": "STUDY"},
    "not a date": {"study_id": "STUDY", "training_valid_until": "next year"},
    "not a uuid": {"study_id": "ST1", "training_valid_until": "2027-01-31"},
    "a list": [{"study_id": "STUDY", "training_valid_until": "2027-01-31"}],
}


@pytest.mark.parametrize("body", BAD_DELEGATIONS.values(), ids=BAD_DELEGATIONS.keys())
def test_an_invalid_delegation_is_refused_and_nothing_is_stored(client, db, world, body):
    study = str(world.study.id)
    if isinstance(body, dict):
        body = {k: study if v == "STUDY" else v for k, v in body.items()}
    else:
        body = [{k: study if v == "STUDY" else v for k, v in entry.items()} for entry in body]

    response = put(client, world.coordinator_a, delegations_url(world.nurse_a.id), body)

    assert assert_problem(response, 422)["errors"]
    assert delegations(db, world.nurse_a) == []
