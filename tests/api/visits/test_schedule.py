"""The schedule of assessments (PUT/GET /studies/{id}/visit-definitions) and a
participant's planned visits (GET /participants/{id}/visits)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from services.actor import Role
from services.models import User, Visit, VisitDefinition
from services.people import participants as people
from services.visits import booking as visits
from tests.checks import assert_problem, audit_events
from tests.factories.consent import make_complete_consent
from tests.factories.people import World, headers_for, make_staff, random_id, user_of
from tests.factories.visits import (
    consent_document_for,
    define_schedule,
    enrolled_with_visits,
    make_nurse_ready,
)

SCHEDULE: list[dict[str, Any]] = [
    {
        "code": "D28",
        "name": "Day 28",
        "day": 28,
        "window_before": 3,
        "window_after": 3,
        "duration_minutes": 90,
        "location": "site",
        "procedures": ["vitals", "mri"],
    },
    {
        "code": "V1",
        "name": "Baseline",
        "day": 0,
        "window_before": 0,
        "window_after": 0,
        "duration_minutes": 60,
        "location": "home",
        "procedures": ["vitals", "blood"],
    },
]


def put_schedule(
    client: FlaskClient, user: User, study_id: object, body: object = None
) -> TestResponse:
    return client.put(
        f"/api/v1/studies/{study_id}/visit-definitions",
        json=SCHEDULE if body is None else body,
        headers=headers_for(client, user),
    )


def get_schedule(client: FlaskClient, user: User, study_id: object) -> TestResponse:
    return client.get(
        f"/api/v1/studies/{study_id}/visit-definitions", headers=headers_for(client, user)
    )


def stored(db: Session, world: World) -> list[tuple[str, int, int, int, str]]:
    db.expire_all()
    rows = db.scalars(
        select(VisitDefinition)
        .where(VisitDefinition.study_id == world.study.id)
        .order_by(VisitDefinition.code)
    )
    return [(d.code, d.day, d.window_before, d.window_after, d.name) for d in rows]


def without_ids(body: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in d.items() if k not in ("id", "created_at")} for d in body]


def changed(which: str, **fields: object) -> list[dict[str, Any]]:
    return [{**d, **fields} if d["code"] == which else d for d in SCHEDULE]


# --- the schedule -------------------------------------------------------------------


def test_a_coordinator_defines_the_schedule_and_staff_read_it_by_day(client, db, world):
    response = put_schedule(client, world.coordinator_a, world.study.id)

    assert response.status_code == 200
    assert without_ids(response.get_json()) == [SCHEDULE[1], SCHEDULE[0]]
    assert stored(db, world) == [("D28", 28, 3, 3, "Day 28"), ("V1", 0, 0, 0, "Baseline")]
    (event,) = audit_events(db, "study.visit_definitions", world.study.id)
    assert event.before == {"definitions": []}
    assert [d["code"] for d in event.after["definitions"]] == ["D28", "V1"]
    for reader in ("coordinator_b", "nurse_a", "monitor", "admin"):
        answer = get_schedule(client, user_of(world, reader), world.study.id)
        assert answer.status_code == 200, reader
        assert answer.get_json() == response.get_json()


def test_an_admin_may_define_the_schedule(client, db, world):
    response = put_schedule(client, world.admin, world.study.id)

    assert response.status_code == 200
    assert [code for code, *_ in stored(db, world)] == ["D28", "V1"]


def test_a_put_adds_updates_and_removes_definitions_by_code(client, db, world):
    first = {
        d["code"]: d["id"]
        for d in put_schedule(client, world.coordinator_a, world.study.id).get_json()
    }
    new = {**SCHEDULE[1], "code": "D7", "name": "Day 7", "day": 7}
    body = [{**SCHEDULE[1], "name": "Day 0", "window_after": 1}, new]

    response = put_schedule(client, world.coordinator_a, world.study.id, body)

    assert response.status_code == 200
    answered = {d["code"]: d for d in response.get_json()}
    assert answered.keys() == {"V1", "D7"}
    assert answered["V1"]["id"] == first["V1"]
    assert stored(db, world) == [("D7", 7, 0, 0, "Day 7"), ("V1", 0, 0, 1, "Day 0")]


def test_an_empty_schedule_removes_unused_definitions(client, db, world):
    define_schedule(db, world.study, world.coordinator_a)

    response = put_schedule(client, world.coordinator_a, world.study.id, [])

    assert (response.status_code, response.get_json()) == (200, [])
    assert stored(db, world) == []


@pytest.mark.parametrize("who", ["nurse_a", "monitor", "patient"])
def test_only_coordinators_and_admins_define_the_schedule(client, db, world, who):
    response = put_schedule(client, user_of(world, who), world.study.id)

    assert_problem(response, 403)
    assert stored(db, world) == []


def test_the_patient_cannot_read_the_schedule(client, db, world):
    define_schedule(db, world.study, world.coordinator_a)

    assert_problem(get_schedule(client, world.patient_a.user, world.study.id), 403)


def test_another_studys_schedule_is_not_found(client, db, world):
    define_schedule(db, world.study, world.coordinator_a)

    assert_problem(put_schedule(client, world.coordinator_a, world.other_study.id), 404)
    assert_problem(put_schedule(client, world.coordinator_a, random_id()), 404)
    assert_problem(get_schedule(client, world.other_monitor, world.study.id), 404)
    assert stored(db, world)[0] == ("D14", 14, 2, 2, "Day 14")
    db.expire_all()
    assert (
        db.scalars(
            select(VisitDefinition).where(VisitDefinition.study_id == world.other_study.id)
        ).all()
        == []
    )


BAD_SCHEDULES = {
    "duplicate code": [SCHEDULE[0], {**SCHEDULE[1], "code": "D28"}],
    "day not an integer": changed("V1", day="3"),
    "day a fraction": changed("V1", day=1.5),
    "negative window": changed("V1", window_before=-1),
    # beyond the range a visit date can take (PostgreSQL's int4 and Python's dates)
    "day too late": changed("V1", day=2**53 - 1),
    "day too early": changed("V1", day=-366),
    "window too wide": changed("V1", window_after=366),
    "duration too short": changed("V1", duration_minutes=4),
    "duration too long": changed("V1", duration_minutes=721),
    "unknown location": changed("V1", location="clinic"),
    "procedures not a list": changed("V1", procedures="vitals"),
    "empty procedure": changed("V1", procedures=["vitals", ""]),
    "missing name": [{k: v for k, v in SCHEDULE[1].items() if k != "name"}],
    "code too long": changed("V1", code="X" * 33),
    "not a list": SCHEDULE[0],
}


@pytest.mark.parametrize("body", BAD_SCHEDULES.values(), ids=BAD_SCHEDULES.keys())
def test_an_invalid_schedule_is_refused_and_nothing_changes(client, db, world, body):
    define_schedule(db, world.study, world.coordinator_a)
    before = stored(db, world)

    response = put_schedule(client, world.coordinator_a, world.study.id, body)

    assert assert_problem(response, 422)["errors"]
    assert stored(db, world) == before
    assert len(audit_events(db, "study.visit_definitions", world.study.id)) == 1


# --- a schedule in use --------------------------------------------------------------


@pytest.fixture
def in_use(db: Session, world: World) -> list[Visit]:
    """V1 and D28 of SCHEDULE, with patient_a's visits planned from them."""
    define_schedule(db, world.study, world.coordinator_a, SCHEDULE)
    return enrolled_with_visits(db, world, baseline=dt.date(2026, 3, 16))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ([SCHEDULE[1]], "D28 cannot be removed: 1 visit(s)"),
        (changed("D28", day=30), "D28 cannot change day"),
        (
            changed("V1", window_before=1, window_after=2),
            "V1 cannot change window_before, window_after",
        ),
    ],
    ids=["removed", "day", "window"],
)
def test_a_definition_with_planned_visits_keeps_its_day_and_window(
    client, db, world, in_use, body, expected
):
    before = stored(db, world)

    response = put_schedule(client, world.coordinator_a, world.study.id, body)

    assert expected in assert_problem(response, 409)["detail"]
    assert stored(db, world) == before


def test_a_definition_in_use_may_be_renamed_and_planned_visits_keep_their_copy(
    client, db, world, in_use
):
    response = put_schedule(
        client,
        world.coordinator_a,
        world.study.id,
        changed("D28", name="Month 1", procedures=["ecg"]),
    )

    assert response.status_code == 200
    db.expire_all()
    visit = db.get(Visit, in_use[1].id)
    assert (visit.code, visit.name, visit.procedures) == ("D28", "Day 28", ["vitals", "mri"])


def test_new_definitions_may_be_added_to_a_schedule_in_use(client, db, world, in_use):
    extra = {**SCHEDULE[1], "code": "D56", "day": 56}

    response = put_schedule(client, world.coordinator_a, world.study.id, [*SCHEDULE, extra])

    assert response.status_code == 200
    assert [d["code"] for d in response.get_json()] == ["V1", "D28", "D56"]


# --- a participant's visits ---------------------------------------------------------


def visits_of(client: FlaskClient, user: User, participant_id: object) -> TestResponse:
    return client.get(
        f"/api/v1/participants/{participant_id}/visits", headers=headers_for(client, user)
    )


@pytest.fixture
def booked(db: Session, world: World) -> list[Visit]:
    """patient_a's default schedule from 2026-03-16, V1 booked with nurse_a."""
    planned = enrolled_with_visits(db, world, baseline=dt.date(2026, 3, 16))
    make_nurse_ready(db, world)
    start = dt.datetime(2026, 3, 16, 9, 0, tzinfo=dt.UTC)
    visits.book(
        db,
        people.actor_for(db, world.coordinator_a, "test"),
        planned[0].id,
        visits.Booking(world.nurse_a.id, start, start + dt.timedelta(hours=1)),
    )
    return planned


def test_enrolment_over_http_plans_the_visits_the_coordinator_then_reads(client, db, world):
    define_schedule(db, world.study, world.coordinator_a)
    patient = world.patient_a
    make_complete_consent(db, patient, world.coordinator_a, consent_document_for(db, world))
    headers = headers_for(client, world.coordinator_a)
    enrolled = client.post(
        f"/api/v1/participants/{patient.participant.id}/enroll",
        json={"baseline_date": "2026-03-16"},
        headers=headers,
    )
    assert enrolled.status_code == 200

    response = client.get(f"/api/v1/participants/{patient.participant.id}/visits", headers=headers)

    assert response.status_code == 200
    assert [
        (v["code"], v["target_date"], v["window_start"], v["window_end"], v["status"])
        for v in response.get_json()
    ] == [
        ("V1", "2026-03-16", "2026-03-16", "2026-03-16", "planned"),
        ("D14", "2026-03-30", "2026-03-28", "2026-04-01", "planned"),
        ("D28", "2026-04-13", "2026-04-10", "2026-04-16", "planned"),
    ]
    assert response.headers["X-Pagination"]


@pytest.mark.requirement("VISIT-2")
def test_the_coordinator_reads_visits_with_contact_data_and_the_nurse_id(client, db, world, booked):
    response = visits_of(client, world.coordinator_a, world.patient_a.participant.id)

    assert response.status_code == 200
    first = response.get_json()[0]
    assert first["status"] == "scheduled"
    assert first["nurse_id"] == str(world.nurse_a.id)
    assert (first["start_at"], first["end_at"]) == ("2026-03-16T09:00:00Z", "2026-03-16T10:00:00Z")
    assert first["address"] == world.patient_a.participant.address
    assert first["phone"] == world.patient_a.user.phone
    assert first["procedures"] == ["vitals", "blood"]
    assert first["nurse_name"] == world.nurse_a.full_name


def test_the_patient_sees_their_nurse_by_name_only(client, db, world, booked):
    response = visits_of(client, world.patient_a.user, world.patient_a.participant.id)

    assert response.status_code == 200
    first, later = response.get_json()[0], response.get_json()[1]
    assert first["nurse_name"] == world.nurse_a.full_name
    assert later["nurse_name"] is None
    assert not {"nurse_id", "notes", "check_in_location"} & first.keys()


def test_the_nurse_sees_only_the_visits_assigned_to_them(client, db, world, booked):
    response = visits_of(client, world.nurse_a, world.patient_a.participant.id)

    assert response.status_code == 200
    assert [(v["code"], v["address"]) for v in response.get_json()] == [
        ("V1", world.patient_a.participant.address)
    ]


@pytest.mark.requirement("VISIT-4")
def test_a_monitor_sees_visit_dates_and_status_only(client, db, world, booked):
    response = visits_of(client, world.monitor, world.patient_a.participant.id)

    assert response.status_code == 200
    first = response.get_json()[0]
    assert first.keys() == {
        "id",
        "participant_id",
        "subject_code",
        "timezone",
        "study_id",
        "site_id",
        "code",
        "name",
        "location",
        "target_date",
        "window_start",
        "window_end",
        "start_at",
        "end_at",
        "status",
        # Free text, withheld when there is some (tests/api/test_disclosure.py).
        "notes",
        "cancel_reason",
        "deviation_reason",
        "check_in_location",
    }
    assert (first["status"], first["target_date"]) == ("scheduled", "2026-03-16")


def test_admins_are_refused_participants_visits(client, db, world, booked):
    assert_problem(visits_of(client, world.admin, world.patient_a.participant.id), 403)


@pytest.mark.parametrize("who", ["coordinator_b", "other_monitor"])
def test_another_sites_or_studys_staff_do_not_find_the_participant(client, db, world, booked, who):
    response = visits_of(client, user_of(world, who), world.patient_a.participant.id)

    assert_problem(response, 404)


def test_another_patient_does_not_find_the_participant(client, db, world, booked):
    response = visits_of(client, world.patient_b.user, world.patient_a.participant.id)

    assert_problem(response, 404)


def test_a_nurse_without_visits_of_the_participant_does_not_find_them(client, db, world, booked):
    colleague = make_staff(db, Role.NURSE, sites=[world.site_a])

    assert_problem(visits_of(client, colleague, world.patient_a.participant.id), 404)


def test_an_unknown_participant_is_not_found(client, db, world):
    assert_problem(visits_of(client, world.coordinator_a, random_id()), 404)
