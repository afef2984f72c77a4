"""GET /visits/{id}/slots: bookable slots of eligible nurses, in the participant's time."""

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
from services.visits import definitions as schedule
from services.visits import nurses, slots
from tests.checks import assert_problem
from tests.factories.people import World, headers_for, make_participant, make_staff, user_of
from tests.factories.visits import (
    OFFICE_HOURS,
    book_via_api,
    define_schedule,
    enrolled_with_visits,
    make_nurse_ready,
)

BRUSSELS = ZoneInfo("Europe/Brussels")
EVERY_DAY = tuple({"weekday": d, "start": "08:00", "end": "18:00"} for d in range(7))
# Office hours, 60-minute visits: 08:00 to 17:00 every half hour.
DAY_STARTS = [f"{h:02d}:{m:02d}" for h in range(8, 18) for m in (0, 30)][:-1]


def at(day: dt.date, hhmm: str, zone: ZoneInfo = BRUSSELS) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.fromisoformat(hhmm), zone)


def get_slots(client: FlaskClient, user: User, visit: Visit) -> TestResponse:
    return client.get(f"/api/v1/visits/{visit.id}/slots", headers=headers_for(client, user))


def offered(client: FlaskClient, world: World, visit: Visit) -> list[dict]:
    response = get_slots(client, world.coordinator_a, visit)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["slots"]


def starts(found: list[dict], nurse: User | None = None) -> list[str]:
    """Local HH:MM of the slots (of one nurse)."""
    return [s["start"][11:16] for s in found if nurse is None or s["nurse_id"] == str(nurse.id)]


def book(client: FlaskClient, world: World, visit: Visit, nurse: User, start: dt.datetime):
    return book_via_api(client, world.coordinator_a, visit, nurse, start)


def new_nurse(db: Session, world: World, site: str = "site_a") -> User:
    return make_staff(db, Role.NURSE, sites=[getattr(world, site)])


@pytest.fixture
def baseline() -> dt.date:
    """A Monday three weeks ahead: slots are offered from now on."""
    today = dt.datetime.now(dt.UTC).date()
    return today + dt.timedelta(days=21 - today.weekday())


@pytest.fixture
def v1(db: Session, world: World, baseline: dt.date) -> Visit:
    """Patient A's V1: at home, 60 minutes, window = the baseline Monday only."""
    make_nurse_ready(db, world)
    return enrolled_with_visits(db, world, baseline=baseline)[0]


@pytest.fixture
def neighbour_v1(db: Session, world: World, v1: Visit, baseline: dt.date) -> Visit:
    """The V1 of a second participant of site A, on the same Monday."""
    neighbour = make_participant(db, world.site_a, coordinator=world.coordinator_a)
    return enrolled_with_visits(db, world, neighbour, baseline=baseline)[0]


def test_slots_cover_the_nurses_hours_in_the_window_in_participant_time(
    client, world, v1, baseline
):
    response = get_slots(client, world.coordinator_a, v1)

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["visit_id"] == str(v1.id)
    assert body["timezone"] == "Europe/Brussels"
    assert body["window_start"] == body["window_end"] == baseline.isoformat()
    assert body["duration_minutes"] == 60
    first, last = body["slots"][0], body["slots"][-1]
    assert first == {
        "nurse_id": str(world.nurse_a.id),
        "nurse_name": world.nurse_a.full_name,
        "start": at(baseline, "08:00").isoformat(),
        "end": at(baseline, "09:00").isoformat(),
        "start_utc": at(baseline, "08:00").astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "end_utc": at(baseline, "09:00").astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
    }
    assert last["start"] == at(baseline, "17:00").isoformat()
    assert starts(body["slots"]) == DAY_STARTS


def test_only_days_inside_the_window_with_working_hours_are_offered(
    client, db, world, v1, baseline
):
    d14 = enrolled_with_visits(db, world, make_participant(db, world.site_a), baseline=baseline)[1]
    # Window: Saturday (day 12) to Wednesday (day 16); the nurse works Monday to Friday.

    found = offered(client, world, d14)

    days = [baseline + dt.timedelta(days=n) for n in (14, 15, 16)]
    assert sorted({s["start"][:10] for s in found}) == [d.isoformat() for d in days]
    assert len(found) == 3 * len(DAY_STARTS)


def test_slots_are_in_the_participants_zone_when_the_nurse_works_in_another(
    client, db, world, baseline
):
    helsinki = ZoneInfo("Europe/Helsinki")  # one hour ahead of Brussels all year
    make_nurse_ready(db, world, timezone="Europe/Helsinki")
    v1 = enrolled_with_visits(db, world, baseline=baseline)[0]

    found = offered(client, world, v1)

    # 08:00 in Helsinki is 07:00 in Brussels; the last start 17:00 there is 16:00 here.
    assert found[0]["start"] == at(baseline, "08:00", helsinki).astimezone(BRUSSELS).isoformat()
    assert found[0]["start"] == at(baseline, "07:00").isoformat()
    assert found[-1]["start"] == at(baseline, "16:00").isoformat()
    assert len(found) == len(DAY_STARTS)


def test_a_nurse_whose_days_straddle_the_participants_midnight_is_cut_at_the_window(
    client, db, world, baseline
):
    # 12:00-22:00 in New York is 17:00 or 18:00 to 03:00 or 04:00 in Brussels: two of
    # the nurse's working days reach into the participant's one-day window.
    make_nurse_ready(
        db,
        world,
        timezone="America/New_York",
        hours=[{"weekday": d, "start": "12:00", "end": "22:00"} for d in range(7)],
    )
    v1 = enrolled_with_visits(db, world, baseline=baseline)[0]

    found = offered(client, world, v1)

    assert {s["start"][:10] for s in found} == {baseline.isoformat()}
    assert (found[0]["start"], found[-1]["start"]) == (
        at(baseline, "00:00").isoformat(),
        at(baseline, "23:30").isoformat(),
    )
    assert not [s for s in starts(found) if "04:00" <= s < "17:00"]


def test_slots_are_ordered_by_date_then_nurse_then_time(client, db, world, baseline):
    make_nurse_ready(db, world)
    make_nurse_ready(db, world, new_nurse(db, world))
    d14 = enrolled_with_visits(db, world, baseline=baseline)[1]

    found = offered(client, world, d14)

    keys = [(s["start"][:10], s["nurse_name"], s["start_utc"]) for s in found]
    assert keys == sorted(keys)
    assert len({s["nurse_id"] for s in found}) == 2
    assert len({s["start"][:10] for s in found}) == 3


@pytest.mark.requirement("VISIT-1")
def test_only_delegated_trained_active_nurses_of_the_site_are_offered(client, db, world, baseline):
    ready = make_nurse_ready(db, world)
    undelegated = new_nurse(db, world)
    nurses.set_availability(
        db,
        people.actor_for(db, undelegated, "t"),
        undelegated.id,
        nurses.Availability("Europe/Brussels", list(OFFICE_HOURS), []),
    )
    make_nurse_ready(db, world, new_nurse(db, world), valid_until=baseline - dt.timedelta(1))
    make_nurse_ready(db, world, new_nurse(db, world, "site_b"))
    disabled = make_nurse_ready(db, world, new_nurse(db, world))
    disabled.is_active = False
    away = make_nurse_ready(db, world, new_nurse(db, world))
    nurses.set_availability(
        db,
        people.actor_for(db, away, "t"),
        away.id,
        nurses.Availability(
            "Europe/Brussels",
            list(OFFICE_HOURS),
            [(at(baseline, "00:00"), at(baseline + dt.timedelta(1), "00:00"))],
        ),
    )
    db.flush()
    v1 = enrolled_with_visits(db, world, baseline=baseline)[0]

    found = offered(client, world, v1)

    assert {s["nurse_id"] for s in found} == {str(ready.id)}


def test_training_expiring_inside_the_window_ends_the_nurses_slots(client, db, world, baseline):
    make_nurse_ready(db, world, valid_until=baseline + dt.timedelta(days=15))
    d14 = enrolled_with_visits(db, world, baseline=baseline)[1]

    found = offered(client, world, d14)

    expected = [baseline + dt.timedelta(days=n) for n in (14, 15)]
    assert sorted({s["start"][:10] for s in found}) == [d.isoformat() for d in expected]


def test_time_off_removes_the_slots_it_overlaps(client, db, world, v1, baseline):
    nurses.set_availability(
        db,
        people.actor_for(db, world.nurse_a, "t"),
        world.nurse_a.id,
        nurses.Availability(
            "Europe/Brussels", list(OFFICE_HOURS), [(at(baseline, "10:00"), at(baseline, "12:00"))]
        ),
    )

    found = offered(client, world, v1)

    gone = {"09:30", "10:00", "10:30", "11:00", "11:30"}
    assert starts(found) == [s for s in DAY_STARTS if s not in gone]


def test_another_booking_of_the_nurse_removes_slots_with_the_travel_buffer(
    client, db, world, v1, neighbour_v1, baseline
):
    assert (
        book(client, world, neighbour_v1, world.nurse_a, at(baseline, "12:00")).status_code == 200
    )

    found = offered(client, world, v1)

    # Busy 12:00-13:00 plus 30 minutes of travel on either side of a home visit.
    gone = {"11:00", "11:30", "12:00", "12:30", "13:00"}
    assert starts(found) == [s for s in DAY_STARTS if s not in gone]


def test_a_booked_slot_disappears_and_every_offered_slot_can_be_booked(
    client, db, world, v1, neighbour_v1, baseline
):
    first = offered(client, world, v1)[0]
    booked = book(client, world, v1, world.nurse_a, dt.datetime.fromisoformat(first["start"]))
    assert booked.status_code == 200, booked.get_json()
    # Its own booking does not block moving the visit.
    assert first in offered(client, world, v1)

    remaining = offered(client, world, neighbour_v1)

    assert starts(remaining) == [s for s in DAY_STARTS if s not in {"08:00", "08:30", "09:00"}]
    for slot in (remaining[0], remaining[-1]):
        start = dt.datetime.fromisoformat(slot["start"])
        response = book(client, world, neighbour_v1, world.nurse_a, start)
        assert response.status_code == 200, response.get_json()


def test_the_participants_other_visits_remove_slots_of_every_nurse(client, db, world, baseline):
    define_schedule(
        db,
        world.study,
        world.coordinator_a,
        [
            schedule.Definition("V1", "Baseline", 0, 0, 0, 60, "home", ["vitals"]),
            schedule.Definition("V1B", "Baseline, ECG", 0, 0, 0, 60, "home", ["ecg"]),
        ],
    )
    other = make_nurse_ready(db, world, new_nurse(db, world))
    make_nurse_ready(db, world)
    v1, v1b = enrolled_with_visits(db, world, baseline=baseline)
    assert book(client, world, v1b, other, at(baseline, "12:00")).status_code == 200

    found = offered(client, world, v1)

    # The participant is busy 12:00-13:00 (no travel buffer for them): for both nurses.
    assert starts(found, world.nurse_a) == [
        s for s in DAY_STARTS if s not in {"11:30", "12:00", "12:30"}
    ]
    assert starts(found, other) == [
        s for s in DAY_STARTS if s not in {"11:00", "11:30", "12:00", "12:30", "13:00"}
    ]


def test_a_window_that_has_passed_offers_nothing(client, db, world):
    make_nurse_ready(db, world)
    past = enrolled_with_visits(db, world, baseline=dt.date(2026, 3, 16))[0]

    assert offered(client, world, past) == []


def test_slots_keep_the_wall_clock_across_the_spring_dst_change(db, world):
    # D14 of a 2026-03-16 baseline: window 28 March to 1 April; Brussels moves to
    # summer time on Sunday 29 March.
    make_nurse_ready(db, world, hours=EVERY_DAY)
    d14 = enrolled_with_visits(db, world, baseline=dt.date(2026, 3, 16))[1]
    actor = people.actor_for(db, world.coordinator_a, "t")

    search = slots.free_slots(db, actor, d14.id, now=dt.datetime(2026, 3, 1, tzinfo=dt.UTC))

    firsts = {}
    for slot in search.slots:
        firsts.setdefault(slot.start.date(), slot)
    assert [s.start.isoformat() for s in firsts.values()] == [
        "2026-03-28T08:00:00+01:00",
        "2026-03-29T08:00:00+02:00",
        "2026-03-30T08:00:00+02:00",
        "2026-03-31T08:00:00+02:00",
        "2026-04-01T08:00:00+02:00",
    ]
    assert firsts[dt.date(2026, 3, 28)].start_utc.hour == 7
    assert firsts[dt.date(2026, 3, 29)].start_utc.hour == 6


def test_slots_keep_the_wall_clock_across_the_autumn_dst_change(db, world):
    # V1 on Sunday 25 October 2026: Brussels goes back from 03:00 to 02:00 that night.
    make_nurse_ready(db, world, hours=[{"weekday": 6, "start": "00:00", "end": "06:00"}])
    v1 = enrolled_with_visits(db, world, baseline=dt.date(2026, 10, 25))[0]
    actor = people.actor_for(db, world.coordinator_a, "t")

    search = slots.free_slots(db, actor, v1.id, now=dt.datetime(2026, 10, 1, tzinfo=dt.UTC))

    # Every half hour of real time, 02:00 and 02:30 twice (summer, then winter time).
    summer = [f"2026-10-25T{t}:00+02:00" for t in ("00:00", "00:30", "01:00", "01:30")]
    twice = [f"2026-10-25T{t}:00+0{o}:00" for o in (2, 1) for t in ("02:00", "02:30")]
    winter = [f"2026-10-25T0{h}:{m}:00+01:00" for h in (3, 4) for m in ("00", "30")]
    expected = [*summer, *twice, *winter, "2026-10-25T05:00:00+01:00"]
    assert [s.start.isoformat() for s in search.slots] == expected
    assert all(s.end_utc - s.start_utc == dt.timedelta(hours=1) for s in search.slots)


def test_a_booking_running_to_midnight_is_outside_office_hours(client, db, world, v1, baseline):
    # Regression: a visit ending at 00:00 passed any period that started before it.
    start, end = at(baseline, "17:00"), at(baseline + dt.timedelta(1), "00:00")

    response = client.post(
        f"/api/v1/visits/{v1.id}/schedule",
        json={
            "nurse_id": str(world.nurse_a.id),
            "start": start.isoformat(),
            "end": end.isoformat(),
        },
        headers=headers_for(client, world.coordinator_a),
    )

    assert "working hours" in assert_problem(response, 409)["detail"]


def test_a_visit_that_cannot_be_booked_has_no_slots(client, db, world, v1):
    cancel = client.post(
        f"/api/v1/visits/{v1.id}/cancel",
        json={"reason": "moved away"},
        headers=headers_for(client, world.coordinator_a),
    )
    assert cancel.status_code == 200, cancel.get_json()

    assert "cancelled" in assert_problem(get_slots(client, world.coordinator_a, v1), 409)["detail"]


@pytest.mark.parametrize("who", ["nurse_a", "patient", "monitor", "admin"])
def test_only_coordinators_search_slots(client, world, v1, who):
    assert_problem(get_slots(client, user_of(world, who), v1), 403)


def test_another_sites_visit_is_not_found(client, world, v1):
    assert_problem(get_slots(client, world.coordinator_b, v1), 404)


def test_an_unknown_visit_is_not_found(client, world):
    response = client.get(
        "/api/v1/visits/00000000-0000-4000-8000-000000000000/slots",
        headers=headers_for(client, world.coordinator_a),
    )
    assert_problem(response, 404)
