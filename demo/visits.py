"""Home-visit demo data for `make run`: the study's schedule of assessments, the two
nurses' hours and delegations, and one booked visit once a participant is enrolled.
Built through the services, idempotent."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from demo.seed import STUDY_CODE
from services.actor import Actor
from services.models import Study, User, Visit, VisitDefinition, VisitStatus
from services.people import participants as people
from services.visits import booking as visits
from services.visits import definitions as schedule
from services.visits import nurses

BRUSSELS = ZoneInfo("Europe/Brussels")
SCHEDULE = [
    schedule.Definition(
        "V1", "Baseline home visit", 0, 0, 1, 60, "home", ["vital_signs", "blood_sample", "ecg"]
    ),
    schedule.Definition(
        "D14", "Day 14 home visit", 14, 2, 2, 45, "home", ["vital_signs", "blood_sample"]
    ),
    schedule.Definition(
        "D28", "Day 28 site visit", 28, 3, 3, 90, "site", ["vital_signs", "echocardiogram"]
    ),
]
NURSE_HOURS = {
    "nurse.an@demo.dct.example": [
        {"weekday": d, "start": "08:00", "end": "16:00"} for d in range(5)
    ],
    "nurse.marie@demo.dct.example": [
        {"weekday": d, "start": "09:00", "end": "17:00"} for d in range(4)
    ],
}
COORDINATOR = "coordinator.brussels@demo.dct.example"


def _actor(session: Session, email: str) -> Actor:
    user = session.scalars(select(User).where(User.email_index == people.email_index(email))).one()
    return people.actor_for(session, user, "demo-seed")


def seed_schedule_and_nurses(session: Session) -> None:
    """Before enrolment, so that enrolling plans the visits."""
    study = session.scalars(select(Study).where(Study.code == STUDY_CODE)).one()
    if session.scalars(select(VisitDefinition).where(VisitDefinition.study_id == study.id)).first():
        return
    coordinator = _actor(session, COORDINATOR)
    schedule.put_definitions(session, coordinator, study.id, SCHEDULE)
    for email, hours in NURSE_HOURS.items():
        nurse = _actor(session, email)
        nurses.set_availability(
            session, nurse, nurse.user_id, nurses.Availability("Europe/Brussels", hours, [])
        )
        nurses.set_delegation(
            session,
            coordinator,
            nurse.user_id,
            study.id,
            dt.date.today() + dt.timedelta(days=365),
        )


def book_first_visit(session: Session) -> None:
    """Book the enrolled demo participant's Day 14 visit with nurse An at 10:00."""
    d14 = session.scalars(
        select(Visit).where(Visit.code == "D14", Visit.status == VisitStatus.PLANNED.value)
    ).first()
    if d14 is None:
        return
    day = d14.window_start
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    start = dt.datetime.combine(day, dt.time(10, 0), BRUSSELS)
    an = _actor(session, "nurse.an@demo.dct.example")
    visits.book(
        session,
        _actor(session, COORDINATOR),
        d14.id,
        visits.Booking(an.user_id, start, start + dt.timedelta(minutes=d14.duration_minutes)),
    )
