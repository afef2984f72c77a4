"""Password reset: a single-use code delivered to the account holder alone.

No answer ever carries the code, to the holder or to staff, so a staff member who
triggers a reset cannot use it. Requests answer the same whether or not the account
exists. Confirming ends every session of the account and opens a new one.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from services import passwords
from services.access import get_visible, require_role, visible_participants, visible_users
from services.actor import Actor, Role
from services.audit import chain as audit
from services.db import affected_rows, utcnow
from services.errors import Conflict, Unauthenticated
from services.models import EmailMessage, Participant, PasswordResetCode, User
from services.notifications import planning as sms_rules
from services.people import accounts, credentials, identity
from services.people import participants as people
from services.validation import audit_reason

# A self-service request is answered without a word of whether it did anything; these
# cap how many codes (and so SMS) one account can be sent an hour.
MAX_CODES_PER_HOUR = 3
BAD_CODE = (
    "this reset code is unknown, used, replaced or expired; ask for a new one with "
    "POST /api/v1/auth/password-reset"
)


@dataclass(frozen=True)
class ResetSent:
    """What staff learn of a reset they triggered: where it went, never the code."""

    user_id: uuid.UUID
    channel: str
    expires_at: dt.datetime


def _subject(session: Session, user: User) -> audit.Subject:
    """A patient's account events go with their participation's trail."""
    participant = session.scalars(select(Participant).where(Participant.user_id == user.id)).first()
    if participant is None:
        return audit.Subject(user_id=user.id)
    return people.participant_subject(participant)


def _channel(policy: identity.AuthPolicy, user: User) -> str | None:
    """E-mail where the account has an address and e-mail is configured, else SMS to
    the phone on file; None when there is nowhere to send a code."""
    if policy.email_delivery and user.email:
        return "email"
    return "sms" if user.phone else None


def _send(
    session: Session,
    policy: identity.AuthPolicy,
    user: User,
    row: PasswordResetCode,
    code: str,
) -> None:
    """Through an outbox, in this transaction: sent once the request commits."""
    if row.channel == "sms":
        sms_rules.plan_reset_sms(session, user, row.id, code)
        return
    minutes = int(policy.reset_validity.total_seconds() // 60)
    session.add(
        EmailMessage(
            user_id=user.id,
            template="password_reset",
            params=json.dumps({"code": code, "name": user.full_name, "minutes": minutes}),
            password_reset_code_id=row.id,
            next_attempt_at=utcnow(),
        )
    )


def _issue(
    session: Session,
    policy: identity.AuthPolicy,
    user: User,
    requested_by: uuid.UUID | None,
    channel: str,
) -> PasswordResetCode:
    """A new code replaces every earlier one of the account."""
    now = utcnow()
    session.execute(
        update(PasswordResetCode)
        .where(
            PasswordResetCode.user_id == user.id,
            PasswordResetCode.used_at.is_(None),
            PasswordResetCode.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    code = passwords.new_activation_code()
    row = PasswordResetCode(
        id=uuid.uuid4(),
        user_id=user.id,
        code_hash=passwords.hash_code(code),
        requested_by_id=requested_by,
        channel=channel,
        expires_at=now + policy.reset_validity,
    )
    session.add(row)
    session.flush()
    _send(session, policy, user, row, code)
    return row


def _codes_last_hour(session: Session, user: User) -> int:
    since = utcnow() - dt.timedelta(hours=1)
    return session.execute(
        select(func.count())
        .select_from(PasswordResetCode)
        .where(PasswordResetCode.user_id == user.id, PasswordResetCode.created_at >= since)
    ).scalar_one()  # COUNT(*) always yields its one row


def request_reset(
    session: Session,
    actor: Actor,
    policy: identity.AuthPolicy,
    *,
    email: str | None,
    phone: str | None,
) -> None:
    """The holder asks for a code. Returns nothing, whatever happened: unknown,
    disabled and never-activated accounts, accounts with nowhere to send a code and
    accounts over the hourly cap are told apart only in the audit trail."""
    user = identity.find_login_user(session, email, phone)
    if user is None:
        return
    outcome = "sent"
    channel = _channel(policy, user)
    if not user.is_active:
        outcome = "account disabled"
    elif not user.activated:
        outcome = "not activated: the study team issues an activation code"
    elif channel is None:
        outcome = "no phone or e-mail to send a code to"
    elif _codes_last_hour(session, user) >= MAX_CODES_PER_HOUR:
        outcome = "hourly limit reached"
    else:
        _issue(session, policy, user, None, channel)
    identity.record_account_event(
        session,
        actor.as_account(user.id, user.role),
        user,
        "auth.password_reset_requested",
        subject=_subject(session, user),
        after={"outcome": outcome, "channel": channel},
    )


def trigger_for_participant(
    session: Session,
    actor: Actor,
    policy: identity.AuthPolicy,
    participant_id: uuid.UUID,
    reason: str,
) -> ResetSent:
    """A coordinator sends their participant a reset code (a patient who calls the
    site); they learn where it went, never what it is."""
    require_role(actor, Role.COORDINATOR)
    participant = get_visible(session, visible_participants(actor), participant_id, "participant")
    return _trigger(session, actor, policy, participant.user, reason)


def trigger_for_user(
    session: Session,
    actor: Actor,
    policy: identity.AuthPolicy,
    user_id: uuid.UUID,
    reason: str,
) -> ResetSent:
    """Admins for any staff account, coordinators for the nurses of their sites."""
    user = get_visible(session, visible_users(actor), user_id, "user")
    accounts.require_whole_scope(actor, user)
    return _trigger(session, actor, policy, user, reason)


def _trigger(
    session: Session, actor: Actor, policy: identity.AuthPolicy, user: User, reason: str
) -> ResetSent:
    reason = audit_reason(reason)
    if user.id == actor.user_id:
        raise Conflict("change your own password with POST /api/v1/auth/password")
    if not user.is_active:
        raise Conflict("this account is deactivated: reactivate it first")
    if not user.activated:
        raise Conflict("this account has no password yet: issue it an activation code instead")
    if _codes_last_hour(session, user) >= MAX_CODES_PER_HOUR:
        raise Conflict(
            f"{MAX_CODES_PER_HOUR} reset codes were sent to this account in the last hour; "
            "ask the holder to use the newest one, or try again later"
        )
    channel = _channel(policy, user)
    if channel is None:
        raise Conflict(
            "this account has no phone on file (and no e-mail address, or no e-mail "
            "gateway) to send a reset code to: add one with PATCH first"
        )
    row = _issue(session, policy, user, actor.user_id, channel)
    identity.record_account_event(
        session,
        actor,
        user,
        "auth.password_reset_triggered",
        subject=_subject(session, user),
        after={"channel": channel, "expires_at": row.expires_at.isoformat()},
        reason=reason,
    )
    return ResetSent(user.id, channel, row.expires_at)


def confirm_reset(
    session: Session,
    actor: Actor,
    policy: identity.AuthPolicy,
    *,
    code: str,
    password: str,
) -> identity.Grant:
    """Set the new password with the code: every earlier session ends, a new one opens."""
    now = utcnow()
    row = session.scalars(
        select(PasswordResetCode).where(PasswordResetCode.code_hash == passwords.hash_code(code))
    ).first()
    if row is None or row.used_at or row.revoked_at or row.expires_at <= now:
        raise Unauthenticated(BAD_CODE)
    user = session.get_one(User, row.user_id)
    if not user.is_active:
        raise Unauthenticated(BAD_CODE)
    origin = (
        credentials.PasswordOrigin.STAFF_RESET
        if row.requested_by_id
        else credentials.PasswordOrigin.SELF_RESET
    )
    # Claimed first: a refusal here keeps its changes (Unauthenticated), so nothing
    # may have been set yet; a weak password (Invalid) rolls the claim back.
    claimed = affected_rows(
        session.execute(
            update(PasswordResetCode)
            .where(
                PasswordResetCode.id == row.id,
                PasswordResetCode.used_at.is_(None),
                PasswordResetCode.revoked_at.is_(None),
                PasswordResetCode.expires_at > now,
            )
            .values(used_at=now)
        )
    )
    if claimed != 1:
        raise Unauthenticated(BAD_CODE)
    credentials.set_password(session, user, password, origin, hold=policy.signature_hold, now=now)
    holder = actor.as_account(user.id, user.role)
    identity.revoke_all_sessions(session, holder, user, "password_reset")
    identity.record_account_event(
        session,
        holder,
        user,
        "auth.password_reset",
        subject=_subject(session, user),
        after={"origin": user.password_set_via},
    )
    return identity.open_session(session, policy, user)
