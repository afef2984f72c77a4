"""Free slots of the nurses who may do a visit, inside the visit's window.

The rules are booking's (services.visits.booking.book), so a slot offered is a slot that can be
booked: the nurse is delegated for the study with training valid on the participant's
day and serves the site; the slot lies in one period of the nurse's working hours
(their own zone), outside their time off; it does not overlap another visit of the
nurse (with the travel buffer around home visits) nor of the participant. Candidates
start every 30 minutes of the nurse's wall clock.

Working hours are in memory; busy ranges and time off of all eligible nurses are read
with one query each, whatever the number of nurses and days.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import cast
from zoneinfo import ZoneInfo

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from services.access import get_visible, require_role
from services.actor import Actor, Role
from services.db import utcnow
from services.errors import Conflict
from services.models import (
    BUSY_STATUSES,
    Delegation,
    NurseProfile,
    NurseTimeOff,
    Participant,
    User,
    Visit,
    VisitStatus,
    user_sites,
)
from services.people.consent_gate import require_current_consent
from services.visits import nurses
from services.visits.booking import DEFAULT_TRAVEL_BUFFER, TRANSITIONS, visible_visits

STEP = dt.timedelta(minutes=30)
# A booking lies inside one working period of one day (within_working_hours), so its
# busy range cannot start more than this before the time it still blocks; the bound
# keeps the (nurse_id, start_at) index scan to the window instead of all history.
_LONGEST_BUSY = dt.timedelta(days=2)
_BUSY = [status.value for status in BUSY_STATUSES]

Range = tuple[dt.datetime, dt.datetime]


@dataclass(frozen=True)
class Slot:
    nurse_id: uuid.UUID
    nurse_name: str
    start: dt.datetime  # in the participant's zone
    end: dt.datetime

    @property
    def start_utc(self) -> dt.datetime:
        return self.start.astimezone(dt.UTC)

    @property
    def end_utc(self) -> dt.datetime:
        return self.end.astimezone(dt.UTC)


@dataclass(frozen=True)
class SlotSearch:
    visit: Visit
    timezone: str  # the participant's: the zone of the window and of the slots
    slots: list[Slot]


@dataclass(frozen=True)
class _Nurse:
    user: User
    profile: NurseProfile
    training_valid_until: dt.date


def free_slots(
    session: Session,
    actor: Actor,
    visit_id: uuid.UUID,
    travel_buffer: dt.timedelta = DEFAULT_TRAVEL_BUFFER,
    now: dt.datetime | None = None,
) -> SlotSearch:
    """Bookable slots from now on, ordered by the participant's date, nurse, then time."""
    require_role(actor, Role.COORDINATOR)
    visit = get_visible(session, visible_visits(actor), visit_id, "visit")
    participant = session.get_one(Participant, visit.participant_id)
    require_current_consent(participant)
    if VisitStatus.SCHEDULED not in TRANSITIONS[visit.status]:
        raise Conflict(f"a {visit.status} visit cannot be booked")
    zone = ZoneInfo(participant.user.timezone)
    lower = max(
        dt.datetime.combine(visit.window_start, dt.time(0), zone).astimezone(dt.UTC),
        now or utcnow(),
    )
    upper = dt.datetime.combine(
        visit.window_end + dt.timedelta(days=1), dt.time(0), zone
    ).astimezone(dt.UTC)
    duration = dt.timedelta(minutes=visit.duration_minutes)
    buffer = travel_buffer if visit.location == "home" else dt.timedelta(0)
    search = SlotSearch(visit, participant.user.timezone, [])
    eligible = _eligible_nurses(session, visit)
    if lower >= upper or not eligible:
        return search

    reach = (lower, upper + duration + buffer)
    busy = _busy_ranges(session, visit, [n.user.id for n in eligible], reach)
    off = _time_off(session, [n.user.id for n in eligible], reach)
    participant_busy = _participant_busy(session, visit, reach)
    for nurse in eligible:
        for start in _candidate_starts(nurse.profile, duration, lower, upper):
            end, local = start + duration, start.astimezone(zone)
            local_day = local.date()
            if (
                not visit.window_start <= local_day <= visit.window_end
                or nurse.training_valid_until < local_day
                or _overlaps(off[nurse.user.id], start, end)
                or _overlaps(busy[nurse.user.id], start, end + buffer)
                or _overlaps(participant_busy, start, end)
            ):
                continue
            search.slots.append(
                Slot(nurse.user.id, nurse.user.full_name, local, end.astimezone(zone))
            )
    # By UTC within a day: local times in one zone compare by wall clock, fold ignored.
    search.slots.sort(key=lambda s: (s.start.date(), s.nurse_name, str(s.nurse_id), s.start_utc))
    return search


def _eligible_nurses(session: Session, visit: Visit) -> list[_Nurse]:
    """delegation_problem() is None for them on some day of the window, in one query:
    active nurses of the visit's site, delegated for its study, with working hours."""
    rows = session.execute(
        select(User, NurseProfile, Delegation.training_valid_until)
        .join(NurseProfile, NurseProfile.user_id == User.id)
        .join(
            Delegation,
            and_(Delegation.nurse_id == User.id, Delegation.study_id == visit.study_id),
        )
        .join(
            user_sites,
            and_(user_sites.c.user_id == User.id, user_sites.c.site_id == visit.site_id),
        )
        .where(
            User.role == Role.NURSE.value,
            User.is_active.is_(True),
            Delegation.training_valid_until >= visit.window_start,
        )
    ).all()
    return [_Nurse(user, profile, valid_until) for user, profile, valid_until in rows]


def _busy_ranges(
    session: Session, visit: Visit, nurse_ids: list[uuid.UUID], reach: Range
) -> dict[uuid.UUID, list[Range]]:
    """The nurses' other active bookings that reach into the searched time."""
    rows = session.execute(
        select(Visit.nurse_id, Visit.start_at, Visit.busy_until).where(
            Visit.nurse_id.in_(nurse_ids),
            Visit.status.in_(_BUSY),
            Visit.id != visit.id,
            Visit.start_at > reach[0] - _LONGEST_BUSY,
            Visit.start_at < reach[1],
            Visit.busy_until > reach[0],
        )
    )
    ranges: dict[uuid.UUID, list[Range]] = defaultdict(list)
    # The columns are nullable, but the query filters on each: none is NULL here.
    for nurse_id, start, until in rows:
        ranges[cast(uuid.UUID, nurse_id)].append(
            (cast(dt.datetime, start), cast(dt.datetime, until))
        )
    return ranges


def _time_off(
    session: Session, nurse_ids: list[uuid.UUID], reach: Range
) -> dict[uuid.UUID, list[Range]]:
    rows = session.execute(
        select(NurseTimeOff.nurse_id, NurseTimeOff.start_at, NurseTimeOff.end_at).where(
            NurseTimeOff.nurse_id.in_(nurse_ids),
            NurseTimeOff.start_at < reach[1],
            NurseTimeOff.end_at > reach[0],
        )
    )
    ranges: dict[uuid.UUID, list[Range]] = defaultdict(list)
    for nurse_id, start, end in rows:
        ranges[nurse_id].append((start, end))
    return ranges


def _participant_busy(session: Session, visit: Visit, reach: Range) -> list[Range]:
    """The participant's other active visits, without the nurses' travel buffers."""
    rows = session.execute(
        select(Visit.start_at, Visit.end_at).where(
            Visit.participant_id == visit.participant_id,
            Visit.status.in_(_BUSY),
            Visit.id != visit.id,
            Visit.start_at < reach[1],
            Visit.end_at > reach[0],
        )
    )
    # Nullable columns, but the query filters on both: neither is NULL here.
    return [(cast(dt.datetime, start), cast(dt.datetime, until)) for start, until in rows]


def _overlaps(ranges: list[Range], start: dt.datetime, until: dt.datetime) -> bool:
    return any(begins < until and ends > start for begins, ends in ranges)


def _candidate_starts(
    profile: NurseProfile, duration: dt.timedelta, lower: dt.datetime, upper: dt.datetime
) -> list[dt.datetime]:
    """UTC starts every STEP of the nurse's wall clock from each working period's start,
    in [lower, upper), whose visit ends inside the period.

    On a day whose UTC offset does not change, wall-clock arithmetic is exact. On the
    day of a DST change both passes of a repeated wall time are tried, and booking's own
    test (within_working_hours) decides."""
    zone = ZoneInfo(profile.timezone)
    periods: dict[int, list[tuple[dt.time, dt.time]]] = defaultdict(list)
    for entry in profile.weekly_hours:
        periods[entry["weekday"]].append(
            (dt.time.fromisoformat(entry["start"]), dt.time.fromisoformat(entry["end"]))
        )
    starts: set[dt.datetime] = set()
    day, last_day = lower.astimezone(zone).date(), upper.astimezone(zone).date()
    while day <= last_day:
        next_day = day + dt.timedelta(days=1)
        # An aware datetime (a ZoneInfo) always has an offset.
        offset = cast(dt.timedelta, dt.datetime.combine(day, dt.time(0), zone).utcoffset())
        steady = offset == dt.datetime.combine(next_day, dt.time(0), zone).utcoffset()
        for begins, ends in periods.get(day.weekday(), []):
            wall, stop = dt.datetime.combine(day, begins), dt.datetime.combine(day, ends)
            while wall < stop:
                if steady:
                    if wall + duration > stop:
                        break
                    candidates = [(wall - offset).replace(tzinfo=dt.UTC)]
                else:
                    candidates = [
                        wall.replace(tzinfo=zone, fold=fold).astimezone(dt.UTC) for fold in (0, 1)
                    ]
                    candidates = [
                        start
                        for start in candidates
                        if nurses.within_working_hours(profile, start, start + duration)
                    ]
                starts.update(start for start in candidates if lower <= start < upper)
                wall += STEP
        day = next_day
    return sorted(starts)
