"""The nurse's calendar feed: an iCalendar document their phone subscribes to.

A calendar app cannot log in, so the feed URL carries a per-nurse secret token; only its
SHA-256 is stored. Whoever holds the URL reads the feed, and URLs end up in app
settings, sync servers and proxy logs: so the feed carries nothing sensitive. Each
visit is its times, the subject code and the visit code; no names, address, phone,
procedures or notes (the app shows those to the logged-in nurse). Issuing a new token
rotates it (the old URL stops working); revoking removes it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import cast

import icalendar
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.access import require_role
from services.actor import Actor, Role
from services.audit import chain as audit
from services.db import utcnow
from services.errors import NotFound
from services.models import BUSY_STATUSES, NurseProfile, Participant, User, Visit, VisitStatus

FEED_PAST = dt.timedelta(days=7)
FEED_AHEAD = dt.timedelta(days=60)
PRODID = "-//DCT backend//Home-nurse visits//EN"
_FEED_STATUSES = [status.value for status in BUSY_STATUSES]
_CONFIRMED = (VisitStatus.CONFIRMED.value, VisitStatus.IN_PROGRESS.value)


def _digest(token: str) -> str:
    """256 random bits need no slow hash: SHA-256 is enough, and looks up by index."""
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(session: Session, actor: Actor) -> str:
    """A new feed token for the nurse (returned once); any earlier one stops working.
    A nurse without a profile gets one in their account's zone, with no working hours."""
    require_role(actor, Role.NURSE)
    user = session.get_one(User, actor.user_id)
    profile = session.get(NurseProfile, user.id) or NurseProfile(
        user_id=user.id, timezone=user.timezone, weekly_hours=[]
    )
    rotated = profile.calendar_token_hash is not None
    token = secrets.token_urlsafe(32)
    profile.calendar_token_hash = _digest(token)
    session.add(profile)
    session.flush()
    audit.record_change(
        session,
        actor,
        "nurse.calendar_token",
        user,
        subject=audit.Subject(user_id=user.id),
        after={"feed": "rotated" if rotated else "issued"},
    )
    return token


def revoke_token(session: Session, actor: Actor) -> None:
    require_role(actor, Role.NURSE)
    profile = session.get(NurseProfile, actor.user_id)
    if profile is None or profile.calendar_token_hash is None:
        return
    profile.calendar_token_hash = None
    session.flush()
    audit.record(
        session,
        actor,
        "nurse.calendar_token",
        entity_type="user",
        entity_id=actor.user_id,
        subject=audit.Subject(user_id=actor.user_id),
        after={"feed": "revoked"},
    )


def nurse_for_token(session: Session, token: str) -> User:
    """The active nurse whose feed this token opens; 404 for anything else."""
    nurse = session.scalars(
        select(User)
        .join(NurseProfile, NurseProfile.user_id == User.id)
        .where(
            NurseProfile.calendar_token_hash == _digest(token),
            User.role == Role.NURSE.value,
            User.is_active.is_(True),
        )
    ).first()
    if nurse is None:
        raise NotFound("no calendar feed for this token (it may have been rotated or revoked)")
    return nurse


def feed(session: Session, nurse: User, now: dt.datetime | None = None) -> bytes:
    """The nurse's booked visits of the past week and the next 60 days, as iCalendar."""
    now = now or utcnow()
    rows = session.execute(
        select(Visit, Participant.subject_code)
        .join(Participant, Participant.id == Visit.participant_id)
        .where(
            Visit.nurse_id == nurse.id,
            Visit.status.in_(_FEED_STATUSES),
            Visit.start_at >= now - FEED_PAST,
            Visit.start_at < now + FEED_AHEAD,
        )
        .order_by(Visit.start_at)
    ).all()
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", "Study visits")
    calendar.add("refresh-interval", dt.timedelta(hours=1), parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", "PT1H")
    for visit, subject_code in rows:
        event = icalendar.Event()
        event.add("uid", str(visit.id))
        event.add("dtstamp", now)
        event.add("dtstart", visit.start_at)
        event.add("dtend", visit.end_at)
        kind = "Home visit" if visit.location == "home" else "Site visit"
        event.add("summary", f"{kind} {subject_code} {visit.code}")
        event.add("status", "CONFIRMED" if visit.status in _CONFIRMED else "TENTATIVE")
        calendar.add_component(event)
    return cast(bytes, calendar.to_ical())  # icalendar is untyped
