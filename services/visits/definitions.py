"""The schedule of assessments: a study's visit definitions, replaced as a whole by code.

Planned visits copy what they need from their definition at enrolment, so a
definition in use may still be renamed or get other procedures, but its day and
window (which dated those visits) may not change, and it may not be removed. Nor may
a definition that a published ePRO questionnaire is scheduled at: its version is
frozen, so it could never be planned again.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.access import get_visible, require_role, visible_studies
from services.actor import Actor, Role
from services.audit import chain as audit
from services.errors import Conflict, Invalid
from services.models import Questionnaire, QuestionnaireStatus, Study, Visit, VisitDefinition

LOCATIONS = ("home", "site")
MIN_DURATION, MAX_DURATION = 5, 720
# Screening may come a year before baseline; follow-up up to ten years after (as ePRO).
MIN_DAY, MAX_DAY = -365, 3650
MAX_WINDOW = 365  # days either side of the target day
# The fields that dated already planned visits.
_DATING = ("day", "window_before", "window_after")


@dataclass(frozen=True)
class Definition:
    code: str
    name: str
    day: int
    window_before: int
    window_after: int
    duration_minutes: int
    location: str
    procedures: list[str] = field(default_factory=list)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _problems(definition: Definition) -> list[str]:
    problems = []
    if not isinstance(definition.code, str) or not 1 <= len(definition.code.strip()) <= 32:
        problems.append("code: 1 to 32 characters")
    if not isinstance(definition.name, str) or not 1 <= len(definition.name.strip()) <= 200:
        problems.append("name: 1 to 200 characters")
    if not _is_int(definition.day) or not MIN_DAY <= definition.day <= MAX_DAY:
        problems.append(f"day: days from baseline, {MIN_DAY} to {MAX_DAY}")
    for name in ("window_before", "window_after"):
        value = getattr(definition, name)
        if not _is_int(value) or not 0 <= value <= MAX_WINDOW:
            problems.append(f"{name}: 0 to {MAX_WINDOW} days")
    duration = definition.duration_minutes
    if not _is_int(duration) or not MIN_DURATION <= duration <= MAX_DURATION:
        problems.append(f"duration_minutes: {MIN_DURATION} to {MAX_DURATION}")
    if definition.location not in LOCATIONS:
        problems.append("location: home or site")
    if not isinstance(definition.procedures, list) or not all(
        isinstance(p, str) and p.strip() for p in definition.procedures
    ):
        problems.append("procedures: a list of non-empty strings")
    return problems


def _validate(definitions: Sequence[Definition]) -> None:
    errors: dict[str, list[str]] = {}
    seen: set[str] = set()
    for index, definition in enumerate(definitions):
        problems = _problems(definition)
        if isinstance(definition.code, str):
            if definition.code in seen:
                problems.append(f"code: {definition.code!r} is used twice")
            seen.add(definition.code)
        if problems:
            errors[f"definitions.{index}"] = problems
    if errors:
        raise Invalid("invalid visit definitions", errors=errors)


# What an event keeps of the row before and after a change.
DEFINITION_FIELDS = (
    "code",
    "name",
    "day",
    "window_before",
    "window_after",
    "duration_minutes",
    "location",
    "procedures",
)


def _study_for_staff(session: Session, actor: Actor, study_id: uuid.UUID) -> Study:
    require_role(actor, Role.ADMIN, Role.COORDINATOR, Role.NURSE, Role.MONITOR)
    return get_visible(session, visible_studies(actor), study_id, "study")


def _ordered(session: Session, study_id: uuid.UUID) -> list[VisitDefinition]:
    return list(
        session.scalars(
            select(VisitDefinition)
            .where(VisitDefinition.study_id == study_id)
            .order_by(VisitDefinition.day, VisitDefinition.code)
        )
    )


def get_definitions(session: Session, actor: Actor, study_id: uuid.UUID) -> list[VisitDefinition]:
    """Staff of the study read its schedule (admins any study's)."""
    study = _study_for_staff(session, actor, study_id)
    return _ordered(session, study.id)


def _questionnaire_refusals(session: Session, study_id: uuid.UUID, removed: set[str]) -> list[str]:
    """Drafts are not counted: publishing one checks its visit against the schedule."""
    published = session.execute(
        select(Questionnaire.code, Questionnaire.version, Questionnaire.schedule)
        .where(
            Questionnaire.study_id == study_id,
            Questionnaire.status == QuestionnaireStatus.PUBLISHED.value,
        )
        .order_by(Questionnaire.code, Questionnaire.version)
    )
    return [
        f"{schedule['visit_code']} cannot be removed: published questionnaire {code} "
        f"{version} is scheduled at it"
        for code, version, schedule in published
        if schedule.get("visit_code") in removed
    ]


def put_definitions(
    session: Session, actor: Actor, study_id: uuid.UUID, definitions: Sequence[Definition]
) -> list[VisitDefinition]:
    """Replace the study's schedule: codes absent are removed, new codes added, the
    others updated. A definition with visits keeps its day and window, and neither it
    nor one a published questionnaire is scheduled at can be removed (409)."""
    require_role(actor, Role.ADMIN, Role.COORDINATOR)
    study = _study_for_staff(session, actor, study_id)
    _validate(definitions)
    # Enrolments read the schedule under a shared lock on the study: an edit waits for
    # them, and they for it, so no visit is planned from a definition being removed.
    session.execute(select(Study.id).where(Study.id == study.id).with_for_update())
    current = {d.code: d for d in _ordered(session, study.id)}
    in_use = {
        definition_id: count
        for definition_id, count in session.execute(
            select(Visit.definition_id, func.count())
            .where(Visit.study_id == study.id)
            .group_by(Visit.definition_id)
        )
    }
    wanted = {d.code: d for d in definitions}
    refusals = []
    for code, existing in current.items():
        visits = in_use.get(existing.id, 0)
        if not visits:
            continue
        if code not in wanted:
            refusals.append(f"{code} cannot be removed: {visits} visit(s) are planned from it")
            continue
        changed = [n for n in _DATING if getattr(existing, n) != getattr(wanted[code], n)]
        if changed:
            refusals.append(
                f"{code} cannot change {', '.join(changed)}: {visits} visit(s) are planned from it"
            )
    refusals += _questionnaire_refusals(session, study.id, current.keys() - wanted.keys())
    if refusals:
        raise Conflict("; ".join(refusals))

    before = [audit.snapshot(d, DEFINITION_FIELDS) for d in current.values()]
    for code, existing in current.items():
        if code not in wanted:
            session.delete(existing)
    for code, definition in wanted.items():
        row = current.get(code) or VisitDefinition(study_id=study.id, code=code)
        values = asdict(definition)
        values["procedures"] = list(definition.procedures)
        for name, value in values.items():
            setattr(row, name, value)
        session.add(row)
    session.flush()
    audit.record_change(
        session,
        actor,
        "study.visit_definitions",
        study,
        subject=audit.Subject(study_id=study.id),
        before={"definitions": before},
        after={"definitions": [audit.snapshot(d, DEFINITION_FIELDS) for d in definitions]},
    )
    return _ordered(session, study.id)
