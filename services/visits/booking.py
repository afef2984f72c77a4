"""Planned visits: planning at enrolment, booking a nurse, the visit's life cycle.

Windows are calendar days in the participant's zone; booked times are instants. A
booking is refused with the reason (409) when it leaves the window (unless an
override reason is given: then it is booked and recorded as a protocol deviation),
leaves the nurse's working hours, falls in their time off, or overlaps another visit
of the nurse (with the travel buffer after home visits) or of the participant.
Check-in is held to the booking the same way: from a margin before the booked start
to the end of the window, otherwise 409 unless an override reason records a deviation.
Bookings of one nurse are serialised by a row lock on the nurse's profile, and on
PostgreSQL an exclusion constraint makes the database itself refuse an overlap.

Longer than most modules on purpose: booking, check-in and the transitions share one
lock order and one deviation record, and are checked together for double-booking.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import cast
from zoneinfo import ZoneInfo

from sqlalchemy import Select, false, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from services.access import get_visible, require_role, visible_participants
from services.actor import Actor, Role
from services.audit import chain as audit
from services.db import utcnow
from services.epro import plan as epro_plan
from services.errors import Conflict, Invalid
from services.models import (
    BUSY_STATUSES,
    NurseProfile,
    Participant,
    Study,
    User,
    Visit,
    VisitDefinition,
    VisitStatus,
)
from services.notifications import planning as sms_rules
from services.people.consent_gate import require_current_consent
from services.people.participants import participant_subject
from services.visits import nurses

DEFAULT_TRAVEL_BUFFER = dt.timedelta(minutes=30)
DEFAULT_CHECK_IN_MARGIN = dt.timedelta(minutes=60)
# Check-in and check-out record when they happened; a phone clock this far ahead passes.
CLOCK_TOLERANCE = dt.timedelta(minutes=5)
_BUSY = [status.value for status in BUSY_STATUSES]
# Not yet done: cancelled by a withdrawal, missed when the window closes.
_OPEN = [VisitStatus.PLANNED.value, VisitStatus.SCHEDULED.value, VisitStatus.CONFIRMED.value]

# The life cycle; anything else answers 409.
TRANSITIONS: dict[str, set[str]] = {
    VisitStatus.PLANNED: {VisitStatus.SCHEDULED, VisitStatus.MISSED, VisitStatus.CANCELLED},
    VisitStatus.SCHEDULED: {
        VisitStatus.SCHEDULED,
        VisitStatus.CONFIRMED,
        VisitStatus.IN_PROGRESS,
        VisitStatus.MISSED,
        VisitStatus.CANCELLED,
    },
    VisitStatus.CONFIRMED: {
        VisitStatus.SCHEDULED,
        VisitStatus.IN_PROGRESS,
        VisitStatus.MISSED,
        VisitStatus.CANCELLED,
    },
    VisitStatus.IN_PROGRESS: {VisitStatus.COMPLETED},
    VisitStatus.COMPLETED: set(),
    VisitStatus.MISSED: set(),
    VisitStatus.CANCELLED: set(),
}


@dataclass(frozen=True)
class Booking:
    nurse_id: uuid.UUID
    start: dt.datetime
    end: dt.datetime
    override_reason: str | None = None


def visible_visits(actor: Actor) -> Select[Visit]:
    """Nurses their assigned visits; coordinators their sites'; monitors their
    studies' (dates and status only, the API drops contact data); patients their own."""
    query = select(Visit)
    if actor.role == Role.ADMIN:
        return query
    if actor.role == Role.COORDINATOR:
        return query.where(Visit.site_id.in_(actor.site_ids))
    if actor.role == Role.NURSE:
        return query.where(Visit.nurse_id == actor.user_id)
    if actor.role == Role.MONITOR:
        return query.where(Visit.study_id.in_(actor.study_ids))
    if actor.role == Role.PATIENT:
        return query.where(Visit.participant_id == actor.participant_id)
    return query.where(false())


def _record(
    session: Session,
    actor: Actor,
    action: str,
    visit: Visit,
    *,
    before: dict[str, object] | None = None,
    after: dict[str, object] | None = None,
    reason: str | None = None,
) -> None:
    """One audit event about a visit, in its participant's chain."""
    audit.record_change(
        session,
        actor,
        action,
        visit,
        subject=audit.Subject(
            study_id=visit.study_id, site_id=visit.site_id, participant_id=visit.participant_id
        ),
        before=before,
        after=audit.snapshot(visit, VISIT_FIELDS) if after is None else after,
        reason=reason,
    )


# What an event keeps of the row before and after a change.
VISIT_FIELDS = ("status", "nurse_id", "start_at", "end_at")


def plan_visits(session: Session, actor: Actor, participant: Participant) -> list[Visit]:
    """Every visit of the schedule, dated from the baseline in the participant's days."""
    session.execute(
        select(Study.id).where(Study.id == participant.study_id).with_for_update(read=True)
    )
    definitions = session.scalars(
        select(VisitDefinition)
        .where(VisitDefinition.study_id == participant.study_id)
        .order_by(VisitDefinition.day, VisitDefinition.code)
    ).all()
    visits = []
    for definition in definitions:
        # Enrolment sets the baseline date before it plans the visits.
        target = cast(dt.date, participant.baseline_date) + dt.timedelta(days=definition.day)
        visit = Visit(
            id=uuid.uuid4(),
            participant_id=participant.id,
            study_id=participant.study_id,
            site_id=participant.site_id,
            definition_id=definition.id,
            code=definition.code,
            name=definition.name,
            location=definition.location,
            procedures=list(definition.procedures),
            duration_minutes=definition.duration_minutes,
            target_date=target,
            window_start=target - dt.timedelta(days=definition.window_before),
            window_end=target + dt.timedelta(days=definition.window_after),
            status=VisitStatus.PLANNED.value,
        )
        session.add(visit)
        visits.append(visit)
    session.flush()
    audit.record_change(
        session,
        actor,
        "visit.plan",
        participant,
        subject=participant_subject(participant),
        after={
            "visits": [{"code": v.code, "target_date": v.target_date.isoformat()} for v in visits]
        },
    )
    return visits


def _check_transition(visit: Visit, status: VisitStatus) -> None:
    if status not in TRANSITIONS[visit.status]:
        raise Conflict(f"a {visit.status} visit cannot become {status.value}")


def _lock_nurse(session: Session, nurse_id: uuid.UUID) -> NurseProfile | None:
    """Serialise bookings of one nurse: the second of two concurrent bookings waits,
    then sees the first."""
    return session.scalars(
        select(NurseProfile).where(NurseProfile.user_id == nurse_id).with_for_update()
    ).first()


def _overlapping(
    session: Session,
    *,
    start: dt.datetime,
    until: dt.datetime,
    exclude: uuid.UUID,
    travel: bool = True,
    **who: uuid.UUID,
) -> Visit | None:
    """The nurse's visits count with their travel buffer; the participant's without."""
    ((column, value),) = who.items()
    ends = Visit.busy_until if travel else Visit.end_at
    return session.scalars(
        select(Visit).where(
            getattr(Visit, column) == value,
            Visit.id != exclude,
            Visit.status.in_(_BUSY),
            Visit.start_at < until,
            ends > start,
        )
    ).first()


def book(
    session: Session,
    actor: Actor,
    visit_id: uuid.UUID,
    booking: Booking,
    travel_buffer: dt.timedelta = DEFAULT_TRAVEL_BUFFER,
) -> Visit:
    require_role(actor, Role.COORDINATOR)
    visit = get_visible(session, visible_visits(actor), visit_id, "visit")
    participant = session.get_one(Participant, visit.participant_id)
    require_current_consent(participant)
    _check_transition(visit, VisitStatus.SCHEDULED)
    if booking.end <= booking.start:
        raise Invalid("times", errors={"end": ["the visit must end after it starts"]})
    nurse = session.get(User, booking.nurse_id)
    if nurse is None or nurse.role != Role.NURSE.value:
        raise Invalid("nurse", errors={"nurse_id": ["no nurse with this id"]})
    zone = ZoneInfo(participant.user.timezone)
    local_day = booking.start.astimezone(zone).date()
    problem = nurses.delegation_problem(session, nurse, visit.study_id, visit.site_id, local_day)
    if problem:
        raise Conflict(problem)
    profile = _lock_nurse(session, nurse.id)
    deviation = None
    if not visit.window_start <= local_day <= visit.window_end:
        if not booking.override_reason:
            raise Conflict(
                f"{local_day} is outside the visit window {visit.window_start} to "
                f"{visit.window_end} (participant's time zone); give an override_reason to book "
                "it as a protocol deviation"
            )
        deviation = booking.override_reason
    if not nurses.within_working_hours(profile, booking.start, booking.end):
        raise Conflict("outside the nurse's working hours")
    if nurses.on_time_off(session, nurse.id, booking.start, booking.end):
        raise Conflict("the nurse is on time off then")
    until = booking.end + (travel_buffer if visit.location == "home" else dt.timedelta(0))
    clash = _overlapping(
        session, start=booking.start, until=until, exclude=visit.id, nurse_id=nurse.id
    )
    if clash:
        raise Conflict(
            f"the nurse has another visit from {clash.start_at:%Y-%m-%d %H:%M} UTC (with "
            f"{int(travel_buffer.total_seconds() // 60)} minutes' travel between home visits)"
        )
    if _overlapping(
        session,
        start=booking.start,
        until=booking.end,
        exclude=visit.id,
        travel=False,
        participant_id=participant.id,
    ):
        raise Conflict("the participant has another visit at that time")
    before = audit.snapshot(visit, VISIT_FIELDS)
    visit.nurse_id, visit.start_at, visit.end_at, visit.busy_until = (
        nurse.id,
        booking.start,
        booking.end,
        until,
    )
    visit.status = VisitStatus.SCHEDULED.value
    visit.confirmed_at = None
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:  # the exclusion constraint: a concurrent booking won
        raise Conflict("the nurse was booked for an overlapping time meanwhile") from exc
    _record(session, actor, "visit.schedule", visit, before=before)
    epro_plan.follow_visit(session, actor, visit)
    sms_rules.plan_visit_reminders(session, visit)
    if deviation:
        _record_deviation(session, actor, visit, deviation, booked_day=local_day.isoformat())
    return visit


def _record_deviation(
    session: Session, actor: Actor, visit: Visit, reason: str, **facts: str
) -> None:
    """A protocol deviation, whatever caused it (booking outside the window, checking in
    outside the booking): its reason on the visit, and one audit action to find them by."""
    visit.deviation_reason = reason
    _record(
        session,
        actor,
        "visit.protocol_deviation",
        visit,
        reason=reason,
        after={
            "window_start": visit.window_start.isoformat(),
            "window_end": visit.window_end.isoformat(),
            **facts,
        },
    )


def _check_in_times(
    visit: Visit, zone: ZoneInfo, margin: dt.timedelta
) -> tuple[dt.datetime, dt.datetime, dt.date]:
    """When check-in opens (the margin before the booked start: a nurse may be early),
    when it closes and which local day that ends: the window's last day, or the booked
    day of a visit booked past its window (a deviation recorded at booking)."""
    start_at = cast(dt.datetime, visit.start_at)  # checked in: the visit is booked
    last_day = max(visit.window_end, start_at.astimezone(zone).date())
    midnight = dt.datetime.combine(last_day + dt.timedelta(days=1), dt.time(0), tzinfo=zone)
    return start_at - margin, midnight.astimezone(dt.UTC), last_day


def _check_in_deviation(
    visit: Visit,
    zone: ZoneInfo,
    at: dt.datetime,
    margin: dt.timedelta,
    override_reason: str | None,
) -> dict[str, str] | None:
    """None for a check-in in its time; else 409 saying when check-in opens or that the
    window closed, unless an override reason is given: then what the deviation records.
    Without this a visit could be done, and counted as done, days before its time."""
    opens, closes, last_day = _check_in_times(visit, zone, margin)
    if opens <= at < closes:
        return None
    if not override_reason:
        if at < opens:
            minutes = int(margin.total_seconds() // 60)
            when = f"check-in opens at {_utc(opens)}, {minutes} minutes before the booked start"
        else:
            when = (
                f"the visit window closed at {_utc(closes)}, the end of {last_day} in the "
                "participant's time zone"
            )
        raise Conflict(f"{when}; give an override_reason to check in as a protocol deviation")
    return {
        "checked_in_at": at.isoformat(),
        "check_in_opens": opens.isoformat(),
        "check_in_closes": closes.isoformat(),
    }


def _utc(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def transition(
    session: Session,
    actor: Actor,
    visit_id: uuid.UUID,
    status: VisitStatus,
    *,
    at: dt.datetime | None = None,
    location: str | None = None,
    completed_procedures: list[str] | None = None,
    notes: str | None = None,
    reason: str | None = None,
    override_reason: str | None = None,
    check_in_margin: dt.timedelta = DEFAULT_CHECK_IN_MARGIN,
) -> Visit:
    """confirm (patient), check-in and check-out (the assigned nurse), missed and
    cancel (coordinator). `at` (check-in, check-out) is when it happened, for a phone
    that syncs later; never ahead of the clock. Check-in outside its time needs an
    `override_reason` and records a protocol deviation."""
    allowed = {
        VisitStatus.CONFIRMED: (Role.PATIENT,),
        VisitStatus.IN_PROGRESS: (Role.NURSE,),
        VisitStatus.COMPLETED: (Role.NURSE,),
        VisitStatus.MISSED: (Role.COORDINATOR,),
        VisitStatus.CANCELLED: (Role.COORDINATOR,),
    }[status]
    require_role(actor, *allowed)
    visit = get_visible(session, visible_visits(actor), visit_id, "visit")
    _check_transition(visit, status)
    if status in (VisitStatus.CONFIRMED, VisitStatus.IN_PROGRESS):
        require_current_consent(session.get_one(Participant, visit.participant_id))
    before = audit.snapshot(visit, VISIT_FIELDS)
    if at is not None and at > utcnow() + CLOCK_TOLERANCE:
        raise Invalid("at", errors={"at": ["cannot be in the future: it is when it happened"]})
    now = at or utcnow()
    deviation = None
    if status == VisitStatus.CONFIRMED:
        visit.confirmed_at = now
    elif status == VisitStatus.IN_PROGRESS:
        zone = ZoneInfo(session.get_one(Participant, visit.participant_id).user.timezone)
        deviation = _check_in_deviation(visit, zone, now, check_in_margin, override_reason)
        visit.checked_in_at, visit.check_in_location = now, location
    elif status == VisitStatus.COMPLETED:
        if visit.checked_in_at and now < visit.checked_in_at:
            raise Invalid(
                "at",
                errors={"at": [f"before the check-in at {visit.checked_in_at.isoformat()}"]},
            )
        unknown = sorted(set(completed_procedures or []) - set(visit.procedures))
        if unknown:
            raise Invalid(
                "procedures",
                errors={"completed_procedures": [f"not procedures of this visit: {unknown}"]},
            )
        visit.checked_out_at, visit.completed_procedures, visit.notes = (
            now,
            list(completed_procedures or []),
            notes,
        )
    else:
        visit.cancel_reason = reason
    visit.status = status.value
    session.flush()
    _record(session, actor, f"visit.{status.value}", visit, before=before, reason=reason)
    if deviation and override_reason:
        _record_deviation(session, actor, visit, override_reason, **deviation)
    if status == VisitStatus.CANCELLED:
        epro_plan.follow_visit(session, actor, visit)
    if status in (VisitStatus.CANCELLED, VisitStatus.COMPLETED):
        # A visit done early must not be announced afterwards as still to come.
        sms_rules.plan_visit_reminders(session, visit)
    return visit


def cancel_future(session: Session, actor: Actor, participant: Participant, reason: str) -> int:
    """Withdrawal of consent: visits not yet done are cancelled (done ones stay)."""
    open_visits = session.scalars(
        select(Visit).where(
            Visit.participant_id == participant.id,
            Visit.status.in_(_OPEN),
        )
    ).all()
    for visit in open_visits:
        before = audit.snapshot(visit, VISIT_FIELDS)
        visit.status, visit.cancel_reason = VisitStatus.CANCELLED.value, reason
        _record(session, actor, "visit.cancelled", visit, before=before, reason=reason)
    session.flush()
    return len(open_visits)


def mark_missed(session: Session, actor: Actor, now: dt.datetime | None = None) -> int:
    """Visits whose window has closed (in the participant's zone) without a visit."""
    now = now or utcnow()
    candidates = session.scalars(
        select(Visit)
        .where(
            Visit.status.in_(_OPEN),
            # No zone is more than a day ahead of UTC: later windows are open everywhere.
            Visit.window_end < now.astimezone(dt.UTC).date() + dt.timedelta(days=1),
        )
        .with_for_update(skip_locked=True)
    ).all()
    missed = 0
    for visit in candidates:
        participant = session.get_one(Participant, visit.participant_id)
        local_today = now.astimezone(ZoneInfo(participant.user.timezone)).date()
        # A visit booked past its window (a recorded deviation) is missed only once its
        # booked time has passed.
        if visit.window_end >= local_today or (visit.end_at and visit.end_at > now):
            continue
        before = audit.snapshot(visit, VISIT_FIELDS)
        visit.status = VisitStatus.MISSED.value
        missed += 1
        _record(
            session,
            actor,
            "visit.missed",
            visit,
            before=before,
            reason="the visit window closed without a visit",
        )
    session.flush()
    return missed


def participant_visits(session: Session, actor: Actor, participant_id: uuid.UUID) -> list[Visit]:
    """The participant's visits by target date, as far as the actor may see them."""
    require_role(actor, Role.COORDINATOR, Role.PATIENT, Role.NURSE, Role.MONITOR)
    participant = get_visible(session, visible_participants(actor), participant_id, "participant")
    query = visible_visits(actor).where(Visit.participant_id == participant.id)
    return list(session.scalars(query.order_by(Visit.target_date, Visit.code)))


def my_visits(session: Session, actor: Actor, start: dt.datetime, end: dt.datetime) -> list[Visit]:
    """A nurse's visits (or a patient's upcoming ones) between two instants: booked,
    under way or done; a cancelled or missed visit no longer hands out contact data."""
    require_role(actor, Role.NURSE, Role.PATIENT)
    query = (
        visible_visits(actor)
        .where(Visit.start_at >= start, Visit.start_at < end)
        .where(or_(Visit.status.in_(_BUSY), Visit.status == VisitStatus.COMPLETED))
        .options(
            joinedload(Visit.participant).joinedload(Participant.user), joinedload(Visit.nurse)
        )
    )
    return list(session.scalars(query.order_by(Visit.start_at)))
