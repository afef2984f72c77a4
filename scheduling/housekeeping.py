"""Periodic upkeep that keeps the database honest and small."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import CursorResult, delete
from sqlalchemy.orm import Session

from services.actor import Actor
from services.audit import integrity
from services.db import utcnow
from services.diagnostics import tus
from services.diagnostics.storage import Storage
from services.epro import plan as epro_plan
from services.models import AuthSession
from services.people import lockout
from services.visits import booking as visits

STALE_LOCKOUT_COUNTS = dt.timedelta(days=1)


def seal_audit_trail(session: Session, _actor: Actor) -> str:
    """Pin every chain head, so a deleted tail or chain is detected by `audit verify`."""
    sealed = integrity.seal(session)
    return f"seal {sealed.seq}" if sealed else "nothing new to seal"


def purge_expired_sessions(session: Session, _actor: Actor) -> str:
    """Expired log-in sessions can never be used again; their refresh tokens go with them.
    Lock-out counts untouched for a day go too (each failure stays in the audit trail).

    Their creation, revocation and reuse stay in the audit trail.
    """
    now = utcnow()
    # execute() is typed to return a plain Result; a DELETE's is a CursorResult.
    deleted = cast(
        "CursorResult[Any]",
        session.execute(delete(AuthSession).where(AuthSession.expires_at < now)),
    )
    counts = lockout.purge_stale(session, now, STALE_LOCKOUT_COUNTS)
    return f"{deleted.rowcount} expired sessions and {counts} stale lock-out counts purged"


def mark_missed_visits(session: Session, actor: Actor) -> str:
    """Open visits whose window has closed in the participant's zone become missed."""
    return f"{visits.mark_missed(session, actor)} visits missed"


def close_epro_windows(session: Session, actor: Actor, *, grace: dt.timedelta) -> str:
    """Unanswered ePRO instances whose window and grace have passed become missed."""
    return f"{epro_plan.close_windows(session, actor, grace=grace)} ePRO instances missed"


def expire_tus_uploads(session: Session, actor: Actor, *, storage: Storage) -> str:
    """Resumable uploads left unfinished past their expiry lose their bytes and rows."""
    return f"{tus.expire(session, actor, storage, now=utcnow())} unfinished tus uploads expired"
