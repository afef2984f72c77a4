"""ePRO instances: what each participant is asked to answer, and when.

A questionnaire's schedule is data (once, daily, weekly, or on the day of a visit);
this module derives its occasions per participant from the baseline date, and each
occasion's window from local wall-clock times in the participant's zone, so a window
"18:00 to 23:59" stays 18:00 local across DST changes. A local time that does not
exist on a spring-forward day is read as the instant an hour later (zoneinfo's
`fold=0`), an ambiguous one on the autumn day as its first occurrence.

Instances are rows planned ahead with stable ids: enrolment plans them, publishing a
new version hands over to it from the next window on, a withdrawal cancels what has
not opened yet, and a job marks unanswered ones missed once window and grace closed.
Only occasions that can still be answered are planned (no instance is born missed).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Select, insert, select, update
from sqlalchemy.orm import Session, joinedload

from services.access import require_role
from services.actor import Actor, Role
from services.audit import chain as audit
from services.db import utcnow
from services.errors import NotFound
from services.models import (
    EproInstance,
    InstanceStatus,
    Participant,
    ParticipantStatus,
    Questionnaire,
    QuestionnaireStatus,
    Visit,
    VisitStatus,
)
from services.notifications import outbox
from services.people.consent_gate import require_enrolled
from services.people.participants import participant_subject

DEFAULT_GRACE = dt.timedelta(hours=24)
_SCHEDULED = InstanceStatus.SCHEDULED.value
# Slots per IN: far below SQLite's and PostgreSQL's bound-parameter limits.
_CHUNK = 500


@dataclass(frozen=True)
class Occasion:
    slot: str
    local_date: dt.date
    visit_id: uuid.UUID | None = None


def _clock(value: str) -> dt.time:
    hours, minutes = value.split(":")
    return dt.time(int(hours), int(minutes))


def window(
    schedule: dict[str, Any], local_date: dt.date, zone: ZoneInfo
) -> tuple[dt.datetime, dt.datetime]:
    """The window's UTC instants for an occasion on `local_date` in `zone`."""
    spec = schedule["window"]
    opens = dt.datetime.combine(local_date, _clock(spec["opens"]), tzinfo=zone)
    close_day = local_date + dt.timedelta(days=spec.get("close_after_days", 0))
    closes = dt.datetime.combine(close_day, _clock(spec["closes"]), tzinfo=zone)
    return opens.astimezone(dt.UTC), closes.astimezone(dt.UTC)


def _visit_day(visit: Visit, zone: ZoneInfo) -> dt.date:
    """A booked visit happens on its booked local day; an unbooked one on its target."""
    return visit.start_at.astimezone(zone).date() if visit.start_at else visit.target_date


def occasions(
    schedule: dict[str, Any], baseline: dt.date, visits: dict[str, Visit], zone: ZoneInfo
) -> list[Occasion]:
    kind = schedule["type"]
    if kind == "visit":
        visit = visits.get(schedule["visit_code"])
        if visit is None or visit.status == VisitStatus.CANCELLED:
            return []
        day = _visit_day(visit, zone) + dt.timedelta(days=schedule.get("offset_days", 0))
        return [Occasion(f"visit:{visit.code}", day, visit.id)]
    first = baseline + dt.timedelta(days=schedule["start_day"])
    if kind == "once":
        return [Occasion(first.isoformat(), first)]
    last = baseline + dt.timedelta(days=schedule["end_day"])
    days = (first + dt.timedelta(days=n) for n in range((last - first).days + 1))
    if kind == "weekly":
        weekdays = set(schedule["weekdays"])
        days = (day for day in days if day.weekday() in weekdays)
    return [Occasion(day.isoformat(), day) for day in days]


def _rows(
    participant: Participant,
    questionnaire: Questionnaire,
    visits: dict[str, Visit],
    keep: Callable[[dt.datetime, dt.datetime], bool],
) -> list[dict[str, Any]]:
    zone = ZoneInfo(participant.user.timezone)
    rows = []
    # Only enrolled participants are planned for, and enrolment sets the baseline date.
    baseline = cast(dt.date, participant.baseline_date)
    for occasion in occasions(questionnaire.schedule, baseline, visits, zone):
        opens_at, closes_at = window(questionnaire.schedule, occasion.local_date, zone)
        if keep(opens_at, closes_at):
            rows.append(
                {
                    "id": uuid.uuid4(),
                    "participant_id": participant.id,
                    "study_id": participant.study_id,
                    "site_id": participant.site_id,
                    "questionnaire_id": questionnaire.id,
                    "visit_id": occasion.visit_id,
                    "slot": occasion.slot,
                    "local_date": occasion.local_date,
                    "opens_at": opens_at,
                    "closes_at": closes_at,
                    "status": _SCHEDULED,
                    "created_at": utcnow(),
                }
            )
    return rows


def _visits_by_code(
    session: Session, participant_ids: list[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Visit]]:
    by_participant: dict[uuid.UUID, dict[str, Visit]] = {pid: {} for pid in participant_ids}
    for visit in session.scalars(select(Visit).where(Visit.participant_id.in_(participant_ids))):
        by_participant[visit.participant_id][visit.code] = visit
    return by_participant


def _published(session: Session, study_id: uuid.UUID) -> list[Questionnaire]:
    return list(
        session.scalars(
            select(Questionnaire)
            .where(
                Questionnaire.study_id == study_id,
                Questionnaire.status == QuestionnaireStatus.PUBLISHED.value,
            )
            .order_by(Questionnaire.code)
        )
    )


def plan_participant(session: Session, actor: Actor, participant: Participant) -> int:
    """At enrolment: every published questionnaire's occasions still answerable."""
    now = utcnow()
    visits = _visits_by_code(session, [participant.id])[participant.id]
    planned: Counter[str] = Counter()
    rows = []
    for questionnaire in _published(session, participant.study_id):
        new = _rows(participant, questionnaire, visits, lambda _o, closes: closes > now)
        planned[f"{questionnaire.code} {questionnaire.version}"] += len(new)
        rows.extend(new)
    if rows:
        session.execute(insert(EproInstance), rows)
    audit.record_change(
        session,
        actor,
        "epro.plan",
        participant,
        subject=participant_subject(participant),
        after={"instances": dict(planned)},
    )
    return len(rows)


def plan_published(session: Session, actor: Actor, questionnaire: Questionnaire) -> int:
    """A newly published version takes over from the next window that opens: the
    previous version keeps its open windows and loses the later ones, with their
    pending reminders. An occasion the previous version still covers (a window open
    now, or answered today when the new window opens later) is not asked again, so no
    occasion has two instances, nor two reminders of a kind."""
    now = utcnow()
    older = select(Questionnaire.id).where(
        Questionnaire.study_id == questionnaire.study_id,
        Questionnaire.code == questionnaire.code,
        Questionnaire.id != questionnaire.id,
    )
    reason = f"replaced by version {questionnaire.version}"
    handed_over = session.scalars(
        update(EproInstance)
        .where(
            EproInstance.questionnaire_id.in_(older),
            EproInstance.status == _SCHEDULED,
            EproInstance.opens_at > now,
        )
        .values(status=InstanceStatus.CANCELLED.value, cancel_reason=reason)
        .returning(EproInstance.id)
        .execution_options(synchronize_session=False)
    ).all()
    reminders_cancelled = outbox.cancel_instance_reminders(session, handed_over, reason)
    participants = list(
        session.scalars(
            select(Participant)
            .options(joinedload(Participant.user))
            .where(
                Participant.study_id == questionnaire.study_id,
                Participant.status == ParticipantStatus.ENROLLED.value,
            )
        )
    )
    visits = _visits_by_code(session, [p.id for p in participants])
    candidates = []
    for participant in participants:
        candidates.extend(
            _rows(participant, questionnaire, visits[participant.id], lambda opens, _c: opens > now)
        )
    covered = _covered_occasions(session, older, candidates)
    rows = [row for row in candidates if (row["participant_id"], row["slot"]) not in covered]
    if rows:
        session.execute(insert(EproInstance), rows)
    audit.record_change(
        session,
        actor,
        "epro.plan",
        questionnaire,
        subject=audit.Subject(study_id=questionnaire.study_id),
        after={
            "version": questionnaire.version,
            "participants": len(participants),
            "instances": len(rows),
            "previous_version_instances_cancelled": len(handed_over),
            "previous_version_reminders_cancelled": reminders_cancelled,
            "occasions_kept_by_previous_version": len(candidates) - len(rows),
        },
    )
    return len(rows)


def _covered_occasions(
    session: Session, older: Select[uuid.UUID], rows: list[dict[str, Any]]
) -> set[tuple[uuid.UUID, str]]:
    """(participant, slot) of the planned rows that an older version of the code still
    covers with an instance that was not cancelled: open, answered, or missed."""
    slots = sorted({row["slot"] for row in rows})
    covered: set[tuple[uuid.UUID, str]] = set()
    for start in range(0, len(slots), _CHUNK):
        found = session.execute(
            select(EproInstance.participant_id, EproInstance.slot).where(
                EproInstance.questionnaire_id.in_(older),
                EproInstance.status != InstanceStatus.CANCELLED.value,
                EproInstance.slot.in_(slots[start : start + _CHUNK]),
            )
        )
        covered.update((participant_id, slot) for participant_id, slot in found)
    return covered


def cancel_future(session: Session, actor: Actor, participant: Participant, reason: str) -> int:
    """Withdrawal: nothing more is asked. Open windows close now too; what was
    answered stays, and what was missed stays missed."""
    cancelled = session.scalars(
        update(EproInstance)
        .where(EproInstance.participant_id == participant.id, EproInstance.status == _SCHEDULED)
        .values(status=InstanceStatus.CANCELLED.value, cancel_reason=reason)
        .returning(EproInstance.id)
        .execution_options(synchronize_session=False)
    ).all()
    if cancelled:
        audit.record_change(
            session,
            actor,
            "epro.cancel",
            participant,
            subject=participant_subject(participant),
            after={"instances_cancelled": len(cancelled)},
            reason=reason,
        )
    return len(cancelled)


def follow_visit(session: Session, actor: Actor, visit: Visit) -> None:
    """A visit booked on another day (or cancelled) moves (or cancels) the
    questionnaires tied to it, unless they were answered already."""
    instances = session.scalars(
        select(EproInstance)
        .where(EproInstance.visit_id == visit.id, EproInstance.status == _SCHEDULED)
        .with_for_update()
    ).all()
    if not instances:
        return
    participant = session.get_one(Participant, visit.participant_id)
    zone = ZoneInfo(participant.user.timezone)
    cancelled = []
    for instance in instances:
        before = audit.snapshot(instance, WINDOW_FIELDS)
        if visit.status == VisitStatus.CANCELLED:
            instance.status = InstanceStatus.CANCELLED.value
            instance.cancel_reason = "visit cancelled"
            cancelled.append(instance.id)
        else:
            questionnaire = session.get_one(Questionnaire, instance.questionnaire_id)
            offset = dt.timedelta(days=questionnaire.schedule.get("offset_days", 0))
            instance.local_date = _visit_day(visit, zone) + offset
            instance.opens_at, instance.closes_at = window(
                questionnaire.schedule, instance.local_date, zone
            )
        after = audit.snapshot(instance, WINDOW_FIELDS)
        if after != before:
            audit.record_change(
                session,
                actor,
                "epro.instance.follow_visit",
                instance,
                subject=participant_subject(participant),
                before=before,
                after=after,
            )
    session.flush()
    # A moved window's reminders follow it when the plan job runs next.
    outbox.cancel_instance_reminders(session, cancelled, "visit cancelled")


# What an event keeps of the row before and after a change.
WINDOW_FIELDS = ("status", "opens_at", "closes_at")


def close_windows(
    session: Session,
    actor: Actor,
    now: dt.datetime | None = None,
    grace: dt.timedelta = DEFAULT_GRACE,
) -> int:
    """Unanswered instances whose window and grace period have passed become missed:
    the data is absent, which is not the same as the participant declining."""
    cutoff = (now or utcnow()) - grace
    missed = session.execute(
        update(EproInstance)
        .where(EproInstance.status == _SCHEDULED, EproInstance.closes_at < cutoff)
        .values(status=InstanceStatus.MISSED.value)
        .returning(EproInstance.id, EproInstance.participant_id)
        .execution_options(synchronize_session=False)
    ).all()
    by_participant: dict[uuid.UUID, list[str]] = {}
    for instance_id, participant_id in missed:
        by_participant.setdefault(participant_id, []).append(str(instance_id))
    for participant_id, instance_ids in by_participant.items():
        participant = session.get_one(Participant, participant_id)
        audit.record(
            session,
            actor,
            "epro.missed",
            entity_type="participant",
            entity_id=participant_id,
            subject=participant_subject(participant),
            after={"instances": sorted(instance_ids), "status": InstanceStatus.MISSED.value},
        )
    return len(missed)


@dataclass(frozen=True)
class Due:
    instance: EproInstance
    questionnaire: Questionnaire
    state: str  # open (answer now) or upcoming


def due(session: Session, actor: Actor, now: dt.datetime, horizon: dt.timedelta) -> list[Due]:
    """The patient's open windows, then those opening within `horizon`, soonest first."""
    require_role(actor, Role.PATIENT)
    participant = session.get(Participant, actor.participant_id)
    if participant is None:
        raise NotFound("no participant record for this account")
    require_enrolled(participant)
    rows = session.execute(
        select(EproInstance, Questionnaire)
        .join(Questionnaire, Questionnaire.id == EproInstance.questionnaire_id)
        .where(
            EproInstance.participant_id == participant.id,
            EproInstance.status == _SCHEDULED,
            EproInstance.closes_at > now,
            EproInstance.opens_at <= now + horizon,
        )
        .order_by(EproInstance.opens_at, EproInstance.id)
    ).all()
    return [
        Due(instance, questionnaire, "open" if instance.opens_at <= now else "upcoming")
        for instance, questionnaire in rows
    ]
