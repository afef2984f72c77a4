"""A study's alert thresholds for device readings: the limits past which a plausible
reading is flagged for the site, replaced as a whole by the study's coordinators."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from services.access import get_visible, require_role, visible_studies
from services.actor import Actor, Role
from services.audit import chain as audit
from services.diagnostics.readings import PLAUSIBLE, components, is_number
from services.errors import Invalid
from services.models import (
    READING_TYPES,
    ReadingThreshold,
    Study,
)


@dataclass(frozen=True)
class Threshold:
    """A study's alert limits for one reading component, in one unit (either may be None)."""

    type: str
    component: str
    unit: str
    low: float | None
    high: float | None


def _threshold_problems(threshold: Threshold) -> list[str]:
    if threshold.type not in PLAUSIBLE:
        return [f"type: one of {', '.join(READING_TYPES)}"]
    problems = []
    if threshold.component not in components(threshold.type):
        problems.append(f"component: {' or '.join(components(threshold.type))}")
    if threshold.unit not in PLAUSIBLE[threshold.type]:
        problems.append(f"unit: {' or '.join(PLAUSIBLE[threshold.type])}")
    low, high = threshold.low, threshold.high
    for name, value in (("low", low), ("high", high)):
        if value is not None and not is_number(value):
            problems.append(f"{name}: a finite number or null")
    if low is None and high is None:
        problems.append("give low, high or both")
    elif not problems and low is not None and high is not None and low >= high:
        problems.append("low: must be below high")
    return problems


def _validate_thresholds(thresholds: Sequence[Threshold]) -> None:
    errors: dict[str, list[str]] = {}
    seen: set[tuple[str, str]] = set()
    for index, threshold in enumerate(thresholds):
        problems = _threshold_problems(threshold)
        key = (threshold.type, threshold.component)
        if key in seen:
            problems.append(f"{threshold.type} {threshold.component} is given twice")
        seen.add(key)
        if problems:
            errors[f"thresholds.{index}"] = problems
    if errors:
        raise Invalid("invalid reading thresholds", errors=errors)


# What an event keeps of the row before and after a change.
THRESHOLD_FIELDS = ("type", "component", "unit", "low", "high")


def _thresholds_of(session: Session, study_id: uuid.UUID) -> list[ReadingThreshold]:
    return list(
        session.scalars(
            select(ReadingThreshold)
            .where(ReadingThreshold.study_id == study_id)
            .order_by(ReadingThreshold.type, ReadingThreshold.component)
        )
    )


def get_thresholds(session: Session, actor: Actor, study_id: uuid.UUID) -> list[ReadingThreshold]:
    """The study's coordinators and monitors read its alert thresholds."""
    require_role(actor, Role.COORDINATOR, Role.MONITOR)
    study = get_visible(session, visible_studies(actor), study_id, "study")
    return _thresholds_of(session, study.id)


def put_thresholds(
    session: Session, actor: Actor, study_id: uuid.UUID, thresholds: Sequence[Threshold]
) -> list[ReadingThreshold]:
    """Replace the study's alert thresholds (a coordinator of the study). Readings
    already stored keep the flags they were given when they arrived."""
    require_role(actor, Role.COORDINATOR)
    study = get_visible(session, visible_studies(actor), study_id, "study")
    _validate_thresholds(thresholds)
    # Concurrent replacements of one study's set queue here rather than collide on the keys.
    session.execute(select(Study.id).where(Study.id == study.id).with_for_update())
    before = [audit.snapshot(row, THRESHOLD_FIELDS) for row in _thresholds_of(session, study.id)]
    session.execute(delete(ReadingThreshold).where(ReadingThreshold.study_id == study.id))
    session.add_all(
        ReadingThreshold(
            study_id=study.id,
            type=threshold.type,
            component=threshold.component,
            unit=threshold.unit,
            low=threshold.low,
            high=threshold.high,
            updated_by=actor.user_id,
        )
        for threshold in thresholds
    )
    session.flush()
    audit.record_change(
        session,
        actor,
        "study.reading_thresholds",
        study,
        subject=audit.Subject(study_id=study.id),
        before={"thresholds": before},
        after={"thresholds": [audit.snapshot(t, THRESHOLD_FIELDS) for t in thresholds]},
    )
    return _thresholds_of(session, study.id)
