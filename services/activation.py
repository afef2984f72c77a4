"""Activation codes: the only way an account gets its first password."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import update
from sqlalchemy.orm import Session

from services import passwords
from services.db import utcnow
from services.models import ActivationCode, User

ACTIVATION_VALIDITY = dt.timedelta(hours=72)


def issue_activation_code(session: Session, user: User) -> str:
    """Create a fresh code and revoke any earlier one; return the code (shown once)."""
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
