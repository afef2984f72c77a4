"""The SMS dispatcher: claims due outbox rows, checks each is still wanted, sends it
outside any transaction and records what came of it.

Several dispatchers may run at once (scheduler processes on several machines): a row
is claimed with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL; a conditional
`UPDATE ... WHERE status = 'pending'` on SQLite, whose writers are serialised), so
each row has one sender. A sender that dies mid-send leaves its row in `sending`;
once the lease has expired, the next dispatcher asks the gateway whether that exact
text went to that number since the claim, and resends only if it did not. The text
is therefore rendered and stored before the send: it is what reconciliation matches.
A gateway call starts only while the lease outlasts the call, so no send is still
under way when another dispatcher reconciles its row. Nothing here holds a
transaction open across a network call.

The module is longer than most on purpose: it is the one object holding the lease
protocol (claim, prepare, send, reconcile), whose safety is checked by reading those
steps together. What an attempt leaves on its row is scheduling/sms_outcomes.py; the
job that runs the loop is scheduling/jobs.py.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session, sessionmaker

from scheduling import sms_outcomes as outcomes
from scheduling.sms_outcomes import PENDING, SENDING
from services.db import utcnow
from services.models import (
    NotificationPreference,
    SmsMessage,
    User,
)
from services.notifications import content as sms_content
from services.notifications import sending
from services.notifications.gateway import (
    GatewayConfigError,
    PermanentSmsError,
    SmsError,
    SmsGateway,
    TransientSmsError,
)

log = logging.getLogger("dct.sms")

# Twilio refused our account or request: every message waits this long, unsent and
# uncounted, for an operator to fix the configuration.
CONFIG_RETRY = dt.timedelta(minutes=10)
CONFIG_WAIT = "waiting: Twilio refused the SMS configuration"
# Rows claimed per sending thread and round: enough to keep every thread busy.
ROWS_PER_THREAD = 10
# Twilio's clock and ours may differ a little: reconciliation looks back this much more.
CLOCK_SKEW = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class Outgoing:
    """One claimed message, checked and rendered, ready for the gateway. `lost_since`
    is set when an earlier attempt got no answer (a timeout): Twilio may have the
    message anyway, so it is asked before sending again."""

    id: uuid.UUID
    to: str
    body: str
    attempts: int
    lost_since: dt.datetime | None = None


@dataclass(frozen=True)
class Lease:
    """This round's hold on its rows: who holds them, and until when."""

    worker: str
    until: dt.datetime


class NotSent(Exception):
    """A row's round ends without a send to record; its state is already settled."""


def worker_name() -> str:
    """Who holds a lease, for the operator reading `claimed_by`."""
    return f"{socket.gethostname()}:{os.getpid()}"[-64:]


class Dispatcher:
    """The claim, send and reconcile loop of one worker: the sessions it opens, the
    gateway it sends through, the settings that bound it (lease, attempts, daily cap)
    and the name it holds leases under. Each step opens short sessions of its own, so
    no transaction is open across a gateway call."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        gateway: SmsGateway,
        settings: Mapping[str, Any],
        *,
        worker: str,
    ) -> None:
        self.sessions, self.gateway, self.settings = sessions, gateway, settings
        self.worker = worker

    def dispatch(
        self,
        *,
        now: dt.datetime | None = None,
        batch: int = 50,
        threads: int = 1,
    ) -> int:
        """One round: reconcile expired leases, claim up to `batch` due rows, send them.
        Returns how many were sent.

        Twilio answers in a few hundred milliseconds, so one sender tops out at a few
        messages a second: `threads` sends that many at once, each row in sessions of its
        own (so `sessions` must be bound to an engine, not to one shared connection)."""
        now = now or utcnow()
        self.reconcile(now=now, batch=batch)
        claimed, lease = self.claim(now=now, batch=batch)
        refused = threading.Event()

        def handle(message_id: uuid.UUID) -> int:
            try:
                return self.handle_one(message_id, lease, refused, now=now)
            except Exception:
                log.exception("SMS %s could not be handled; left for reconciliation", message_id)
                return 0

        if threads <= 1:
            return sum(map(handle, claimed))
        with ThreadPoolExecutor(threads, thread_name_prefix="sms-dispatch") as pool:
            return sum(pool.map(handle, claimed))

    def handle_one(
        self,
        message_id: uuid.UUID,
        lease: Lease,
        refused: threading.Event,
        *,
        now: dt.datetime,
    ) -> int:
        """Prepare and send one claimed row; returns 1 when sent. Once Twilio refused our
        configuration in this round, the rest of the round waits for the fix unsent."""
        if refused.is_set():
            self.release(
                [message_id],
                until=now + CONFIG_RETRY,
                reason=CONFIG_WAIT,
            )
            return 0
        try:
            outgoing = self.prepare(message_id, now=now)
        except Exception:
            # A template that does not render, a relevance rule that breaks: counted as an
            # attempt, so the row fails in the end instead of coming back forever.
            log.exception("SMS %s could not be prepared", message_id)
            self.retry_or_fail(message_id, "could not be prepared", now=now)
            return 0
        if outgoing is None:
            return 0
        try:
            return self.deliver(outgoing, lease, now=now)
        except GatewayConfigError as error:
            if not refused.is_set():
                refused.set()
                log.error(
                    "Twilio refused the SMS configuration (%s): messages wait %s for a fix",
                    error.message,
                    CONFIG_RETRY,
                )
            self.release(
                [message_id],
                until=now + CONFIG_RETRY,
                reason=f"{CONFIG_WAIT} ({error.message})",
            )
            return 0

    def claim(self, *, now: dt.datetime, batch: int) -> tuple[list[uuid.UUID], Lease]:
        """Take rows due at `now` for this worker and commit, so the lease holds before any
        send. The lease runs from the clock at the claim, not from `now`: a round may
        start late, or spend long reconciling, and a lease already partly gone would cut
        sends short or let another dispatcher reconcile a row still being sent.

        PostgreSQL skips rows another dispatcher has locked; SQLite ignores the locking
        clause, and the `status = 'pending'` condition makes a row taken in between drop out.
        The body is cleared: a `sending` row with a body has passed its checks, which the
        daily cap counts.
        """
        with self.sessions() as session:
            due = session.scalars(
                select(SmsMessage.id)
                .where(SmsMessage.status == PENDING, SmsMessage.next_attempt_at <= now)
                .order_by(SmsMessage.next_attempt_at)
                .limit(batch)
                .with_for_update(skip_locked=True)
            ).all()
            lease = Lease(
                self.worker, utcnow() + dt.timedelta(seconds=self.settings["DCT_SMS_LEASE_SECONDS"])
            )
            claimed = [
                message_id
                for message_id in due
                # execute() is typed to return a plain Result; an UPDATE's is a CursorResult.
                if cast(
                    "CursorResult[Any]",
                    session.execute(
                        update(SmsMessage)
                        .where(SmsMessage.id == message_id, SmsMessage.status == PENDING)
                        .values(
                            status=SENDING,
                            lease_until=lease.until,
                            claimed_by=self.worker,
                            attempts=SmsMessage.attempts + 1,
                            body=None,
                        )
                    ),
                ).rowcount
                == 1
            ]
            session.commit()
        return claimed, lease

    def release(
        self,
        message_ids: Sequence[uuid.UUID],
        *,
        until: dt.datetime | None = None,
        reason: str | None = None,
    ) -> None:
        """Hand claimed rows back unsent, due again `until` (or as they were): their
        attempt never reached the recipient, so it is not counted."""
        values: dict[str, Any] = {
            "status": PENDING,
            "lease_until": None,
            "claimed_by": None,
            "attempts": SmsMessage.attempts - 1,
        }
        if until is not None:
            values["next_attempt_at"] = until
        if reason is not None:
            values["status_reason"] = reason
        with self.sessions() as session:
            session.execute(
                update(SmsMessage)
                .where(
                    SmsMessage.id.in_(message_ids),
                    SmsMessage.status == SENDING,
                    SmsMessage.claimed_by == self.worker,
                )
                .values(**values)
            )
            session.commit()

    def prepare(self, message_id: uuid.UUID, *, now: dt.datetime) -> Outgoing | None:
        """The last checks before a send, in a short transaction of their own; the text
        is rendered and stored here so that reconciliation can recognise it.

        The recipient's row is locked (PostgreSQL; SQLite's writers take turns anyway) so
        that two dispatchers decide one recipient's daily cap one after the other."""
        with self.sessions() as session:
            message = session.get(SmsMessage, message_id)
            if message is None or message.status != SENDING or message.claimed_by != self.worker:
                return None  # reconciled away from a dispatcher slower than its lease
            user = session.get_one(User, message.user_id, with_for_update=True)
            preference = session.get(NotificationPreference, user.id)
            holdback = sending.refusal(session, message, user, preference) or sending.deferral(
                session, self.settings, message, user, preference, now
            )
            if holdback is not None:
                sending.hold_back(message, holdback)
                session.commit()
                return None
            message.body = sending.render(session, message, user, preference)
            message.segments = sms_content.segments(message.body)
            # Twilio answered every earlier error it gave with an error code; without one,
            # the answer was lost and the message may have been accepted.
            lost = message.error_message is not None and message.error_code is None
            outgoing = Outgoing(
                message.id,
                user.phone or "",
                message.body,
                message.attempts,
                message.due_at - CLOCK_SKEW if lost else None,
            )
            session.commit()
        return outgoing

    def deliver(self, outgoing: Outgoing, lease: Lease, *, now: dt.datetime) -> int:
        """Send (unless an earlier, unanswered attempt went through after all), then
        record the outcome; returns 1 when sent. A GatewayConfigError is the caller's:
        it concerns every row, not this one."""
        try:
            sid = self.found_after_loss(outgoing, lease, now=now) or self.send(
                outgoing, lease, now=now
            )
        except NotSent:
            return 0
        self.record_sent(outgoing.id, sid, now=now)
        return 1

    def require_lease_left(self, row: uuid.UUID, lease: Lease) -> None:
        """A gateway call starts only while the lease outlasts it; otherwise the row goes
        back to pending unsent, before another dispatcher may reconcile it mid-call."""
        if lease.until - utcnow() > dt.timedelta(seconds=self.gateway.timeout_seconds):
            return
        self.release([row])
        raise NotSent

    def found_after_loss(
        self,
        outgoing: Outgoing,
        lease: Lease,
        *,
        now: dt.datetime,
    ) -> str | None:
        """The SID of the message an earlier, unanswered attempt sent, if it did. When the
        gateway cannot say, the row waits and tries again later: it is not failed, and not
        sent blind."""
        if outgoing.lost_since is None:
            return None
        self.require_lease_left(outgoing.id, lease)
        try:
            return self.sent_unheard(outgoing.id, outgoing.to, outgoing.body, outgoing.lost_since)
        except (TransientSmsError, PermanentSmsError) as error:
            log.warning(
                "SMS reconciliation could not ask the gateway (%s); retrying", error.message
            )
            self.release(
                [outgoing.id],
                until=now + outcomes.backoff(outgoing.attempts),
                reason="retrying: the gateway could not say whether it was sent",
            )
            raise NotSent from error

    def send(self, outgoing: Outgoing, lease: Lease, *, now: dt.datetime) -> str:
        """The send itself; its SID. An error the gateway did not classify leaves the row
        in `sending`: whether it went is unknown, so the lease runs out and reconciliation
        finds out."""
        self.require_lease_left(outgoing.id, lease)
        try:
            return self.gateway.send(outgoing.to, outgoing.body, outgoing.id).sid
        except TransientSmsError as error:
            self.retry_or_fail(
                outgoing.id,
                "gateway unavailable",
                error=error,
                now=now,
            )
        except PermanentSmsError as error:
            self.fail(outgoing.id, error, now=now)
        except GatewayConfigError:
            raise
        except Exception:
            log.exception("SMS gateway failed unexpectedly; left for reconciliation")
        raise NotSent

    def sent_unheard(
        self,
        message_id: uuid.UUID,
        to: str,
        body: str,
        since: dt.datetime,
    ) -> str | None:
        """The SID of this message if Twilio has it although no answer reached us. Texts
        can repeat ("a questionnaire is waiting"), so of the matching messages, newest
        first, the first that no other row recorded is this row's."""
        found = [result.sid for result in self.gateway.find_sent(to, body, since=since)]
        if not found:
            return None
        with self.sessions() as session:
            taken = set(
                session.scalars(
                    select(SmsMessage.twilio_sid).where(
                        SmsMessage.twilio_sid.in_(found), SmsMessage.id != message_id
                    )
                )
            )
        return next((sid for sid in found if sid not in taken), None)

    def record_sent(self, message_id: uuid.UUID, sid: str, *, now: dt.datetime) -> None:
        with self.sessions() as session:
            message = session.get_one(SmsMessage, message_id, with_for_update=True)
            outcomes.sent(session, message, sid, at=now, worker=self.worker)
            session.commit()

    def retry_or_fail(
        self,
        message_id: uuid.UUID,
        reason: str,
        *,
        error: SmsError | None = None,
        now: dt.datetime,
    ) -> None:
        """A throttled or unavailable gateway, or a row that could not be prepared: try
        again later, backing off, until the attempts run out."""
        with self.sessions() as session:
            message = outcomes.owned(session, message_id, self.worker)
            if message is None:
                return
            outcomes.retry_or_give_up(
                session,
                message,
                reason,
                error=error,
                due=now + outcomes.backoff(message.attempts),
                max_attempts=self.settings["DCT_SMS_MAX_ATTEMPTS"],
                worker=self.worker,
            )
            session.commit()

    def fail(self, message_id: uuid.UUID, error: PermanentSmsError, *, now: dt.datetime) -> None:
        with self.sessions() as session:
            message = outcomes.owned(session, message_id, self.worker)
            if message is None:
                return
            outcomes.refused(session, message, error, at=now, worker=self.worker)
            session.commit()

    def reconcile(self, *, now: dt.datetime, batch: int) -> int:
        """Rows whose dispatcher died mid-send: sent ones are recorded, the others go back
        to pending. Returns how many were settled."""
        with self.sessions() as session:
            stuck = session.execute(
                select(SmsMessage.id, SmsMessage.lease_until)
                .where(SmsMessage.status == SENDING, SmsMessage.lease_until < now)
                .order_by(SmsMessage.lease_until)
                .limit(batch)
            ).all()
        settled = 0
        for message_id, lease_until in stuck:
            try:
                # lease_until is nullable, but the query filters on it: never NULL here.
                settled += self.settle(message_id, cast(dt.datetime, lease_until), now=now)
            except Exception:
                log.exception("SMS %s could not be reconciled; trying next round", message_id)
        return settled

    def settle(self, message_id: uuid.UUID, lease_until: dt.datetime, *, now: dt.datetime) -> int:
        """Decide one expired row. The lease is never extended, so an unchanged
        `lease_until` proves no other dispatcher settled the row meanwhile. A row whose
        dispatchers keep dying on it fails once its attempts run out."""
        claimed_at = lease_until - dt.timedelta(seconds=self.settings["DCT_SMS_LEASE_SECONDS"])
        with self.sessions() as session:
            message = session.get(SmsMessage, message_id)
            if message is None or message.status != SENDING or message.lease_until != lease_until:
                return 0
            sid = message.twilio_sid
            user = session.get_one(User, message.user_id)
            to, body = user.phone, message.body
        if sid is None and to and body:
            try:
                sid = self.sent_unheard(message_id, to, body, claimed_at - CLOCK_SKEW)
            except SmsError as error:
                log.warning("SMS reconciliation could not ask the gateway (%s)", error.message)
                return 0
        with self.sessions() as session:
            message = session.get_one(SmsMessage, message_id, with_for_update=True)
            if message.status != SENDING or message.lease_until != lease_until:
                return 0
            message.lease_until, message.claimed_by = None, None
            if sid is not None:
                outcomes.sent(session, message, sid, at=claimed_at, worker="reconciliation")
            elif message.attempts >= self.settings["DCT_SMS_MAX_ATTEMPTS"]:
                outcomes.give_up(session, message, "dispatcher lost", "reconciliation")
            else:
                message.status, message.status_reason = PENDING, "resending: dispatcher lost"
                message.next_attempt_at = now
            session.commit()
        return 1

    def anything_due(self) -> bool:
        with self.sessions() as session:
            return (
                session.scalar(
                    select(SmsMessage.id)
                    .where(SmsMessage.status == PENDING, SmsMessage.next_attempt_at <= utcnow())
                    .limit(1)
                )
                is not None
            )
