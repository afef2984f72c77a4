"""Managing staff accounts once they exist: contact data and memberships, deactivation
and reactivation, clearing log-in lock-outs.

Scope is `visible_users` (admins: every staff account; coordinators: the nurses of
their sites), so an account outside it answers 404. Creation and the validation of
each field live in services.people.participants; this module reuses them. Audit payloads name a
changed direct identifier but never copy its value (audit.record redacts them).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, selectinload

from services.access import get_visible, require_role, visible_users
from services.actor import Actor, Role
from services.audit import chain as audit
from services.db import utcnow
from services.errors import Conflict, Forbidden, Invalid
from services.models import LoginLockout, User, Visit, VisitStatus
from services.people import identity, lockout
from services.people import participants as people
from services.validation import audit_reason, language_code, person_name, timezone_name
from services.visits.booking import visible_visits

MANAGERS = (Role.ADMIN, Role.COORDINATOR)
UPDATABLE = frozenset(
    {"full_name", "email", "phone", "locale", "timezone", "site_ids", "study_ids"}
)
# The email is what staff log in with and where reset codes go: only an admin changes it.
ADMIN_ONLY = frozenset({"email"})
ROLE_NEVER_CHANGES = (
    "the role of an account never changes: create an account with the new role and "
    "deactivate this one, so the audit trail keeps who acted in which role"
)
# Booked with a nurse and not begun: what a coordinator rebooks when she leaves.
_BOOKED = (VisitStatus.SCHEDULED.value, VisitStatus.CONFIRMED.value)


@dataclass(frozen=True)
class Account:
    """An account as its managers read it. `future_visits` is set for a deactivated
    account: a nurse's bookings from now on, which a coordinator must rebook."""

    user: User
    future_visits: list[Visit] | None = None


def _managed(session: Session, actor: Actor, user_id: uuid.UUID) -> User:
    require_role(actor, *MANAGERS)
    return get_visible(session, visible_users(actor), user_id, "user")


def _subject(user: User) -> audit.Subject:
    return audit.Subject(user_id=user.id)


def get_account(session: Session, actor: Actor, user_id: uuid.UUID) -> Account:
    """One managed account; a deactivated one comes with the visits still booked with it."""
    user = _managed(session, actor, user_id)
    if user.is_active:
        return Account(user)
    return Account(user, future_visits(session, actor, user))


def future_visits(
    session: Session, actor: Actor, user: User, now: dt.datetime | None = None
) -> list[Visit]:
    """Visits booked with this nurse that have not started, that the actor may see (a
    coordinator: those of their sites), soonest first."""
    if user.role != Role.NURSE.value:
        return []
    query = visible_visits(actor).where(
        Visit.nurse_id == user.id,
        Visit.status.in_(_BOOKED),
        Visit.start_at >= (now or utcnow()),
    )
    return list(session.scalars(query.order_by(Visit.start_at, Visit.id)))


def _state(user: User) -> dict[str, Any]:
    """Every field update_user may change, comparable before and after (memberships
    sorted: their order carries no meaning)."""
    state = audit.snapshot(user, people.USER_FIELDS)
    state["site_ids"] = sorted(state["site_ids"])
    state["study_ids"] = sorted(state["study_ids"])
    state.update(full_name=user.full_name, email=user.email, phone=user.phone)
    return state


def update_user(
    session: Session, actor: Actor, user_id: uuid.UUID, changes: dict[str, Any]
) -> User:
    """Change a staff account's name, contact data, locale, zone or memberships.

    The role never changes. A coordinator may only move a nurse between their own
    sites (sites they do not run stay as they are) and may not change the log-in
    email. A staff change of phone or email is remembered, since a reset code sent
    there soon after may have reached the staff member instead of the holder.
    """
    user = _managed(session, actor, user_id)
    if "role" in changes:
        raise Invalid("the role never changes", errors={"role": [ROLE_NEVER_CHANGES]})
    unknown = sorted(set(changes) - UPDATABLE)
    if unknown:
        raise Invalid(
            "unknown fields", errors={name: ["not a field of an account"] for name in unknown}
        )
    if not changes:
        raise Invalid("nothing to change", errors={"_schema": ["send at least one field"]})
    if actor.role != Role.ADMIN and changes.keys() & ADMIN_ONLY:
        raise Forbidden("only an admin changes the email an account logs in with")
    if changes.keys() & people.CONTACT_CHANNELS:
        require_whole_scope(actor, user)
    before = _state(user)
    role = Role(user.role)
    # No autoflush: the email's uniqueness check must run before a half-applied change
    # reaches the database's unique index (which would answer 500 instead of 409).
    with session.no_autoflush:
        for name, value in changes.items():
            if name == "full_name":
                user.full_name = person_name(value)
            elif name == "email":
                if value is None:
                    raise Invalid("email required", errors={"email": ["staff log in with it"]})
                people.set_email(session, user, value)
            elif name == "phone":
                people.set_phone(session, user, value, None)
            elif name == "locale":
                user.locale = language_code(value)
            elif name == "timezone":
                user.timezone = timezone_name(value)
            elif name == "site_ids":
                _check_moves(actor, user, value)
                user.sites = people.sites_for(session, role, value)
            elif name == "study_ids":
                user.studies = people.studies_for(session, role, value)
    after = _state(user)
    if any(after[name] != before[name] for name in people.CONTACT_CHANNELS):
        user.contact_changed_by_staff_at = utcnow()
    audit.record_update(
        session, actor, "user.update", user, subject=_subject(user), before=before, after=after
    )
    return user


def _check_moves(actor: Actor, user: User, site_ids: list[uuid.UUID]) -> None:
    """Every site added or removed must be one of the coordinator's own."""
    if actor.role == Role.ADMIN:
        return
    moved = set(site_ids) ^ set(user.site_ids)
    if not moved <= actor.site_ids:
        raise Forbidden("coordinators move nurses between their own sites only")


def require_whole_scope(actor: Actor, user: User) -> None:
    """Where a nurse's phone or email goes, her reset codes go: a coordinator may change
    them (or send her a code) only if they run every site she works for, so a
    coordinator of one site cannot take over a nurse who also sees another's patients."""
    if actor.role == Role.ADMIN or set(user.site_ids) <= actor.site_ids:
        return
    raise Forbidden(
        "this nurse also works for sites you do not run: ask an admin to change her "
        "contact data or send her a reset code"
    )


def deactivate(session: Session, actor: Actor, user_id: uuid.UUID, reason: str) -> Account:
    """Stop an account at once: every session ends (its tokens answer 401) and log-in
    answers as for a wrong password. Records made by the account stay; a nurse's
    future bookings are returned for the coordinator to rebook, and she is no longer
    offered or bookable (nurses.delegation_problem, slots)."""
    require_role(actor, *MANAGERS)
    if user_id == actor.user_id:
        raise Conflict("you cannot deactivate your own account; ask another admin")
    user = _managed(session, actor, user_id)
    _set_active(session, actor, user, False, audit_reason(reason))
    identity.revoke_all_sessions(session, actor, user, "deactivated")
    return Account(user, future_visits(session, actor, user))


def reactivate(session: Session, actor: Actor, user_id: uuid.UUID, reason: str) -> User:
    """Let a deactivated account log in again (with its password; no session returns)."""
    user = _managed(session, actor, user_id)
    _set_active(session, actor, user, True, audit_reason(reason))
    return user


def _set_active(session: Session, actor: Actor, user: User, active: bool, reason: str) -> None:
    if user.is_active == active:
        raise Conflict(
            "this account is active" if active else "this account is already deactivated"
        )
    user.is_active = active
    session.flush()
    audit.record_change(
        session,
        actor,
        "user.reactivate" if active else "user.deactivate",
        user,
        subject=_subject(user),
        before={"is_active": not active},
        after={"is_active": active},
        reason=reason,
    )


def unlock(session: Session, actor: Actor, user_id: uuid.UUID, reason: str) -> User:
    """Clear every log-in lock-out of the account (from every client address) and its
    failure count, for a holder the lock-out keeps out after their identity was checked."""
    user = _managed(session, actor, user_id)
    reason = audit_reason(reason)
    lockouts = session.scalar(
        select(func.count()).select_from(LoginLockout).where(LoginLockout.user_id == user.id)
    )
    before = {"failed_logins": user.failed_logins, "lockouts": lockouts}
    lockout.clear_all(session, user)
    session.flush()
    audit.record_change(
        session,
        actor,
        "user.unlock",
        user,
        subject=_subject(user),
        before=before,
        after={"failed_logins": 0, "lockouts": 0},
        reason=reason,
    )
    return user


def listed_users(actor: Actor) -> Select[User]:
    """The accounts the caller manages, oldest first. The list shows every account's
    sites and studies, so they are loaded in one query each, not one per account."""
    return (
        visible_users(actor)
        .options(selectinload(User.sites), selectinload(User.studies))
        .order_by(User.created_at, User.id)
    )
