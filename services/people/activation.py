"""Activation codes: the only way an account gets its first password."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import update
from sqlalchemy.orm import Session

from services import passwords
from services.access import get_visible, visible_users
from services.actor import Actor
from services.audit import chain as audit
from services.db import utcnow
from services.errors import Conflict
from services.models import ActivationCode, User

ACTIVATION_VALIDITY = dt.timedelta(hours=72)


def issue_activation_code(session: Session, user: User) -> str:
    """Create a fresh code and revoke any earlier one; return the code (shown once).

    Staff are shown it, so it is only for an account that never had a password: an
    activated account's holder recovers it through a reset code sent to them alone."""
    if user.activated:
        raise Conflict(
            "this account is activated already, so no activation code is issued: its "
            "holder resets a forgotten password with POST /api/v1/auth/password-reset, "
            "or you send them a reset code with POST .../password-reset"
        )
    now = utcnow()
    session.execute(
        update(ActivationCode)
        .where(
            ActivationCode.user_id == user.id,
            ActivationCode.used_at.is_(None),
            ActivationCode.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    code = passwords.new_activation_code()
    session.add(
        ActivationCode(
            user_id=user.id,
            code_hash=passwords.hash_code(code),
            expires_at=now + ACTIVATION_VALIDITY,
        )
    )
    session.flush()
    return code


def reissue_for_user(session: Session, actor: Actor, user_id: uuid.UUID) -> str:
    """A staff account whose first code expired unused gets a new one (admins; the
    coordinators of a nurse's sites)."""
    user = get_visible(session, visible_users(actor), user_id, "user")
    code = issue_activation_code(session, user)
    audit.record_change(
        session, actor, "user.activation_code_issued", user, subject=audit.Subject(user_id=user.id)
    )
    return code
