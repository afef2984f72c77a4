"""The SMS outbox as a table: rows planned under dedupe keys (planning twice never
plans twice), a pending row following its moved occasion, pending rows cancelled with
a reason, and the coordinator's list of a participant's messages.

Planning decides which messages a participant should get (planning.py); this module
only writes and reads rows, in bulk and in chunks, so that every rule plans and
cancels the same way.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Select, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, defer

from services.access import get_visible, require_role, visible_participants
from services.actor import Actor, Role
from services.db import utcnow
from services.models import Participant, SmsMessage, SmsStatus

PENDING = SmsStatus.PENDING.value
# Rows per INSERT/IN: far below SQLite's and PostgreSQL's bound-parameter limits.
CHUNK = 500


def row(
    *,
    key: str,
    user_id: uuid.UUID,
    template: str,
    params: dict[str, Any],
    relevance: dict[str, Any],
    due_at: dt.datetime,
    participant_id: uuid.UUID | None = None,
    study_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    now = utcnow()
    return {
        "id": uuid.uuid4(),
        "dedupe_key": key,
        "user_id": user_id,
        "participant_id": participant_id,
        "study_id": study_id,
        "template": template,
        # Sorted, so an unchanged plan compares equal to the stored one.
        "params": json.dumps(params, sort_keys=True),
        "relevance": relevance,
        "due_at": due_at,
        "next_attempt_at": due_at,
        "status": PENDING,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }


def chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def insert_new(session: Session, rows: list[dict[str, Any]]) -> set[str]:
    """Insert the rows whose key is new and return their keys; a key planned already
    (earlier, or by a concurrent planner that committed first) is left as it is."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    inserted: set[str] = set()
    for chunk in chunks(rows):
        statement = (
            insert(SmsMessage)
            .values(list(chunk))
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(SmsMessage.dedupe_key)
        )
        inserted.update(session.scalars(statement))
    return inserted


def plan_rows(session: Session, rows: list[dict[str, Any]], *, compare_params: bool = False) -> int:
    """Plan rows; one still pending whose occasion moved since (an ePRO window following
    its rebooked visit, a nurse's list gaining a visit) follows it. Returns how many
    rows are new. Parameters are compared only when asked: they are encrypted, and
    decrypting every planned row on every run would cost more than it finds."""
    inserted = insert_new(session, rows)
    planned = {row["dedupe_key"]: row for row in rows if row["dedupe_key"] not in inserted}
    columns = [SmsMessage.dedupe_key, SmsMessage.due_at]
    if compare_params:
        columns.append(SmsMessage.params)
    for keys in chunks(list(planned)):
        stored = session.execute(
            select(*columns).where(SmsMessage.dedupe_key.in_(keys), SmsMessage.status == PENDING)
        )
        for key, due_at, *params in stored:
            row = planned[key]
            if due_at != row["due_at"] or (compare_params and params[0] != row["params"]):
                session.execute(
                    update(SmsMessage)
                    .where(SmsMessage.dedupe_key == key, SmsMessage.status == PENDING)
                    .values(
                        due_at=row["due_at"], next_attempt_at=row["due_at"], params=row["params"]
                    )
                    .execution_options(synchronize_session=False)
                )
    return len(inserted)


def cancel_pending(session: Session, reason: str, *where: ColumnElement[bool]) -> int:
    """Cancel the pending rows that match, saying why, and return how many: the outbox
    then shows what will not go, rather than each row being skipped at its time."""
    result = session.execute(
        update(SmsMessage)
        .where(SmsMessage.status == PENDING, *where)
        .values(status=SmsStatus.CANCELLED.value, status_reason=reason)
        .execution_options(synchronize_session=False)
    )
    # execute() is typed to return a plain Result; for an UPDATE it is a CursorResult.
    return cast("CursorResult[Any]", result).rowcount


def cancel_participant_messages(session: Session, participant: Participant, reason: str) -> int:
    """A withdrawal from the study or of contact, in its transaction: every pending SMS
    of the participant is cancelled, reminders and account codes (activation, password
    reset) alike, as someone who withdrew contact gets no SMS from the study at all.
    Returns how many, for the withdrawal's audit event."""
    return cancel_pending(session, reason, SmsMessage.participant_id == participant.id)


def cancel_instance_reminders(
    session: Session, instance_ids: Sequence[uuid.UUID], reason: str
) -> int:
    """The pending reminders of ePRO instances that were cancelled (handed over to a
    new version, their visit cancelled) go with them, so that an occasion planned
    again never has two. Returns how many, for the caller's audit event."""
    cancelled = 0
    for chunk in chunks(list(instance_ids)):
        keys = [SmsMessage.dedupe_key.startswith(f"epro:{instance_id}:") for instance_id in chunk]
        cancelled += cancel_pending(session, reason, or_(*keys))
    return cancelled


def participant_messages(
    session: Session, actor: Actor, participant_id: uuid.UUID
) -> Select[SmsMessage]:
    """A participant's planned and sent SMS for their site's coordinator, latest due
    first. Parameters and text stay unread: an activation code is a secret."""
    require_role(actor, Role.COORDINATOR)
    participant = get_visible(session, visible_participants(actor), participant_id, "participant")
    return (
        select(SmsMessage)
        .options(defer(SmsMessage.params), defer(SmsMessage.body))
        .where(SmsMessage.participant_id == participant.id)
        .order_by(SmsMessage.due_at.desc(), SmsMessage.id)
    )
