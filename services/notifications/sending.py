"""Whether an outbox row may go now, and what it says when it does.

Asked by the dispatcher at the last moment before each send, in the same short
transaction that renders the text: a message that must never go (opted out, no
phone, withdrawn, no longer relevant) ends; one that may not go yet (quiet hours, the
daily cap) waits for the first allowed minute. Relevance is judged per template by
`still_relevant`, since what a reminder was about may have changed since it was
planned (a visit moved, a questionnaire answered).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from services.db import utcnow
from services.models import (
    ActivationCode,
    ConsentState,
    EproInstance,
    InstanceStatus,
    NotificationPreference,
    Participant,
    ParticipantStatus,
    PasswordResetCode,
    SmsMessage,
    SmsStatus,
    User,
    Visit,
)
from services.notifications import content as sms_content
from services.notifications import sending_hours
from services.notifications.planning import ANSWERED, BOOKED, at_local, participant_problem
from services.notifications.settings import DEFAULT_SENDER_NAME, settings_of
from services.people import credentials

PENDING = SmsStatus.PENDING.value
SENDING = SmsStatus.SENDING.value


@dataclass(frozen=True)
class Holdback:
    """Why a claimed message does not go now: it ends (skipped, cancelled) or waits."""

    status: str
    reason: str
    until: dt.datetime | None = None


def refusal(
    session: Session,
    message: SmsMessage,
    user: User,
    preference: NotificationPreference | None,
) -> Holdback | None:
    """Why this message must never go, if it must not."""
    if preference is not None and (preference.opted_out_at or not preference.sms_enabled):
        return Holdback(SmsStatus.SKIPPED.value, "opted out")
    if not user.phone:
        return Holdback(SmsStatus.SKIPPED.value, "no phone number")
    participant = (
        session.get(Participant, message.participant_id) if message.participant_id else None
    )
    if participant is not None and participant.status == ParticipantStatus.WITHDRAWN.value:
        return Holdback(SmsStatus.CANCELLED.value, "participant withdrawn")
    if participant is not None and not participant.contact_allowed:
        return Holdback(SmsStatus.CANCELLED.value, "contact not allowed")
    reason = still_relevant(session, message)
    return Holdback(SmsStatus.SKIPPED.value, reason) if reason else None


def deferral(
    session: Session,
    settings: Mapping[str, Any],
    message: SmsMessage,
    user: User,
    preference: NotificationPreference | None,
    now: dt.datetime,
) -> Holdback | None:
    """When this message may go instead, if not now: quiet hours in the recipient's
    zone, then the daily cap (the next local day's first allowed minute). The cap
    counts the day's sent messages and those being sent (checked, not yet recorded).
    A code the holder asked for just now waits for neither."""
    if message.template in sms_content.ON_REQUEST:
        return None
    send_from, send_until = sending_hours.quiet_window(preference)
    allowed = sending_hours.next_allowed(now, user.timezone, send_from, send_until)
    if allowed > now:
        return Holdback(PENDING, "deferred: quiet hours", allowed)
    day_start, day_end = sending_hours.day_bounds(now, user.timezone)
    sent_today = session.scalar(
        select(func.count())
        .select_from(SmsMessage)
        .where(
            SmsMessage.user_id == user.id,
            or_(
                and_(SmsMessage.sent_at >= day_start, SmsMessage.sent_at < day_end),
                and_(
                    SmsMessage.status == SENDING,
                    SmsMessage.body.is_not(None),
                    SmsMessage.id != message.id,
                ),
            ),
        )
    )
    if (sent_today or 0) >= settings["DCT_SMS_DAILY_CAP"]:
        tomorrow = sending_hours.next_allowed(day_end, user.timezone, send_from, send_until)
        return Holdback(PENDING, "deferred: daily cap", tomorrow)
    return None


def hold_back(message: SmsMessage, holdback: Holdback) -> None:
    """End the row, or put it back for later; a deferral is not an attempt."""
    message.status, message.status_reason = holdback.status, holdback.reason
    message.lease_until, message.claimed_by = None, None
    if holdback.until is not None:
        message.next_attempt_at = holdback.until
        message.attempts -= 1


def render(
    session: Session,
    message: SmsMessage,
    user: User,
    preference: NotificationPreference | None,
) -> str:
    locale = (preference.locale if preference else None) or user.locale
    sender = (
        settings_of(session, message.study_id).sender_name
        if message.study_id
        else DEFAULT_SENDER_NAME
    )
    return sms_content.render(message.template, locale, json.loads(message.params), sender)


def still_relevant(session: Session, message: SmsMessage) -> str | None:
    """None when the message should still go; else why not, for its status_reason."""
    if message.participant_id:
        problem = participant_problem(session.get_one(Participant, message.participant_id))
        if problem:
            return problem
    check = _CHECKS.get(message.template)
    return check(session, message.relevance, utcnow()) if check else None


def _visit_problem(session: Session, relevance: dict[str, Any], now: dt.datetime) -> str | None:
    visit = session.get(Visit, uuid.UUID(relevance["visit_id"]))
    start = dt.datetime.fromisoformat(relevance["start_at"])
    if visit is None or visit.status not in BOOKED or visit.start_at != start:
        return "visit no longer scheduled at that time"
    if now >= start:
        return "visit time has passed"
    return None


def _day_before_problem(
    session: Session, relevance: dict[str, Any], now: dt.datetime
) -> str | None:
    """The 24-hour reminder says "tomorrow": deferred (quiet hours, the daily cap) into
    the visit's own day, it would be wrong, and the morning reminder covers that day."""
    problem = _visit_problem(session, relevance, now)
    if problem:
        return problem
    visit = session.get_one(Visit, uuid.UUID(relevance["visit_id"]))
    zone = ZoneInfo(session.get_one(Participant, visit.participant_id).user.timezone)
    # _visit_problem found the visit still booked at relevance's start_at: it has one.
    start_at = cast(dt.datetime, visit.start_at)
    if now.astimezone(zone).date() >= start_at.astimezone(zone).date():
        return "the day before the visit has passed"
    return None


def _instance_problem(session: Session, relevance: dict[str, Any], now: dt.datetime) -> str | None:
    instance = session.get(EproInstance, uuid.UUID(relevance["instance_id"]))
    if instance is None:
        return "questionnaire no longer planned"
    if instance.status in ANSWERED:
        return "questionnaire answered"
    if instance.status != InstanceStatus.SCHEDULED:
        return f"questionnaire {instance.status}"
    if now >= instance.closes_at:
        return "questionnaire window closed"
    return None


def _reconsent_problem(
    session: Session, relevance: dict[str, Any], _now: dt.datetime
) -> str | None:
    participant = session.get_one(Participant, uuid.UUID(relevance["participant_id"]))
    if participant.consent_state != ConsentState.REQUIRES_RECONSENT:
        return "re-consent no longer pending"
    return None


def _activation_problem(
    session: Session, relevance: dict[str, Any], now: dt.datetime
) -> str | None:
    code = session.get_one(ActivationCode, uuid.UUID(relevance["activation_code_id"]))
    return credentials.code_problem(code, "activation", now)


def _reset_problem(session: Session, relevance: dict[str, Any], now: dt.datetime) -> str | None:
    code = session.get_one(PasswordResetCode, uuid.UUID(relevance["password_reset_code_id"]))
    return credentials.code_problem(code, "reset", now)


def _nurse_list_problem(
    session: Session, relevance: dict[str, Any], _now: dt.datetime
) -> str | None:
    zone = ZoneInfo(relevance["zone"])
    day = dt.date.fromisoformat(relevance["date"])
    visits = session.scalar(
        select(func.count())
        .select_from(Visit)
        .where(
            Visit.nurse_id == uuid.UUID(relevance["nurse_id"]),
            Visit.status.in_(BOOKED),
            Visit.start_at >= at_local(day, dt.time(0), zone),
            Visit.start_at < at_local(day + dt.timedelta(days=1), dt.time(0), zone),
        )
    )
    return None if visits else "no visits that day any more"


_CHECKS: dict[str, Callable[[Session, dict[str, Any], dt.datetime], str | None]] = {
    "visit_24h": _day_before_problem,
    "visit_morning": _visit_problem,
    "epro_open": _instance_problem,
    "epro_closing": _instance_problem,
    "reconsent_pending": _reconsent_problem,
    "activation_code": _activation_problem,
    "password_reset": _reset_problem,
    "nurse_next_day": _nurse_list_problem,
}
