"""Nurses' availability (working hours in their own zone, time off) and delegation.

Booking and slot search ask the same three questions here, so a slot offered is a
slot that can be booked.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Select, delete, select
from sqlalchemy.orm import Session

from services import validation
from services.access import get_visible, require_role
from services.actor import Actor, Role
from services.audit import chain as audit
from services.errors import Invalid, NotFound
from services.models import Delegation, NurseProfile, NurseTimeOff, User, user_sites
from services.validation import timezone_name


@dataclass(frozen=True)
class Availability:
    timezone: str
    weekly_hours: list[dict[str, Any]]
    time_off: list[tuple[dt.datetime, dt.datetime]]


def visible_nurses(actor: Actor) -> Select[User]:
    """A nurse manages their own availability; coordinators the nurses of their sites."""
    query = select(User).where(User.role == Role.NURSE.value)
    if actor.role == Role.NURSE:
        return query.where(User.id == actor.user_id)
    if actor.role == Role.COORDINATOR:
        here = select(user_sites.c.user_id).where(user_sites.c.site_id.in_(actor.site_ids))
        return query.where(User.id.in_(here))
    if actor.role == Role.ADMIN:
        return query
    return query.where(User.id.is_(None))


def _check_hours(weekly_hours: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    cleaned = []
    for index, entry in enumerate(weekly_hours):
        weekday, start, end = entry.get("weekday"), entry.get("start", ""), entry.get("end", "")
        if (
            weekday not in range(7)
            or not validation.is_clock_time(start)
            or not validation.is_clock_time(end)
        ):
            raise Invalid(
                "working hours",
                errors={f"weekly_hours.{index}": ["weekday 0 (Monday) to 6, start and end HH:MM"]},
            )
        if end <= start:
            raise Invalid("working hours", errors={f"weekly_hours.{index}": ["end after start"]})
        cleaned.append({"weekday": weekday, "start": start, "end": end})
    return cleaned


def set_availability(
    session: Session, actor: Actor, nurse_id: uuid.UUID, availability: Availability
) -> Availability:
    require_role(actor, Role.NURSE, Role.COORDINATOR)
    nurse = get_visible(session, visible_nurses(actor), nurse_id, "nurse")
    hours = _check_hours(availability.weekly_hours)
    for index, (start, end) in enumerate(availability.time_off):
        if end <= start:
            raise Invalid("time off", errors={f"time_off.{index}": ["end after start"]})
    profile = session.get(NurseProfile, nurse.id) or NurseProfile(user_id=nurse.id)
    profile.timezone = timezone_name(availability.timezone)
    profile.weekly_hours = hours
    session.add(profile)
    session.execute(delete(NurseTimeOff).where(NurseTimeOff.nurse_id == nurse.id))
    for start, end in availability.time_off:
        session.add(NurseTimeOff(nurse_id=nurse.id, start_at=start, end_at=end))
    session.flush()
    audit.record_change(
        session,
        actor,
        "nurse.availability",
        nurse,
        subject=audit.Subject(user_id=nurse.id),
        after={
            "timezone": profile.timezone,
            "weekly_hours": hours,
            "time_off": [[s.isoformat(), e.isoformat()] for s, e in availability.time_off],
        },
    )
    return get_availability(session, actor, nurse.id)


def get_availability(session: Session, actor: Actor, nurse_id: uuid.UUID) -> Availability:
    require_role(actor, Role.NURSE, Role.COORDINATOR, Role.ADMIN)
    nurse = get_visible(session, visible_nurses(actor), nurse_id, "nurse")
    profile = session.get(NurseProfile, nurse.id)
    if profile is None:
        return Availability(nurse.timezone, [], [])
    off = session.scalars(
        select(NurseTimeOff)
        .where(NurseTimeOff.nurse_id == nurse.id)
        .order_by(NurseTimeOff.start_at)
    )
    return Availability(
        profile.timezone, profile.weekly_hours, [(t.start_at, t.end_at) for t in off]
    )


def within_working_hours(
    profile: NurseProfile | None, start: dt.datetime, end: dt.datetime
) -> bool:
    """Does [start, end) fall inside one working period, read on the nurse's wall clock?"""
    if profile is None:
        return False
    zone = ZoneInfo(profile.timezone)
    local_start, local_end = start.astimezone(zone), end.astimezone(zone)
    if local_start.date() != local_end.date() and local_end.time() != dt.time(0):
        return False
    begins, ends = local_start.strftime("%H:%M"), local_end.strftime("%H:%M")
    if local_end.date() != local_start.date():
        ends = "24:00"  # ends at midnight: after every period's end (at most 23:59)
    return any(
        entry["weekday"] == local_start.weekday()
        and entry["start"] <= begins
        and ends <= entry["end"]
        for entry in profile.weekly_hours
    )


def on_time_off(
    session: Session, nurse_id: uuid.UUID, start: dt.datetime, end: dt.datetime
) -> bool:
    return (
        session.scalars(
            select(NurseTimeOff.id).where(
                NurseTimeOff.nurse_id == nurse_id,
                NurseTimeOff.start_at < end,
                NurseTimeOff.end_at > start,
            )
        ).first()
        is not None
    )


def delegation_problem(
    session: Session, nurse: User, study_id: uuid.UUID, site_id: uuid.UUID, on: dt.date
) -> str | None:
    """Why this nurse may not do this study's visits on that day, or None."""
    if nurse.role != Role.NURSE.value:
        return "this account is not a nurse"
    if not nurse.is_active:
        return (
            "this nurse's account is deactivated: book another nurse (GET /users/{id} "
            "lists the visits still booked with this nurse)"
        )
    if site_id not in nurse.site_ids:
        return "this nurse does not serve the participant's site"
    delegation = session.scalars(
        select(Delegation).where(Delegation.nurse_id == nurse.id, Delegation.study_id == study_id)
    ).first()
    if delegation is None:
        return "the investigator has not delegated home visits of this study to this nurse"
    if delegation.training_valid_until < on:
        return f"this nurse's study training expired on {delegation.training_valid_until}"
    return None


def set_delegation(
    session: Session, actor: Actor, nurse_id: uuid.UUID, study_id: uuid.UUID, valid_until: dt.date
) -> Delegation:
    require_role(actor, Role.COORDINATOR)
    nurse = get_visible(session, visible_nurses(actor), nurse_id, "nurse")
    if study_id not in actor.study_ids:
        raise NotFound(f"no study with id {study_id}")
    delegation = session.scalars(
        select(Delegation).where(Delegation.nurse_id == nurse.id, Delegation.study_id == study_id)
    ).first() or Delegation(nurse_id=nurse.id, study_id=study_id)
    before = (
        {"training_valid_until": delegation.training_valid_until.isoformat()}
        if delegation.training_valid_until
        else None
    )
    delegation.training_valid_until = valid_until
    delegation.delegated_by = cast(uuid.UUID, actor.user_id)  # a coordinator is signed in
    session.add(delegation)
    session.flush()
    audit.record_change(
        session,
        actor,
        "nurse.delegation",
        delegation,
        subject=audit.Subject(study_id=study_id, user_id=nurse.id),
        before=before,
        after={"study_id": str(study_id), "training_valid_until": valid_until.isoformat()},
    )
    return delegation


def delegations_of(session: Session, actor: Actor, nurse_id: uuid.UUID) -> list[Delegation]:
    require_role(actor, Role.COORDINATOR, Role.NURSE, Role.ADMIN)
    nurse = get_visible(session, visible_nurses(actor), nurse_id, "nurse")
    return list(session.scalars(select(Delegation).where(Delegation.nurse_id == nurse.id)))
