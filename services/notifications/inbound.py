"""What Twilio tells us after sending: delivery status callbacks, and the replies
people send (STOP, START, HELP).

The webhook views have checked Twilio's signature; these functions only apply what
it says, in the caller's transaction. Callbacks arrive late, twice and out of order,
so a row's status only ever moves forward. Whatever Twilio sends is kept once, by its
own identity (see `SmsEvent.dedupe_key`): a signed request captured and replayed
later (a STOP after the person's START) is acknowledged and changes nothing. STOP is
an opt-out from SMS, never a withdrawal from the study: participant status and
consent are not touched; the site learns of it from the participant's audit trail.
Planned reminders are kept: the dispatcher skips those that fall due while the person
is opted out, and the later ones go after a START.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.actor import Actor, Role
from services.audit import chain as audit
from services.db import utcnow
from services.errors import Invalid
from services.models import (
    NotificationPreference,
    Participant,
    SmsEvent,
    SmsMessage,
    SmsStatus,
    User,
)
from services.notifications import content as sms_content
from services.notifications.gateway import PHONE_PROBLEMS, error_text, outbox_status
from services.notifications.preferences import preferences_of
from services.notifications.settings import DEFAULT_SENDER_NAME, settings_of
from services.people import participants as people

log = logging.getLogger("dct.sms")

# Twilio's and the carriers' standard keywords; the whole body, any case.
OPT_OUT_WORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "END", "QUIT", "CANCEL", "OPTOUT", "REVOKE"}
)
OPT_IN_WORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_WORDS = frozenset({"HELP"})
# HELP's answer while the study has not named its contact.
DEFAULT_CONTACT = "your study team"
UNSUBSCRIBED = 21610

# How far along a row is. Twilio's word that a message went outranks a cancellation or
# a give-up recorded after a lost answer; `delivered` outranks every other ending.
_RANK = {
    SmsStatus.PENDING: 0,
    SmsStatus.CANCELLED: 0,
    SmsStatus.SKIPPED: 0,
    SmsStatus.SENDING: 1,
    SmsStatus.SENT: 2,
    SmsStatus.UNDELIVERED: 3,
    SmsStatus.FAILED: 3,
    SmsStatus.DELIVERED: 4,
}
_ENDED_BADLY = (SmsStatus.UNDELIVERED, SmsStatus.FAILED)


def moves_forward(current: str, new: str) -> bool:
    return _RANK[SmsStatus(new)] > _RANK[SmsStatus(current)]


# --- status callbacks -----------------------------------------------------------------


def record_status(
    session: Session,
    message_id: uuid.UUID | None,
    sid: str | None,
    status: str,
    error_code: int | None,
    *,
    request_id: str | None = None,
) -> SmsMessage | None:
    """Apply one status callback; returns the row it is about, or None for an unknown one.

    Every callback is logged as an `SmsEvent`, once per (MessageSid, MessageStatus):
    a replay changes nothing, not even the log. The row changes only when the status
    moves forward, so late arrivals change nothing either."""
    message = _message(session, message_id, sid)
    event = SmsEvent(
        message_id=message.id if message else None,
        kind="status",
        twilio_sid=sid,
        status=status[:16],
        error_code=error_code,
        dedupe_key=f"status:{sid}:{status[:16]}" if sid else None,
    )
    if not _first_time(session, event):
        log.info("status callback %s (%s) received before: ignored", sid, status[:16])
        return message
    new = outbox_status(status)
    if message is None or new is None:
        return message
    if sid and message.twilio_sid and sid != message.twilio_sid:
        # A second send of the row (after a lost answer): the row follows its first.
        log.warning("status callback for another send of SMS %s ignored", message.id)
        return message
    message.twilio_sid = message.twilio_sid or sid
    if moves_forward(message.status, new):
        _advance(session, message, new, error_code, request_id)
    return message


def _first_time(session: Session, event: SmsEvent) -> bool:
    """Keep the event unless one with its `dedupe_key` is kept already; False for a
    replay. The unique key decides: of two copies at once, the second waits for the
    first's commit (PostgreSQL) and then fails the key, in a savepoint, so its caller
    goes on to answer as for any replay."""
    if event.dedupe_key is None:  # a call from inside the app: nothing to replay
        session.add(event)
        return True
    seen = select(SmsEvent.id).where(SmsEvent.dedupe_key == event.dedupe_key)
    if session.scalar(seen) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(event)
    except IntegrityError:
        return False
    return True


def _message(session: Session, message_id: uuid.UUID | None, sid: str | None) -> SmsMessage | None:
    """The row by the id our callback URL carries, else by Twilio's SID; locked, so two
    callbacks for one row apply one after the other."""
    locked = select(SmsMessage).with_for_update().execution_options(populate_existing=True)
    found = None
    if message_id is not None:
        found = session.scalars(locked.where(SmsMessage.id == message_id)).one_or_none()
    if found is None and sid:
        found = session.scalars(locked.where(SmsMessage.twilio_sid == sid)).one_or_none()
    return found


def _advance(
    session: Session,
    message: SmsMessage,
    new: SmsStatus,
    error_code: int | None,
    request_id: str | None,
) -> None:
    before, now = message.status, utcnow()
    message.status = new.value
    message.sent_at = message.sent_at or now
    message.status_reason = error_text(error_code) if error_code is not None else None
    if new == SmsStatus.DELIVERED:
        message.delivered_at = now
    if error_code is not None:
        message.error_code, message.error_message = error_code, error_text(error_code)
    if message.participant_id is not None:
        audit.record_change(
            session,
            Actor.system(request_id),
            "sms.status",
            message,
            subject=_subject(session, message.user_id),
            before={"status": before},
            after={"status": new.value, "error_code": error_code},
        )
    if new in _ENDED_BADLY and error_code in PHONE_PROBLEMS:
        flag_phone(session, message.user_id, error_code, request_id=request_id)


def flag_phone(
    session: Session,
    user_id: uuid.UUID,
    code: int,
    *,
    request_id: str | None = None,
    at: dt.datetime | None = None,
) -> None:
    """Mark the recipient's phone for the coordinator (shown with the participant, and
    in their audit trail): the number needs checking with the person. The text is
    `error_text(code)` whoever flags it, so that START recognises a 21610."""
    preference = _preference(session, user_id)
    preference.phone_problem, preference.phone_problem_at = error_text(code), at or utcnow()
    audit.record(
        session,
        Actor.system(request_id),
        "sms.phone_problem",
        entity_type="notification_preference",
        entity_id=user_id,
        subject=_subject(session, user_id),
        after={"error_code": code},
    )


# --- inbound replies ------------------------------------------------------------------


def keyword(body: str) -> str | None:
    """The keyword a whole message is, in capitals; "stop please" is not one."""
    word = body.strip().upper()
    return word if word in OPT_OUT_WORDS | OPT_IN_WORDS | HELP_WORDS else None


def handle_inbound(
    session: Session,
    from_number: str,
    body: str,
    *,
    message_sid: str | None = None,
    request_id: str | None = None,
) -> str | None:
    """Apply a keyword from the accounts with this phone; returns the reply to send, or
    None (not a keyword, a number we do not know, or a `message_sid` handled before:
    nothing is answered). A replayed STOP therefore neither opts the number out again
    nor sends a second confirmation."""
    word = keyword(body)
    event = SmsEvent(
        kind="inbound",
        keyword=word,
        twilio_sid=message_sid,
        dedupe_key=f"inbound:{message_sid}" if message_sid else None,
    )
    if not _first_time(session, event):
        log.warning("inbound SMS %s received before: ignored (a replay)", message_sid)
        return None
    if word is None:
        return None
    accounts = _accounts(session, from_number)
    if not accounts:
        return None
    actor = Actor.system(request_id)
    if word in OPT_OUT_WORDS:
        for user in accounts:
            _opt_out(session, actor, user, word)
        return _reply(session, accounts[0], "opt_out_confirm")
    if word in OPT_IN_WORDS:
        for user in accounts:
            _opt_in(session, actor, user, word)
        return _reply(session, accounts[0], "opt_in_confirm")
    return _reply(session, accounts[0], "help")


def _accounts(session: Session, phone: str) -> list[User]:
    """Every account with this phone (by its blind index), patients first: their study
    names the reply."""
    try:
        index = people.phone_index(phone)
    except Invalid:
        return []
    users = session.scalars(select(User).where(User.phone_index == index).order_by(User.created_at))
    return sorted(users, key=lambda user: user.role != Role.PATIENT.value)


def _opt_out(session: Session, actor: Actor, user: User, word: str) -> None:
    """Out, without touching the outbox (see the module's docstring)."""
    preference = _preference(session, user.id)
    if preference.opted_out_at is not None:
        return
    preference.opted_out_at = utcnow()
    audit.record(
        session,
        actor,
        "sms.opt_out",
        entity_type="notification_preference",
        entity_id=user.id,
        subject=_subject(session, user.id),
        after={"opted_out": True},
        reason=f"replied {word} by SMS",
    )


def _opt_in(session: Session, actor: Actor, user: User, word: str) -> None:
    """Back in. A carrier-level unsubscription (21610) is lifted too, even when only
    Twilio knew of the STOP (it refused a send and the dispatcher flagged the phone):
    Twilio unblocks the number on the same START."""
    preference = session.get(NotificationPreference, user.id)
    if preference is None:
        return
    unblocked = preference.phone_problem == error_text(UNSUBSCRIBED)
    if preference.opted_out_at is None and not unblocked:
        return
    preference.opted_out_at = None
    if unblocked:
        preference.phone_problem, preference.phone_problem_at = None, None
    audit.record(
        session,
        actor,
        "sms.opt_in",
        entity_type="notification_preference",
        entity_id=user.id,
        subject=_subject(session, user.id),
        after={"opted_out": False, "phone_problem_cleared": unblocked},
        reason=f"replied {word} by SMS",
    )


def _reply(session: Session, user: User, template: str) -> str:
    """The reply in the account's language, signed with its study's sender name."""
    study_id = _study_of(session, user)
    settings = settings_of(session, study_id) if study_id else None
    sender = settings.sender_name if settings else DEFAULT_SENDER_NAME
    contact = (settings.help_contact if settings else "") or DEFAULT_CONTACT
    params = {"contact": contact} if template == "help" else {}
    return sms_content.render(template, preferences_of(session, user).locale, params, sender)


def _study_of(session: Session, user: User) -> uuid.UUID | None:
    """A patient's own study; a staff member's first."""
    participant = _participant(session, user.id)
    if participant is not None:
        return participant.study_id
    study_ids = user.study_ids + [site.study_id for site in user.sites]
    return study_ids[0] if study_ids else None


# --- shared ---------------------------------------------------------------------------


def _preference(session: Session, user_id: uuid.UUID) -> NotificationPreference:
    preference = session.get(NotificationPreference, user_id)
    if preference is None:
        preference = NotificationPreference(user_id=user_id)
        session.add(preference)
    return preference


def _participant(session: Session, user_id: uuid.UUID) -> Participant | None:
    return session.scalars(select(Participant).where(Participant.user_id == user_id)).first()


def _subject(session: Session, user_id: uuid.UUID) -> audit.Subject:
    """A participant's events go to their own chain, which their site's coordinators
    read; a staff member's to their account's."""
    participant = _participant(session, user_id)
    return (
        people.participant_subject(participant) if participant else audit.Subject(user_id=user_id)
    )
