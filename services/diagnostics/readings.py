"""Structured device readings: validation against physiological plausibility, offline-safe
recording, alert thresholds per study and reads (the FHIR export: `readings_fhir`).

A reading outside its plausibility range is a typing or device error, so it is refused
(422) and nothing is stored; a plausible reading outside the study's alert thresholds
is stored and flagged for the coordinator. A phone may send one reading many times
(retries, offline sync): its `client_id` makes every repeat answer the original, checked
before anything that may have changed since (the consent, the thresholds). Readings are
never updated (the PostgreSQL tables are append-only).

A little over the usual size: the plausibility table of every reading kind is data
that belongs beside the check that reads it.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services import validation
from services.access import get_visible, require_role, visible_participants, visible_studies
from services.actor import Actor, Role
from services.audit import chain as audit
from services.errors import Conflict, Invalid
from services.models import (
    READING_TYPES,
    Participant,
    Reading,
    ReadingThreshold,
    Visit,
)
from services.people.consent_gate import require_current_consent
from services.people.participants import participant_subject
from services.visits.booking import visible_visits

MAX_CLOCK_AHEAD = dt.timedelta(minutes=5)
RECORDERS = (Role.PATIENT, Role.NURSE)
READERS = (Role.COORDINATOR, Role.NURSE, Role.PATIENT, Role.MONITOR)
BLOOD_PRESSURE = "blood_pressure"
SINGLE = ("value",)
PRESSURES = ("systolic", "diastolic")

# Per type, per allowed UCUM unit, per component: the plausible [min, max].
PLAUSIBLE: dict[str, dict[str, dict[str, tuple[float, float]]]] = {
    BLOOD_PRESSURE: {"mm[Hg]": {"systolic": (50, 300), "diastolic": (20, 200)}},
    "heart_rate": {"/min": {"value": (20, 300)}},
    "spo2": {"%": {"value": (50, 100)}},
    "glucose": {"mmol/L": {"value": (0.5, 50)}, "mg/dL": {"value": (9, 900)}},
    "weight": {"kg": {"value": (1, 500)}, "[lb_av]": {"value": (2, 1100)}},
    "temperature": {"Cel": {"value": (25, 45)}, "[degF]": {"value": (77, 113)}},
    "fev1": {"L": {"value": (0.1, 10)}},
}
# A unit as (scale, offset) onto its type's first unit: base = value * scale + offset.
_TO_BASE = {
    "mg/dL": (1 / 18.016, 0.0),
    "[lb_av]": (1 / 2.20462, 0.0),
    "[degF]": (5 / 9, -160 / 9),
}
# Compared thresholds are rounded so that a value converted exactly onto a limit stays
# inside it despite floating-point noise.
_COMPARE_DIGITS = 6


def components(reading_type: str) -> tuple[str, ...]:
    return PRESSURES if reading_type == BLOOD_PRESSURE else SINGLE


@dataclass(frozen=True)
class NewReading:
    """What the device or the nurse sends. `value` is a number, or for blood pressure
    {"systolic": n, "diastolic": n}."""

    type: str
    value: Any
    unit: str
    measured_at: dt.datetime
    client_id: uuid.UUID
    device: Mapping[str, Any] = field(default_factory=dict)
    visit_id: uuid.UUID | None = None


# --- numbers and units -------------------------------------------------------------


def is_number(value: object) -> bool:
    """JSON numbers only: booleans are ints in Python, and NaN/Infinity parse from JSON."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return isinstance(value, int) or math.isfinite(value)


def _text(number: float) -> str:
    """182, not 182.0; 36.6, not 36.600000000000001."""
    if isinstance(number, int):
        return str(number)
    return str(int(number)) if number.is_integer() else repr(number)


def convert(value: float, unit: str, to_unit: str) -> float:
    """Between two units of one type (glucose mmol/L<->mg/dL, weight kg<->lb,
    temperature Cel<->degF); the identity for equal units."""
    if unit == to_unit:
        return value
    scale, offset = _TO_BASE.get(unit, (1.0, 0.0))
    to_scale, to_offset = _TO_BASE.get(to_unit, (1.0, 0.0))
    return (value * scale + offset - to_offset) / to_scale


def _checked_type(reading_type: object) -> str:
    if reading_type not in PLAUSIBLE:
        raise Invalid("unknown type", errors={"type": [f"one of {', '.join(READING_TYPES)}"]})
    return reading_type


def _checked_unit(reading_type: str, unit: object) -> str:
    allowed = " or ".join(PLAUSIBLE[reading_type])
    if unit not in PLAUSIBLE[reading_type]:
        raise Invalid(
            f"unit {unit!r} is not allowed for {reading_type}: use {allowed} (UCUM codes)",
            errors={"unit": [f"for {reading_type} use {allowed}"]},
        )
    return unit


def _component_values(reading_type: str, value: object) -> dict[str, float]:
    """The value per component, as numbers (422 naming the field otherwise)."""
    if reading_type != BLOOD_PRESSURE:
        if not is_number(value):
            raise Invalid("value", errors={"value": ["a finite number"]})
        return {"value": value}  # type: ignore[dict-item]
    if not isinstance(value, dict) or set(value) != set(PRESSURES):
        raise Invalid(
            "value", errors={"value": ['blood pressure is {"systolic": n, "diastolic": n}']}
        )
    wrong = {
        f"value.{name}": ["a finite number"] for name in PRESSURES if not is_number(value[name])
    }
    if wrong:
        raise Invalid("value", errors=wrong)
    return {name: value[name] for name in PRESSURES}


def _plausible(reading_type: str, unit: str, values: dict[str, float]) -> None:
    errors = {}
    for name, number in values.items():
        low, high = PLAUSIBLE[reading_type][unit][name]
        if not low <= number <= high:
            where = "value" if name == "value" else f"value.{name}"
            errors[where] = [
                f"{_text(number)} {unit} is outside the plausible range "
                f"{_text(low)} to {_text(high)} {unit}"
            ]
    if errors:
        said = "; ".join(message for messages in errors.values() for message in messages)
        raise Invalid(f"implausible {reading_type} reading: {said}", errors=errors)
    if reading_type == BLOOD_PRESSURE and values["systolic"] <= values["diastolic"]:
        raise Invalid(
            "implausible blood pressure: the systolic pressure must be above the diastolic",
            errors={"value.systolic": ["must be above the diastolic pressure"]},
        )


def _check_time(measured_at: dt.datetime, now: dt.datetime) -> None:
    if measured_at.tzinfo is None:
        raise Invalid("measured_at", errors={"measured_at": ["give a time zone offset"]})
    if measured_at > now + MAX_CLOCK_AHEAD:
        raise Invalid(
            "measured_at is in the future",
            errors={
                "measured_at": [
                    f"more than {int(MAX_CLOCK_AHEAD.total_seconds() // 60)} minutes after "
                    "the server's clock: check the device's clock"
                ]
            },
        )


# --- thresholds ---------------------------------------------------------------------


def _label(reading_type: str, component: str) -> str:
    return reading_type if component == "value" else component


def _flags(
    session: Session, study_id: uuid.UUID, reading_type: str, unit: str, values: dict[str, float]
) -> list[str]:
    """Why the reading is outside the study's thresholds, compared in each threshold's
    unit: "systolic 182 mm[Hg] above 160", "glucose 200 mg/dL above 10 mmol/L"."""
    limits = {
        row.component: row
        for row in session.scalars(
            select(ReadingThreshold).where(
                ReadingThreshold.study_id == study_id, ReadingThreshold.type == reading_type
            )
        )
    }
    reasons = []
    for component, value in values.items():
        threshold = limits.get(component)
        if threshold is None:
            continue
        compared = round(convert(value, unit, threshold.unit), _COMPARE_DIGITS)
        limit_unit = "" if threshold.unit == unit else f" {threshold.unit}"
        said = f"{_label(reading_type, component)} {_text(value)} {unit}"
        if threshold.high is not None and compared > threshold.high:
            reasons.append(f"{said} above {_text(threshold.high)}{limit_unit}")
        if threshold.low is not None and compared < threshold.low:
            reasons.append(f"{said} below {_text(threshold.low)}{limit_unit}")
    return reasons


# --- recording ----------------------------------------------------------------------


def _replayed(session: Session, client_id: uuid.UUID, participant_id: uuid.UUID) -> Reading | None:
    original = session.scalars(select(Reading).where(Reading.client_id == client_id)).first()
    if original is not None and original.participant_id != participant_id:
        raise Conflict(f"client_id {client_id} was already used for another participant")
    return original


def _visit_id(
    session: Session, actor: Actor, participant: Participant, visit_id: uuid.UUID | None
) -> uuid.UUID | None:
    """A reading taken during a visit names it: for a nurse, one assigned to them."""
    if visit_id is None:
        return None
    found = session.scalars(
        visible_visits(actor)
        .with_only_columns(Visit.id)
        .where(Visit.id == visit_id, Visit.participant_id == participant.id)
    ).first()
    if found is None:
        raise Invalid(
            "visit_id", errors={"visit_id": ["not one of your visits of this participant"]}
        )
    return visit_id


def _new_reading(
    actor: Actor,
    participant: Participant,
    data: NewReading,
    values: dict[str, float],
    device: dict[str, str],
    flags: list[str],
    visit_id: uuid.UUID | None,
    now: dt.datetime,
) -> Reading:
    first, *second = values.values()
    return Reading(
        id=uuid.uuid4(),
        client_id=data.client_id,
        participant_id=participant.id,
        study_id=participant.study_id,
        site_id=participant.site_id,
        visit_id=visit_id,
        type=data.type,
        value=float(first),
        value_2=float(second[0]) if second else None,
        unit=data.unit,
        measured_at=data.measured_at,
        received_at=now,
        device=device,
        flagged=bool(flags),
        flag_reasons=flags,
        originator=actor.role_name,
        entered_by=actor.user_id,
    )


def _stored(session: Session, reading: Reading) -> tuple[Reading, bool]:
    """Insert, or answer what a concurrent request with the same client_id committed first."""
    try:
        with session.begin_nested():
            session.add(reading)
    except IntegrityError:
        winner = _replayed(session, reading.client_id, reading.participant_id)  # type: ignore[arg-type]
        if winner is None:
            raise
        return winner, False
    return reading, True


def record(
    session: Session, actor: Actor, participant_id: uuid.UUID, data: NewReading, *, now: dt.datetime
) -> tuple[Reading, bool]:
    """Record a reading (the patient themselves; a nurse for a participant of their
    visits); answer the original (created False) for a replayed client_id."""
    require_role(actor, *RECORDERS)
    participant = get_visible(session, visible_participants(actor), participant_id, "participant")
    original = _replayed(session, data.client_id, participant.id)
    if original is not None:
        return original, False
    require_current_consent(participant)
    reading_type = _checked_type(data.type)
    unit = _checked_unit(reading_type, data.unit)
    values = _component_values(reading_type, data.value)
    _plausible(reading_type, unit, values)
    _check_time(data.measured_at, now)
    problems = validation.device_problems(data.device)
    if problems:
        raise Invalid("device", errors=problems)
    device = dict(data.device)
    visit_id = _visit_id(session, actor, participant, data.visit_id)
    flags = _flags(session, participant.study_id, reading_type, unit, values)
    reading, created = _stored(
        session, _new_reading(actor, participant, data, values, device, flags, visit_id, now)
    )
    if created:
        _audit_reading(session, actor, participant, reading)
    return reading, created


def value_of(reading: Reading) -> float | dict[str, float]:
    """The value as the API takes it: a number, or blood pressure's two pressures."""
    if reading.type == BLOOD_PRESSURE:
        return {"systolic": reading.value, "diastolic": reading.value_2}  # type: ignore[dict-item]
    return reading.value


def _audit_reading(
    session: Session, actor: Actor, participant: Participant, reading: Reading
) -> None:
    """A flagged reading gets its own event, so coordinators filtering the audit trail
    by action find the alerts."""
    subject = participant_subject(participant)
    audit.record_change(
        session,
        actor,
        "reading.record",
        reading,
        subject=subject,
        after={
            "type": reading.type,
            "value": value_of(reading),
            "unit": reading.unit,
            "measured_at": reading.measured_at.isoformat(),
            "device": reading.device,
            "originator": reading.originator,
            "visit_id": str(reading.visit_id) if reading.visit_id else None,
            "flagged": reading.flagged,
        },
    )
    if reading.flagged:
        audit.record_change(
            session,
            actor,
            "reading.flagged",
            reading,
            subject=subject,
            after={"flag_reasons": list(reading.flag_reasons)},
        )


# --- reads --------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    type: str | None = None
    flagged: bool | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None


def visible_readings(actor: Actor) -> Select[Reading]:
    """Patients their own; nurses those of their visits' participants; coordinators
    their sites'; monitors their studies' (ids only, no names anyway)."""
    require_role(actor, *READERS)
    participants = visible_participants(actor).with_only_columns(Participant.id)
    return select(Reading).where(Reading.participant_id.in_(participants))


def _newest_first(query: Select[Reading]) -> Select[Reading]:
    return query.order_by(Reading.measured_at.desc(), Reading.id)


def participant_readings(
    session: Session, actor: Actor, participant_id: uuid.UUID, filters: Filters
) -> Select[Reading]:
    """The participant's readings, newest measurement first, filtered."""
    query = visible_readings(actor)
    participant = get_visible(session, visible_participants(actor), participant_id, "participant")
    query = query.where(Reading.participant_id == participant.id)
    if filters.type is not None:
        query = query.where(Reading.type == _checked_type(filters.type))
    if filters.flagged is not None:
        query = query.where(Reading.flagged == filters.flagged)
    if filters.start is not None:
        query = query.where(Reading.measured_at >= filters.start)
    if filters.end is not None:
        query = query.where(Reading.measured_at < filters.end)
    return _newest_first(query)


def get_reading(session: Session, actor: Actor, reading_id: uuid.UUID) -> Reading:
    return get_visible(session, visible_readings(actor), reading_id, "reading")


def flagged_readings(session: Session, actor: Actor, study_id: uuid.UUID) -> Select[Reading]:
    """The coordinator's alert list: their sites' flagged readings of the study."""
    require_role(actor, Role.COORDINATOR)
    study = get_visible(session, visible_studies(actor), study_id, "study")
    return _newest_first(
        select(Reading).where(
            Reading.study_id == study.id,
            Reading.site_id.in_(actor.site_ids),
            Reading.flagged.is_(True),
        )
    )


def subject_codes(session: Session, readings: Sequence[Reading]) -> dict[uuid.UUID, str]:
    """The subject codes of a page of readings' participants, in one query."""
    ids = {reading.participant_id for reading in readings}
    if not ids:
        return {}
    return dict(
        session.execute(
            select(Participant.id, Participant.subject_code).where(Participant.id.in_(ids))
        ).all()
    )
