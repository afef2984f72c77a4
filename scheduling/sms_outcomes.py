"""What one attempt leaves on its outbox row: sent, retried with back-off, failed for
good, or given up; and the participant's audit event saying so.

The dispatcher decides which outcome a round reached and holds the row's lock; these
functions only change the row inside that transaction, so every path through the
dispatcher (a send, a lost answer, a reconciled lease) records an outcome the same way.
Nothing here stores the text or the number in clear: Twilio's error texts quote the
number, so they are scrubbed before they are kept.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import re
import uuid

from sqlalchemy.orm import Session

from services.actor import Actor
from services.audit import chain as audit
from services.models import Participant, SmsMessage, SmsStatus
from services.notifications.gateway import PermanentSmsError, SmsError
from services.notifications.inbound import flag_phone

log = logging.getLogger("dct.sms")

PENDING, SENDING, SENT = SmsStatus.PENDING.value, SmsStatus.SENDING.value, SmsStatus.SENT.value
BACKOFF_BASE = dt.timedelta(seconds=30)
BACKOFF_CAP = dt.timedelta(hours=1)
JITTER = 0.1
PHONE_LIKE = re.compile(r"\+?\d[\d\s().-]{5,}\d")


def backoff(attempts: int) -> dt.timedelta:
    """30 s, 1 min, 2 min, ... up to an hour, spread by +-10 % so that retries after an
    outage do not all arrive at once."""
    delay: dt.timedelta = min(BACKOFF_BASE * 2 ** (attempts - 1), BACKOFF_CAP)
    return delay * random.uniform(1 - JITTER, 1 + JITTER)  # noqa: S311 - spreading load, not a secret


def scrub(text: str | None) -> str | None:
    return PHONE_LIKE.sub("[number]", text)[:300] if text else text


def request_id(worker: str) -> str:
    return f"sms-dispatch-{worker}"


def owned(session: Session, message_id: uuid.UUID, worker: str) -> SmsMessage | None:
    """The row, locked, if this worker still holds it (a slow sender may have lost it)."""
    message = session.get_one(SmsMessage, message_id, with_for_update=True)
    if message.status != SENDING or message.claimed_by != worker:
        log.warning("SMS lease lost before the outcome was recorded")
        return None
    return message


def audit_outcome(
    session: Session, message: SmsMessage, action: str, worker: str, **after: object
) -> None:
    """A participant's messages go into their audit chain (never the text or number);
    staff messages (the nurse's list) are not about a participant."""
    if message.participant_id is None:
        return
    participant = session.get_one(Participant, message.participant_id)
    audit.record_change(
        session,
        Actor.system(request_id=request_id(worker)),
        action,
        message,
        subject=audit.Subject(
            study_id=participant.study_id,
            site_id=participant.site_id,
            participant_id=participant.id,
        ),
        after={"template": message.template, "attempts": message.attempts, **after},
    )


def sent(session: Session, message: SmsMessage, sid: str, *, at: dt.datetime, worker: str) -> None:
    """The SMS went: recorded even when a status callback got here first, but the status
    only moves forward (a `delivered` stays)."""
    if message.status in (SENDING, PENDING):
        message.status, message.status_reason = SENT, None
    message.twilio_sid = message.twilio_sid or sid
    message.sent_at = message.sent_at or at
    message.lease_until, message.error_code, message.error_message = None, None, None
    audit_outcome(session, message, "sms.sent", worker, twilio_sid=message.twilio_sid)


def give_up(
    session: Session, message: SmsMessage, reason: str, worker: str, **after: object
) -> None:
    """No more attempts: the row says how many were made and why the last one failed."""
    message.status = SmsStatus.FAILED.value
    message.status_reason = f"gave up after {message.attempts} attempts: {reason}"
    audit_outcome(session, message, "sms.failed", worker, **after)


def retry_or_give_up(
    session: Session,
    message: SmsMessage,
    reason: str,
    *,
    error: SmsError | None,
    due: dt.datetime,
    max_attempts: int,
    worker: str,
) -> None:
    """Try again at `due` until the attempts run out. Twilio's error is kept on the row;
    a failure of our own (error None) leaves the row's earlier one."""
    if error is not None:
        message.error_code, message.error_message = error.code, scrub(error.message)
    message.lease_until, message.claimed_by = None, None
    if message.attempts >= max_attempts:
        give_up(session, message, reason, worker, error_code=error.code if error else None)
    else:
        message.status, message.status_reason = PENDING, f"retrying: {reason}"
        message.next_attempt_at = due


def refused(
    session: Session, message: SmsMessage, error: PermanentSmsError, *, at: dt.datetime, worker: str
) -> None:
    """The number cannot take SMS (invalid, unsubscribed at the carrier, a landline): no
    retry, and the coordinator sees the phone flagged."""
    message.status, message.status_reason = SmsStatus.FAILED.value, "rejected by the gateway"
    message.error_code, message.error_message = error.code, scrub(error.message)
    message.lease_until, message.claimed_by = None, None
    if error.code is not None:
        flag_phone(session, message.user_id, error.code, request_id=request_id(worker), at=at)
    audit_outcome(session, message, "sms.failed", worker, error_code=error.code, phone_flagged=True)
