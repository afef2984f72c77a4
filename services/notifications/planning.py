"""Which SMS to send when, and whether it still matters when its time comes.

The rules plan rows into the outbox (`SmsMessage`) ahead of time, each under a dedupe
key naming its occasion (`visit:<id>:<start epoch>:24h`): planning twice (a retried
job, two scheduler instances, a booking repeated) never plans, so never sends, twice.
A row holds a template and its parameters, never text: times are local to the
recipient, and nothing names a visit, procedure or questionnaire (no health data).
It also holds what must still be true at sending (`relevance`), which the dispatcher
asks `sending.still_relevant` just before it sends.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeGuard, cast
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services import passwords
from services.actor import Actor, Role
from services.audit import chain as audit
from services.db import utcnow
from services.models import (
    ActivationCode,
    AuditEvent,
    ConsentState,
    EproInstance,
    InstanceStatus,
    NurseProfile,
    Participant,
    ParticipantStatus,
    SmsMessage,
    User,
    Visit,
    VisitStatus,
)
from services.notifications import outbox
from services.notifications.settings import DEFAULT_RULES, settings_of

MORNING_AT = dt.time(8, 0)
NURSE_LIST_AT = dt.time(18, 0)
EPRO_HORIZON = dt.timedelta(hours=24)
EPRO_CLOSING_LEAD = dt.timedelta(hours=2)
# Where consent/ records that a new consent version must be signed: a re-consent
# episode starts there, so a later episode gets its own reminders.
RECONSENT_ACTION = "consent.requires_reconsent"

BOOKED = (VisitStatus.SCHEDULED.value, VisitStatus.CONFIRMED.value)
ANSWERED = (InstanceStatus.COMPLETED.value, InstanceStatus.DECLINED.value)

Rules = Callable[[uuid.UUID | None], dict[str, Any]]


def study_rules(session: Session, study_id: uuid.UUID | None) -> dict[str, Any]:
    """The study's rules over the defaults, so a study overrides only what it sets."""
    if study_id is None:
        return dict(DEFAULT_RULES)
    return settings_of(session, study_id).rules


def _rules_lookup(session: Session) -> Rules:
    """Each study's rules read once per planning run, however many rows it plans."""
    cache: dict[uuid.UUID | None, dict[str, Any]] = {}

    def rules(study_id: uuid.UUID | None) -> dict[str, Any]:
        if study_id not in cache:
            cache[study_id] = study_rules(session, study_id)
        return cache[study_id]

    return rules


def _clock(at: dt.datetime, zone: ZoneInfo) -> str:
    return at.astimezone(zone).strftime("%H:%M")


def at_local(day: dt.date, time: dt.time, zone: ZoneInfo) -> dt.datetime:
    """A wall-clock time on a local day as a UTC instant (DST-correct)."""
    return dt.datetime.combine(day, time, tzinfo=zone).astimezone(dt.UTC)


def _contactable(participant: Participant | None) -> TypeGuard[Participant]:
    return participant is not None and participant_problem(participant) is None


def participant_problem(participant: Participant) -> str | None:
    """Why the study must not contact this participant (by SMS or e-mail), if so."""
    if ParticipantStatus.WITHDRAWN.value in (participant.status, participant.consent_state):
        return "participant withdrawn"
    if not participant.contact_allowed:
        return "participant does not wish to be contacted"
    return None


# --- visits ------------------------------------------------------------------------------


def plan_visit_reminders(session: Session, visit: Visit) -> None:
    """After a booking, a rebooking, a cancellation or a completion, in its transaction:
    the pending reminders of another time (or of a visit no longer to come) are
    cancelled, those of the booked time planned."""
    rows = _visit_rows(session, visit, utcnow())
    reason = _VISIT_OVER.get(visit.status, "rescheduled")
    outbox.cancel_pending(
        session,
        reason,
        SmsMessage.dedupe_key.startswith(f"visit:{visit.id}:"),
        SmsMessage.dedupe_key.not_in([row["dedupe_key"] for row in rows]),
    )
    outbox.insert_new(session, rows)


# Why a visit's pending reminders are cancelled when it is no longer to come.
_VISIT_OVER = {
    VisitStatus.CANCELLED.value: "visit cancelled",
    VisitStatus.COMPLETED.value: "visit completed",
}


def _visit_rows(session: Session, visit: Visit, now: dt.datetime) -> list[dict[str, Any]]:
    """24 hours before, and 08:00 local on the day if that is before the visit; only
    instants still ahead (a visit booked for this afternoon gets no "tomorrow")."""
    participant = session.get_one(Participant, visit.participant_id)
    if visit.status not in BOOKED or visit.start_at is None or not _contactable(participant):
        return []
    rules = study_rules(session, visit.study_id)
    zone = ZoneInfo(participant.user.timezone)
    start = visit.start_at
    day = start.astimezone(zone).date()
    reminders = {
        "24h": ("visit_24h", start - dt.timedelta(hours=24), {"date": day.isoformat()}),
        "morning": ("visit_morning", at_local(day, MORNING_AT, zone), {}),
    }
    relevance = {"visit_id": str(visit.id), "start_at": start.isoformat()}
    return [
        outbox.row(
            key=f"visit:{visit.id}:{int(start.timestamp())}:{suffix}",
            user_id=participant.user_id,
            participant_id=participant.id,
            study_id=visit.study_id,
            template=template,
            params={"time": _clock(start, zone), **extra},
            relevance=relevance,
            due_at=due,
        )
        for suffix, (template, due, extra) in reminders.items()
        if rules[template] and now < due < start
    ]


# --- activation codes --------------------------------------------------------------------


def plan_activation_sms(session: Session, user: User, code: str) -> None:
    """The code a patient activates their app with, due now. Keyed by the code's row,
    so a reissued code is sent again while planning one code twice is not."""
    if user.role != Role.PATIENT.value or not user.phone:
        return
    participant = session.scalars(select(Participant).where(Participant.user_id == user.id)).first()
    if not _contactable(participant):
        return
    code_id = session.scalars(
        select(ActivationCode.id).where(ActivationCode.code_hash == passwords.hash_code(code))
    ).one()
    row = outbox.row(
        key=f"activation:{user.id}:{code_id}",
        user_id=user.id,
        participant_id=participant.id,
        study_id=participant.study_id,
        template="activation_code",
        params={"code": code},
        relevance={"participant_id": str(participant.id), "activation_code_id": str(code_id)},
        due_at=utcnow(),
    )
    outbox.insert_new(session, [row])


def plan_reset_sms(session: Session, user: User, code_id: uuid.UUID, code: str) -> None:
    """A password reset code, due now, to the phone on file: staff accounts too. A
    patient's carries their participation, so withdrawal and "no contact" hold it."""
    participant = session.scalars(select(Participant).where(Participant.user_id == user.id)).first()
    row = outbox.row(
        key=f"password-reset:{user.id}:{code_id}",
        user_id=user.id,
        participant_id=participant.id if participant else None,
        study_id=participant.study_id if participant else None,
        template="password_reset",
        params={"code": code},
        relevance={"password_reset_code_id": str(code_id)},
        due_at=utcnow(),
    )
    outbox.insert_new(session, [row])


# --- the plan job ------------------------------------------------------------------------


def plan_due(session: Session, actor: Actor, now: dt.datetime) -> int:
    """The `plan` job: the reminders whose occasion came into sight. Returns how many
    rows are new; a second run at the same time plans none."""
    rules = _rules_lookup(session)
    planned = {
        "epro": outbox.plan_rows(session, _epro_rows(session, now, rules)),
        "reconsent": outbox.plan_rows(session, _reconsent_rows(session, now, rules)),
        "nurse_next_day": outbox.plan_rows(
            session, _nurse_rows(session, now, rules), compare_params=True
        ),
    }
    total = sum(planned.values())
    if total:
        audit.record(
            session,
            actor,
            "sms.plan",
            entity_type="sms_outbox",
            entity_id=None,
            subject=audit.Subject(),
            after=planned,
        )
    return total


def _epro_rows(session: Session, now: dt.datetime, rules: Rules) -> list[dict[str, Any]]:
    """When a window opens within the next 24 hours (or is open), and 2 hours before
    it closes if the window is longer than that."""
    found = session.execute(
        select(EproInstance, Participant.user_id, User.timezone)
        .join(Participant, Participant.id == EproInstance.participant_id)
        .join(User, User.id == Participant.user_id)
        .where(
            EproInstance.status == InstanceStatus.SCHEDULED.value,
            EproInstance.closes_at > now,
            EproInstance.opens_at < now + EPRO_HORIZON,
            Participant.status == ParticipantStatus.ENROLLED.value,
            Participant.contact_allowed.is_(True),
        )
    )
    rows: list[dict[str, Any]] = []
    for instance, user_id, timezone in found:
        study = rules(instance.study_id)
        closing = instance.closes_at - EPRO_CLOSING_LEAD
        reminders = {
            "open": ("epro_open", instance.opens_at, {}, study["epro_open"]),
            "closing": (
                "epro_closing",
                closing,
                {"time": _clock(instance.closes_at, ZoneInfo(timezone))},
                study["epro_closing"] and closing > instance.opens_at,
            ),
        }
        rows.extend(
            outbox.row(
                key=f"epro:{instance.id}:{suffix}",
                user_id=user_id,
                participant_id=instance.participant_id,
                study_id=instance.study_id,
                template=template,
                params=params,
                relevance={"instance_id": str(instance.id)},
                due_at=due,
            )
            for suffix, (template, due, params, wanted) in reminders.items()
            if wanted
        )
    return rows


def _reconsent_rows(session: Session, now: dt.datetime, rules: Rules) -> list[dict[str, Any]]:
    """The next reminder of each pending re-consent once it is due: the first at once,
    each next one `reconsent_every_days` local days after the previous, at most
    `reconsent_max` per episode."""
    participants = session.execute(
        select(Participant, User.timezone)
        .join(User, User.id == Participant.user_id)
        .where(
            Participant.consent_state == ConsentState.REQUIRES_RECONSENT.value,
            Participant.status != ParticipantStatus.WITHDRAWN.value,
            Participant.contact_allowed.is_(True),
        )
    )
    rows = []
    for participant, timezone in participants:
        study = rules(participant.study_id)
        if not study["reconsent"]:
            continue
        earlier = _reconsent_reminders(session, participant.id)
        since = _reconsent_since(session, participant.id)
        episode = [due for due in earlier if since is None or due >= since]
        if len(episode) >= study["reconsent_max"]:
            continue
        due = now
        if episode:
            local = episode[-1].astimezone(ZoneInfo(timezone))
            due = (local + dt.timedelta(days=study["reconsent_every_days"])).astimezone(dt.UTC)
        if due <= now:
            rows.append(
                outbox.row(
                    key=f"reconsent:{participant.id}:{len(earlier) + 1}",
                    user_id=participant.user_id,
                    participant_id=participant.id,
                    study_id=participant.study_id,
                    template="reconsent_pending",
                    params={},
                    relevance={"participant_id": str(participant.id)},
                    due_at=due,
                )
            )
    return rows


def _reconsent_reminders(session: Session, participant_id: uuid.UUID) -> list[dt.datetime]:
    return list(
        session.scalars(
            select(SmsMessage.due_at)
            .where(
                SmsMessage.participant_id == participant_id,
                SmsMessage.template == "reconsent_pending",
            )
            .order_by(SmsMessage.due_at)
        )
    )


def _reconsent_since(session: Session, participant_id: uuid.UUID) -> dt.datetime | None:
    return session.scalar(
        select(func.max(AuditEvent.occurred_at)).where(
            AuditEvent.participant_id == participant_id, AuditEvent.action == RECONSENT_ACTION
        )
    )


def _nurse_rows(session: Session, now: dt.datetime, rules: Rules) -> list[dict[str, Any]]:
    """At 18:00 nurse-local, the list of tomorrow's visits: how many, and the first time."""
    zone_name = func.coalesce(NurseProfile.timezone, User.timezone)
    found = session.execute(
        select(Visit.nurse_id, Visit.study_id, Visit.start_at, zone_name)
        .join(User, User.id == Visit.nurse_id)
        .outerjoin(NurseProfile, NurseProfile.user_id == Visit.nurse_id)
        .where(
            Visit.status.in_(BOOKED),
            Visit.start_at >= now,
            # Tomorrow ends within 48 hours in every zone.
            Visit.start_at < now + dt.timedelta(hours=48),
        )
        .order_by(Visit.start_at)
    )
    days: dict[tuple[uuid.UUID, str], list[tuple[dt.datetime, uuid.UUID]]] = defaultdict(list)
    for nurse_id, study_id, start_at, timezone in found:
        zone = ZoneInfo(timezone)
        tomorrow = now.astimezone(zone).date() + dt.timedelta(days=1)
        # Both columns are nullable, but the query filters on them: neither is NULL here.
        start_at, nurse_id = cast(dt.datetime, start_at), cast(uuid.UUID, nurse_id)
        if start_at.astimezone(zone).date() == tomorrow and rules(study_id)["nurse_next_day"]:
            days[nurse_id, timezone].append((start_at, study_id))
    rows = []
    for (nurse_id, timezone), visits in days.items():
        zone = ZoneInfo(timezone)
        first_at, study_id = visits[0]
        day = first_at.astimezone(zone).date()
        rows.append(
            outbox.row(
                key=f"nurse:{nurse_id}:{day.isoformat()}",
                user_id=nurse_id,
                study_id=study_id,
                template="nurse_next_day",
                params={"count": len(visits), "first_time": _clock(first_at, zone)},
                relevance={"nurse_id": str(nurse_id), "date": day.isoformat(), "zone": timezone},
                due_at=at_local(day - dt.timedelta(days=1), NURSE_LIST_AT, zone),
            )
        )
    return rows


# --- just before sending -----------------------------------------------------------------
