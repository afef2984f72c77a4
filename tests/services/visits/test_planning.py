"""Enrolment plans every visit of the schedule, dated from the baseline on the
participant's calendar, and the schedule service's own rules."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.errors import Conflict, Forbidden, Invalid, NotFound
from services.models import Visit, VisitDefinition
from services.people import enrolment
from services.people import participants as people
from services.visits import booking as visits
from services.visits import definitions as schedule
from tests.checks import audit_events
from tests.factories.consent import make_complete_consent
from tests.factories.people import World
from tests.factories.visits import (
    DEFAULT_SCHEDULE,
    consent_document_for,
    define_schedule,
    enrolled_with_visits,
    make_nurse_ready,
)

BASELINE = dt.date(2026, 3, 16)
ALL_DAY = [{"weekday": d, "start": "00:00", "end": "23:59"} for d in range(7)]


def dates(planned: list[Visit]) -> list[tuple[str, dt.date, dt.date, dt.date]]:
    return [(v.code, v.target_date, v.window_start, v.window_end) for v in planned]


@pytest.mark.requirement("VISIT-2")
def test_enrolment_plans_each_visit_from_the_baseline_with_its_window(db, world):
    planned = enrolled_with_visits(db, world, baseline=BASELINE)

    assert dates(planned) == [
        ("V1", dt.date(2026, 3, 16), dt.date(2026, 3, 16), dt.date(2026, 3, 16)),
        ("D14", dt.date(2026, 3, 30), dt.date(2026, 3, 28), dt.date(2026, 4, 1)),
        ("D28", dt.date(2026, 4, 13), dt.date(2026, 4, 10), dt.date(2026, 4, 16)),
    ]
    d14 = planned[1]
    assert (d14.name, d14.location, d14.duration_minutes, d14.procedures) == (
        "Day 14",
        "home",
        60,
        ["vitals", "ecg"],
    )
    assert {(v.status, v.nurse_id, v.start_at) for v in planned} == {("planned", None, None)}
    assert {(v.study_id, v.site_id) for v in planned} == {(world.study.id, world.site_a.id)}
    (event,) = audit_events(db, "visit.plan", world.patient_a.participant.id)
    assert event.after["visits"][1] == {"code": "D14", "target_date": "2026-03-30"}


def test_visits_before_the_baseline_are_dated_before_it(db, world):
    screening = schedule.Definition("SCR", "Screening", -7, 3, 0, 30, "site", [])
    define_schedule(db, world.study, world.coordinator_a, [screening])

    (visit,) = enrolled_with_visits(db, world, baseline=BASELINE)

    assert (visit.target_date, visit.window_start, visit.window_end) == (
        dt.date(2026, 3, 9),
        dt.date(2026, 3, 6),
        dt.date(2026, 3, 9),
    )


def test_a_study_without_a_schedule_plans_no_visits(db, world):
    patient = world.patient_a
    make_complete_consent(db, patient, world.coordinator_a, consent_document_for(db, world))

    enrolment.enroll(
        db, people.actor_for(db, world.coordinator_a, "t"), patient.participant.id, BASELINE
    )

    assert (
        db.scalars(select(Visit).where(Visit.participant_id == patient.participant.id)).all() == []
    )
    (event,) = audit_events(db, "visit.plan", patient.participant.id)
    assert event.after == {"visits": []}


@pytest.fixture
def new_yorker(db: Session, world: World) -> World:
    """patient_a lives in New York, whose clocks change on 2026-03-08 (Europe's 03-29)."""
    world.patient_a.user.timezone = "America/New_York"
    db.flush()
    return world


def test_a_participant_in_another_zone_keeps_calendar_day_windows(db, new_yorker):
    planned = enrolled_with_visits(db, new_yorker, baseline=dt.date(2026, 3, 2))

    assert dates(planned) == [
        ("V1", dt.date(2026, 3, 2), dt.date(2026, 3, 2), dt.date(2026, 3, 2)),
        ("D14", dt.date(2026, 3, 16), dt.date(2026, 3, 14), dt.date(2026, 3, 18)),
        ("D28", dt.date(2026, 3, 30), dt.date(2026, 3, 27), dt.date(2026, 4, 2)),
    ]


@pytest.mark.parametrize(
    ("start", "inside"),
    [
        # 23:00 in New York on the window's last day (04-02) is 2026-04-03 in UTC.
        (dt.datetime(2026, 4, 3, 3, 0, tzinfo=dt.UTC), True),
        # 23:30 in New York on 03-30, the eve of the window, is 2026-03-31 in UTC.
        (dt.datetime(2026, 3, 31, 3, 30, tzinfo=dt.UTC), False),
    ],
    ids=["last-evening", "eve"],
)
def test_the_window_is_read_on_the_participants_calendar(db, new_yorker, start, inside):
    world = new_yorker
    define_schedule(
        db,
        world.study,
        world.coordinator_a,
        [schedule.Definition("D14", "Day 14", 14, 1, 1, 30, "home", [])],
    )
    (visit,) = enrolled_with_visits(db, world, baseline=dt.date(2026, 3, 18))
    assert (visit.window_start, visit.window_end) == (dt.date(2026, 3, 31), dt.date(2026, 4, 2))
    make_nurse_ready(db, world, timezone="America/New_York", hours=ALL_DAY)
    coordinator = people.actor_for(db, world.coordinator_a, "test")
    booking = visits.Booking(world.nurse_a.id, start, start + dt.timedelta(minutes=30))

    if inside:
        assert visits.book(db, coordinator, visit.id, booking).status == "scheduled"
    else:
        with pytest.raises(Conflict, match="outside the visit window"):
            visits.book(db, coordinator, visit.id, booking)


# --- the schedule service -----------------------------------------------------------


def definition(**changes: object) -> schedule.Definition:
    fields = {**DEFAULT_SCHEDULE[1].__dict__, **changes}
    return schedule.Definition(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad",
    [
        definition(day=True),
        definition(day=1.5),
        definition(window_after=-1),
        definition(duration_minutes=721),
        definition(location="Home"),
        definition(procedures=["ecg", 3]),
        definition(code=""),
    ],
    ids=["bool-day", "float-day", "negative-window", "long", "location", "procedure", "code"],
)
def test_the_service_refuses_invalid_definitions_without_the_api(db, world, bad):
    coordinator = people.actor_for(db, world.coordinator_a, "test")

    with pytest.raises(Invalid) as refused:
        schedule.put_definitions(db, coordinator, world.study.id, [bad])

    assert list(refused.value.errors) == ["definitions.0"]
    assert (
        db.scalars(select(VisitDefinition).where(VisitDefinition.study_id == world.study.id)).all()
        == []
    )


def test_the_schedule_is_read_by_staff_of_the_study_only(db, world):
    define_schedule(db, world.study, world.coordinator_a)

    nurse = people.actor_for(db, world.nurse_a, "test")
    assert [d.code for d in schedule.get_definitions(db, nurse, world.study.id)] == [
        "V1",
        "D14",
        "D28",
    ]
    with pytest.raises(NotFound):
        schedule.get_definitions(db, people.actor_for(db, world.other_monitor, "t"), world.study.id)
    with pytest.raises(Forbidden):
        schedule.get_definitions(
            db, people.actor_for(db, world.patient_a.user, "t"), world.study.id
        )
