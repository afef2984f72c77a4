"""Home-nurse visit test data, built through the services like tests/factories/people.py.

Shared by every visit test module: add new helpers at the end, do not change these.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from consent.models import ConsentDocument, DocumentStatus
from services.actor import Actor
from services.models import Study, User, Visit, VisitDefinition
from services.people import enrolment
from services.people import participants as people
from services.visits import definitions as schedule
from services.visits import nurses
from tests.factories.consent import make_complete_consent, make_consent_document
from tests.factories.people import Patient, World, headers_for

# V1 at home on the baseline day, D14 at home ±2 days, D28 at the site ±3 days.
DEFAULT_SCHEDULE = (
    schedule.Definition("V1", "Baseline", 0, 0, 0, 60, "home", ["vitals", "blood"]),
    schedule.Definition("D14", "Day 14", 14, 2, 2, 60, "home", ["vitals", "ecg"]),
    schedule.Definition("D28", "Day 28", 28, 3, 3, 90, "site", ["vitals", "mri"]),
)
# Monday to Friday, 08:00-18:00 on the nurse's wall clock.
OFFICE_HOURS = tuple({"weekday": d, "start": "08:00", "end": "18:00"} for d in range(5))
FAR_FUTURE = dt.date(2099, 12, 31)


def as_definition(value: schedule.Definition | dict) -> schedule.Definition:
    return value if isinstance(value, schedule.Definition) else schedule.Definition(**value)


def define_schedule(
    db: Session,
    study: Study,
    coordinator: User,
    definitions: Sequence[schedule.Definition | dict] | None = None,
) -> list[VisitDefinition]:
    """Replace the study's schedule (default: DEFAULT_SCHEDULE) as this coordinator."""
    chosen = DEFAULT_SCHEDULE if definitions is None else definitions
    return schedule.put_definitions(
        db,
        people.actor_for(db, coordinator, "factory"),
        study.id,
        [as_definition(d) for d in chosen],
    )


def coordinator_for(world: World, who: User | Patient) -> User:
    """The world's coordinator of this nurse's or patient's site."""
    sites = {who.participant.site_id} if isinstance(who, Patient) else set(who.site_ids)
    return world.coordinator_a if world.site_a.id in sites else world.coordinator_b


def make_nurse_ready(
    db: Session,
    world: World,
    nurse: User | None = None,
    *,
    timezone: str = "Europe/Brussels",
    hours: Sequence[dict] = OFFICE_HOURS,
    valid_until: dt.date = FAR_FUTURE,
) -> User:
    """Working hours set by the nurse, delegation of world.study by their coordinator."""
    nurse = nurse or world.nurse_a
    nurses.set_availability(
        db,
        people.actor_for(db, nurse, "factory"),
        nurse.id,
        nurses.Availability(timezone, [dict(h) for h in hours], []),
    )
    nurses.set_delegation(
        db,
        people.actor_for(db, coordinator_for(world, nurse), "factory"),
        nurse.id,
        world.study.id,
        valid_until,
    )
    return nurse


def consent_document_for(db: Session, world: World, language: str = "nl") -> ConsentDocument:
    """The study's approved document in this language, approved now if there is none."""
    existing = db.scalars(
        select(ConsentDocument)
        .where(
            ConsentDocument.study_id == world.study.id,
            ConsentDocument.language == language,
            ConsentDocument.status == DocumentStatus.APPROVED.value,
        )
        .order_by(ConsentDocument.version.desc())
    ).first()
    return existing or make_consent_document(db, world.study, language=language)


def enrolled_with_visits(
    db: Session,
    world: World,
    patient: Patient | None = None,
    baseline: dt.date = dt.date(2026, 3, 16),
) -> list[Visit]:
    """Complete consent and enrolment on `baseline` (a Monday); the study gets the
    default schedule first if it has none. Returns the planned visits by target date."""
    patient = patient or world.patient_a
    coordinator = coordinator_for(world, patient)
    has_schedule = db.scalars(
        select(VisitDefinition.id).where(VisitDefinition.study_id == world.study.id)
    ).first()
    if has_schedule is None:
        define_schedule(db, world.study, coordinator)
    make_complete_consent(db, patient, coordinator, consent_document_for(db, world))
    enrolment.enroll(
        db, people.actor_for(db, coordinator, "factory"), patient.participant.id, baseline
    )
    return list(
        db.scalars(
            select(Visit)
            .where(Visit.participant_id == patient.participant.id)
            .order_by(Visit.target_date, Visit.code)
        )
    )


def coordinator_actor(db: Session, coordinator: User) -> Actor:
    return people.actor_for(db, coordinator, "factory")


def book_via_api(
    client: FlaskClient, coordinator: User, visit: Visit, nurse: User, start: dt.datetime
) -> TestResponse:
    """Book a visit for its own duration through POST /visits/{id}/schedule."""
    end = start + dt.timedelta(minutes=visit.duration_minutes)
    return client.post(
        f"/api/v1/visits/{visit.id}/schedule",
        json={"nurse_id": str(nurse.id), "start": start.isoformat(), "end": end.isoformat()},
        headers=headers_for(client, coordinator),
    )
