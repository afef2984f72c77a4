"""Log-in, activation, refresh-token rotation and revocation.

Token encoding belongs to the HTTP layer (flask-jwt-extended); this module owns
the state that makes tokens valid: sessions (token families), refresh tokens,
activation codes, failed-attempt counters and lockouts.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services import passwords
from services.actor import Actor, Role
from services.audit import chain as audit
from services.db import affected_rows, utcnow
from services.errors import Invalid, TooManyAttempts, Unauthenticated
from services.models import ActivationCode, AuthSession, Participant, RefreshToken, User
from services.people import credentials, lockout
from services.people.lockout import LockoutPolicy
from services.people.participants import email_index, phone_index

BAD_CREDENTIALS = "email, phone or password is wrong"


@dataclass(frozen=True)
class AuthPolicy:
    """Timings from configuration."""

    refresh_ttl: dt.timedelta = dt.timedelta(days=30)
    max_failed_logins: int = 5
    lockout: dt.timedelta = dt.timedelta(minutes=15)
    alert_ceiling: int = 50
    reset_validity: dt.timedelta = dt.timedelta(minutes=30)
    # How long after a staff-influenced password a signature is held (consent.signing).
    signature_hold: dt.timedelta = dt.timedelta(hours=24)
    # An e-mail gateway is configured: reset codes go to an account's e-mail address.
    email_delivery: bool = False

    @property
    def lockouts(self) -> LockoutPolicy:  # `lockout` here is the field above
        return lockout.LockoutPolicy(self.max_failed_logins, self.lockout, self.alert_ceiling)


@dataclass(frozen=True)
class Grant:
    """What the HTTP layer needs to mint a token pair."""

    user: User
    session_id: uuid.UUID
    refresh_jti: uuid.UUID
    refresh_expires_at: dt.datetime


def _subject(user: User) -> audit.Subject:
    return audit.Subject(user_id=user.id)


def record_account_event(
    session: Session,
    actor: Actor,
    user: User,
    action: str,
    *,
    subject: audit.Subject | None = None,
    after: dict[str, object] | None = None,
    reason: str | None = None,
) -> None:
    """An event about an account (its entity is the user), by `actor`: for acts before
    log-in that is `actor.as_account(...)`, the account concerned."""
    audit.record_change(
        session, actor, action, user, subject=subject or _subject(user), after=after, reason=reason
    )


def find_login_user(session: Session, email: str | None, phone: str | None) -> User | None:
    if email:
        return session.scalars(select(User).where(User.email_index == email_index(email))).first()
    if phone:
        # Only patients without an email log in by phone (ARCHITECTURE: one identifier each).
        return session.scalars(
            select(User).where(
                User.phone_index == phone_index(phone),
                User.role == Role.PATIENT.value,
                User.email_index.is_(None),
            )
        ).first()
    raise Invalid("send either email or phone with the password")


def login(
    session: Session,
    actor: Actor,
    policy: AuthPolicy,
    *,
    email: str | None,
    phone: str | None,
    password: str,
    address: str | None = None,
) -> Grant:
    """Unknown, disabled and locked accounts answer exactly like a wrong password, and
    take as long, so the answer tells nobody which accounts exist or are locked."""
    user = find_login_user(session, email, phone)
    now = utcnow()
    if user is None or not user.is_active:
        passwords.verify_password(None, password)
        raise Unauthenticated(BAD_CREDENTIALS)
    if lockout.locked_until(session, user, address, now):
        passwords.verify_password(None, password)
        record_account_event(
            session, actor.as_account(user.id, user.role), user, "auth.login_refused_locked"
        )
        raise Unauthenticated(BAD_CREDENTIALS)
    if not lockout.password_matches(
        session, actor, policy.lockouts, user, password, address, failed_action="auth.login_failed"
    ):
        raise Unauthenticated(BAD_CREDENTIALS)
    user.last_login_at = now
    if user.password_hash and passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    grant = open_session(session, policy, user)
    record_account_event(session, actor.as_account(user.id, user.role), user, "auth.login")
    return grant


def open_session(session: Session, policy: AuthPolicy, user: User) -> Grant:
    now = utcnow()
    auth_session = AuthSession(
        id=uuid.uuid4(), user_id=user.id, expires_at=now + policy.refresh_ttl
    )
    session.add(auth_session)
    session.flush()
    return _issue_refresh(session, policy, user, auth_session)


def _issue_refresh(
    session: Session, policy: AuthPolicy, user: User, auth_session: AuthSession
) -> Grant:
    expires = min(utcnow() + policy.refresh_ttl, auth_session.expires_at)
    token = RefreshToken(jti=uuid.uuid4(), session_id=auth_session.id, expires_at=expires)
    session.add(token)
    session.flush()
    return Grant(user, auth_session.id, token.jti, expires)


def refresh(session: Session, actor: Actor, policy: AuthPolicy, jti: uuid.UUID) -> Grant:
    """Rotate: mark the presented token used and issue its successor in the same family.

    The conditional UPDATE makes two racing uses of one token see exactly one winner;
    the loser is treated as reuse and the whole family is revoked.
    """
    token = session.get(RefreshToken, jti)
    if token is None or token.expires_at <= utcnow():
        raise Unauthenticated("this refresh token is unknown or expired; log in again")
    auth_session = session.get(AuthSession, token.session_id)
    user = session.get(User, auth_session.user_id) if auth_session else None
    if auth_session is None or user is None or auth_session.revoked_at or not user.is_active:
        raise Unauthenticated("this session has ended; log in again")
    claimed = affected_rows(
        session.execute(
            update(RefreshToken)
            .where(RefreshToken.jti == jti, RefreshToken.used_at.is_(None))
            .values(used_at=utcnow())
        )
    )
    if claimed != 1:
        _revoke(session, actor, auth_session, user, "refresh_reuse")
        raise Unauthenticated(
            "this refresh token was already used; every session token was revoked, log in again"
        )
    return _issue_refresh(session, policy, user, auth_session)


def logout(session: Session, actor: Actor, session_id: uuid.UUID) -> None:
    auth_session = session.get(AuthSession, session_id)
    if auth_session is None or auth_session.revoked_at:
        return
    user = session.get_one(User, auth_session.user_id)
    _revoke(session, actor, auth_session, user, "logout")


def _revoke(
    session: Session, actor: Actor, auth_session: AuthSession, user: User, reason: str
) -> None:
    auth_session.revoked_at = utcnow()
    auth_session.revoked_reason = reason
    audit.record_change(
        session,
        actor.as_account(user.id, user.role),
        f"auth.{reason}",
        auth_session,
        subject=_subject(user),
    )


def revoke_all_sessions(session: Session, actor: Actor, user: User, reason: str) -> int:
    """End every open log-in of an account at once (password set anew, deactivation):
    access tokens carry their session id, so they stop working with it. Audited once,
    as an act of whoever caused it."""
    now = utcnow()
    ended = affected_rows(
        session.execute(
            update(AuthSession)
            .where(AuthSession.user_id == user.id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason=reason)
        )
    )
    record_account_event(
        session, actor, user, "auth.sessions_revoked", after={"sessions": ended, "reason": reason}
    )
    return ended


def session_is_active(session: Session, session_id: uuid.UUID | None) -> bool:
    """Checked for every token presented: a revoked or expired family invalidates it."""
    if session_id is None:
        return False
    auth_session = session.get(AuthSession, session_id)
    return bool(auth_session and not auth_session.revoked_at and auth_session.expires_at > utcnow())


def activate(
    session: Session, actor: Actor, policy: AuthPolicy, *, code: str, password: str
) -> Grant:
    """Set the first password with a single-use code, and log in."""
    now = utcnow()
    record = session.scalars(
        select(ActivationCode).where(ActivationCode.code_hash == passwords.hash_code(code))
    ).first()
    if record is None or record.used_at or record.revoked_at or record.expires_at <= now:
        raise Unauthenticated(
            "this activation code is unknown, used, replaced or expired; ask your study team "
            "for a new one"
        )
    passwords.check_strength(password)
    user = session.get(User, record.user_id)
    if user is None or not user.is_active:
        raise Unauthenticated("this account is disabled")
    if user.activated:
        # Codes are only issued to accounts without a password; one left over from
        # before must not let anyone replace the holder's password.
        raise Unauthenticated(
            "this account is activated already: its holder resets a forgotten password "
            "with POST /api/v1/auth/password-reset"
        )
    claimed = affected_rows(
        session.execute(
            update(ActivationCode)
            .where(
                ActivationCode.id == record.id,
                ActivationCode.used_at.is_(None),
                ActivationCode.revoked_at.is_(None),
                ActivationCode.expires_at > now,
            )
            .values(used_at=now)
        )
    )
    if claimed != 1:
        raise Unauthenticated("this activation code was already used")
    credentials.set_password(
        session,
        user,
        password,
        credentials.PasswordOrigin.ACTIVATION,
        hold=policy.signature_hold,
        now=now,
    )
    user.last_login_at = now
    participant_id = session.scalars(
        select(Participant.id).where(Participant.user_id == user.id)
    ).first()
    record_account_event(
        session,
        actor.as_account(user.id, user.role),
        user,
        "auth.activate",
        subject=audit.Subject(participant_id=participant_id, user_id=user.id),
    )
    return open_session(session, policy, user)


def reauthenticate(
    session: Session,
    actor: Actor,
    policy: AuthPolicy,
    password: str,
    *,
    purpose: str,
    address: str | None = None,
) -> User:
    """Re-establish the signer's identity (21 CFR 11.200: the token's identity plus the
    password). Failures count towards the log-in lockout of the same address, so a
    stolen token cannot be used to guess the password here instead. The holder is
    logged in already, so a lock is said plainly (429), not hidden."""
    user = session.get_one(User, actor.user_id)
    now = utcnow()
    until = lockout.locked_until(session, user, address, now)
    if until:
        raise TooManyAttempts(
            "this account is locked after repeated failed passwords; try again later",
            retry_after_seconds=int((until - now).total_seconds()) + 1,
        )
    if not lockout.password_matches(
        session, actor, policy.lockouts, user, password, address, failed_action="auth.reauth_failed"
    ):
        raise Unauthenticated(f"the password is wrong: re-enter your own password to {purpose}")
    return user


def change_password(
    session: Session,
    actor: Actor,
    policy: AuthPolicy,
    *,
    current_password: str,
    new_password: str,
    address: str | None = None,
) -> Grant:
    """The holder sets a new password with their current one. Every session of the
    account ends, this one too (a taker logged in elsewhere is thrown out), and a new
    one opens for the caller."""
    user = reauthenticate(
        session, actor, policy, current_password, purpose="change it", address=address
    )
    if passwords.verify_password(user.password_hash, new_password):
        raise Invalid(
            "same password",
            errors={"new_password": ["choose a password other than the current one"]},
        )
    credentials.set_password(
        session,
        user,
        new_password,
        credentials.PasswordOrigin.CHANGE,
        hold=policy.signature_hold,
        now=utcnow(),
    )
    revoke_all_sessions(session, actor, user, "password_change")
    record_account_event(session, actor, user, "auth.password_change")
    return open_session(session, policy, user)
