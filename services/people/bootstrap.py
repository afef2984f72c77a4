"""The first admin of a deployment, created from the command line with a password."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from services import passwords
from services.actor import Actor, Role
from services.audit import chain as audit
from services.models import User
from services.people.participants import USER_FIELDS, set_email
from services.validation import language_code, person_name, timezone_name


def create_admin(
    session: Session, *, email: str, full_name: str, timezone: str, locale: str, password: str
) -> User:
    passwords.check_strength(password)
    user = User(
        id=uuid.uuid4(),
        role=Role.ADMIN.value,
        full_name=person_name(full_name),
        locale=language_code(locale),
        timezone=timezone_name(timezone),
        password_hash=passwords.hash_password(password),
    )
    set_email(session, user, email)
    session.add(user)
    session.flush()
    audit.record_change(
        session,
        Actor.system(),
        "user.create",
        user,
        subject=audit.Subject(user_id=user.id),
        after=audit.snapshot(user, USER_FIELDS),
        reason="created from the command line",
    )
    return user
