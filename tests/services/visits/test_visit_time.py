"""Visit times across DST changes and time zones: instants are stored in UTC, windows are
the participant's calendar days, working hours the nurse's wall clock."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session

from services.errors import Conflict
from services.models import NurseProfile, Visit
from services.people import participants as people
from services.visits import booking as visits
from services.visits import nurses
from tests.factories.people import World
from tests.factories.visits import enrolled_with_visits, make_nurse_ready

BRUSSELS, LONDON = ZoneInfo("Europe/Brussels"), ZoneInfo("Europe/London")
UTC = dt.UTC
EIGHT_TO_FOUR = [{"weekday": d, "start": "08:00", "end": "16:00"} for d in range(5)]


def at(day: str, hhmm: str, zone: ZoneInfo = BRUSSELS) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T{hhmm}").replace(tzinfo=zone)


def utc(day: str, hhmm: str) -> dt.datetime:
    return at(day, hhmm, UTC)


def book(db: Session, world: World, visit: Visit, start: dt.datetime, minutes: int = 60) -> Visit:
    return visits.book(
        db,
        people.actor_for(db, world.coordinator_a, "test"),
        visit.id,
        visits.Booking(world.nurse_a.id, start, start + dt.timedelta(minutes=minutes)),
    )


def reread(db: Session, visit: Visit) -> Visit:
    db.flush()
    db.expire_all()
    return db.get(Visit, visit.id)


def test_nine_oclock_the_day_after_spring_forward_is_seven_utc(db, world):
    make_nurse_ready(db, world)
    d14 = enrolled_with_visits(db, world, baseline=dt.date(2026, 3, 16))[1]  # 30 March

    book(db, world, d14, at("2026-03-30", "09:00"))

    stored = reread(db, d14)
    assert stored.start_at == utc("2026-03-30", "07:00")
    assert stored.start_at.astimezone(BRUSSELS).strftime("%Y-%m-%d %H:%M %Z") == (
        "2026-03-30 09:00 CEST"
    )


def test_nine_oclock_the_day_after_fall_back_is_eight_utc(db, world):
    make_nurse_ready(db, world)
    v1 = enrolled_with_visits(db, world, baseline=dt.date(2026, 10, 26))[0]

    book(db, world, v1, at("2026-10-26", "09:00"))

    stored = reread(db, v1)
    assert stored.start_at == utc("2026-10-26", "08:00")
    assert stored.start_at.astimezone(BRUSSELS).strftime("%Y-%m-%d %H:%M %Z") == (
        "2026-10-26 09:00 CET"
    )


def test_the_window_days_do_not_shift_across_the_change(db, world):
    """Spring forward on Sunday 29 March: D14 is still 28 March to 1 April."""
    d14 = enrolled_with_visits(db, world, baseline=dt.date(2026, 3, 16))[1]

    assert (d14.window_start, d14.target_date, d14.window_end) == (
        dt.date(2026, 3, 28),
        dt.date(2026, 3, 30),
        dt.date(2026, 4, 1),
    )


# Working hours 08:00-16:00 Brussels, Monday to Friday; the same UTC hour is 08:00 on one
# side of a change and 07:00 or 09:00 on the other.
@pytest.mark.parametrize(
    ("start", "end", "inside"),
    [
        (utc("2026-03-27", "07:00"), utc("2026-03-27", "08:00"), True),  # Fri 08:00 CET
        (utc("2026-03-27", "06:00"), utc("2026-03-27", "07:00"), False),  # Fri 07:00 CET
        (utc("2026-03-30", "06:00"), utc("2026-03-30", "07:00"), True),  # Mon 08:00 CEST
        (utc("2026-03-30", "05:30"), utc("2026-03-30", "06:30"), False),  # Mon 07:30 CEST
        (utc("2026-03-27", "14:00"), utc("2026-03-27", "15:00"), True),  # Fri 15-16 CET
        (utc("2026-03-30", "14:00"), utc("2026-03-30", "15:00"), False),  # Mon 16-17 CEST
        (utc("2026-10-23", "06:00"), utc("2026-10-23", "07:00"), True),  # Fri 08:00 CEST
        (utc("2026-10-26", "06:00"), utc("2026-10-26", "07:00"), False),  # Mon 07:00 CET
        (utc("2026-10-26", "07:00"), utc("2026-10-26", "08:00"), True),  # Mon 08:00 CET
        (utc("2026-10-26", "14:30"), utc("2026-10-26", "15:30"), False),  # Mon 15:30-16:30 CET
        (utc("2026-10-23", "13:30"), utc("2026-10-23", "14:00"), True),  # Fri 15:30-16 CEST
    ],
)
def test_working_hours_are_read_on_the_nurses_wall_clock_across_changes(start, end, inside):
    profile = NurseProfile(timezone="Europe/Brussels", weekly_hours=EIGHT_TO_FOUR)

    assert nurses.within_working_hours(profile, start, end) is inside


def test_booking_at_eight_local_after_spring_forward_respects_the_hours(db, world):
    make_nurse_ready(db, world, hours=EIGHT_TO_FOUR)
    d14 = enrolled_with_visits(db, world, baseline=dt.date(2026, 3, 16))[1]

    with pytest.raises(Conflict, match="working hours"):
        book(db, world, d14, utc("2026-03-30", "05:30"))  # 07:30 CEST
    booked = book(db, world, d14, utc("2026-03-30", "06:00"))  # 08:00 CEST

    assert reread(db, booked).start_at.astimezone(BRUSSELS).hour == 8


# A nurse in London (one hour behind Brussels) visiting a participant in Brussels whose
# V1 window is Monday 16 March only.


@pytest.fixture
def v1_with_london_nurse(db: Session, world: World) -> Visit:
    every_day_late = [{"weekday": d, "start": "08:00", "end": "23:59"} for d in range(7)]
    make_nurse_ready(db, world, timezone="Europe/London", hours=every_day_late)
    return enrolled_with_visits(db, world, baseline=dt.date(2026, 3, 16))[0]


def test_the_window_day_is_the_participants_even_when_the_nurse_is_still_on_sunday(
    db, world, v1_with_london_nurse
):
    # Sunday 23:00 in London is Monday 00:00 in Brussels: inside the window.
    booked = book(db, world, v1_with_london_nurse, at("2026-03-15", "23:00", LONDON), 30)

    assert reread(db, booked).start_at.astimezone(BRUSSELS) == at("2026-03-16", "00:00")


def test_the_window_day_is_the_participants_even_when_the_nurse_is_still_on_monday(
    db, world, v1_with_london_nurse
):
    # Monday 23:00 in London is Tuesday 00:00 in Brussels: outside the window.
    with pytest.raises(Conflict, match="2026-03-17 is outside the visit window"):
        book(db, world, v1_with_london_nurse, at("2026-03-16", "23:00", LONDON), 30)

    assert reread(db, v1_with_london_nurse).status == "planned"


def test_the_hours_are_the_nurses_in_london(db, world):
    make_nurse_ready(db, world, timezone="Europe/London", hours=EIGHT_TO_FOUR)
    v1 = enrolled_with_visits(db, world, baseline=dt.date(2026, 3, 16))[0]

    with pytest.raises(Conflict, match="working hours"):
        book(db, world, v1, at("2026-03-16", "08:00"))  # 07:00 in London
    booked = book(db, world, v1, at("2026-03-16", "09:00"))  # 08:00 in London

    assert reread(db, booked).start_at == utc("2026-03-16", "08:00")
