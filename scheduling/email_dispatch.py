"""The `dispatch-email` job: send the e-mail outbox's due rows, one transaction each.

A row is locked while its message goes (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so
several schedulers share the outbox), and marked sent in the same transaction. A
crash between the server's acceptance and the commit sends that message again on
the next run: at least once, which for a reset code is harmless (the newest code
is the one that works). A message whose code was used, replaced or expired is
skipped, never sent late.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from services.actor import Actor
from services.audit import chain as audit
from services.db import utcnow
from services.models import EmailMessage, EmailStatus, Participant, PasswordResetCode, User
from services.notifications import email_content
from services.notifications import planning as sms_rules
from services.notifications.email_gateway import EmailGateway, EmailGatewayError
from services.people import credentials

log = logging.getLogger("dct.email")

BACKOFF = dt.timedelta(seconds=30)
ROWS_PER_RUN = 50


def _due(session: Session, now: dt.datetime) -> EmailMessage | None:
    return session.scalars(
        select(EmailMessage)
        .where(
            EmailMessage.status == EmailStatus.PENDING.value,
            EmailMessage.next_attempt_at <= now,
        )
        .order_by(EmailMessage.next_attempt_at)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()


def _problem(session: Session, message: EmailMessage, user: User, now: dt.datetime) -> str | None:
    """Why this message must not go (any more), if it must not."""
    if not user.is_active:
        return "account disabled"
    if not user.email:
        return "no e-mail address"
    participant = session.scalars(select(Participant).where(Participant.user_id == user.id)).first()
    if participant is not None and (problem := sms_rules.participant_problem(participant)):
        return problem
    if message.password_reset_code_id:
        code = session.get_one(PasswordResetCode, message.password_reset_code_id)
        return credentials.code_problem(code, "reset", now)
    return None


def _send_one(
    session: Session,
    actor: Actor,
    gateway: EmailGateway,
    message: EmailMessage,
    max_attempts: int,
    now: dt.datetime,
) -> bool:
    user = session.get_one(User, message.user_id)
    problem = _problem(session, message, user, now)
    if problem:
        message.status, message.status_reason = EmailStatus.SKIPPED.value, problem
        return False
    email = email_content.render(message.template, user.locale, json.loads(message.params))
    message.attempts += 1
    try:
        # _problem refused a user without an e-mail address.
        gateway.send(cast(str, user.email), email)
    except EmailGatewayError as exc:
        message.status_reason = str(exc)
        if message.attempts >= max_attempts:
            message.status = EmailStatus.FAILED.value
        else:
            message.next_attempt_at = now + BACKOFF * 2 ** (message.attempts - 1)
        log.warning("e-mail %s not sent (attempt %d): %s", message.id, message.attempts, exc)
        return False
    message.status, message.status_reason, message.sent_at = EmailStatus.SENT.value, None, now
    audit.record(
        session,
        actor,
        "email.sent",
        entity_type="email",
        entity_id=message.id,
        subject=audit.Subject(user_id=user.id),
        after={"template": message.template, "attempts": message.attempts},
    )
    return True


def dispatch(
    sessions: sessionmaker[Session],
    actor: Actor,
    gateway: EmailGateway,
    settings: Mapping[str, Any],
    *,
    now: dt.datetime | None = None,
) -> int:
    """Send what is due; returns how many went."""
    sent = 0
    for _ in range(ROWS_PER_RUN):
        with sessions() as session, session.begin():
            moment = now or utcnow()
            message = _due(session, moment)
            if message is None:
                break
            sent += _send_one(
                session, actor, gateway, message, settings["DCT_EMAIL_MAX_ATTEMPTS"], moment
            )
    return sent
