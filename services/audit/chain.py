"""Writing, reading and verifying the audit trail.

`record` runs inside the caller's transaction, so an event exists exactly when the
change it describes was committed. The chain head row is locked (`FOR UPDATE` on
PostgreSQL; SQLite serialises writers anyway) until that transaction ends.

Every event and seal carries an HMAC under the audit key (services/audit/key.py), so
someone who can write to the database but does not hold the key cannot forge, edit,
insert or renumber anything that `verify` then accepts; the seals, taken every
minute and at scheduler stop and anchored outside (services/audit/anchors.py), bound
what deleting a chain's newest events can hide. See docs/audit-trail.md.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Select, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from services.actor import Actor, Role
from services.audit import key as audit_key
from services.audit.models import AFTER_PURPOSE, BEFORE_PURPOSE, REASON_PURPOSE
from services.db import utcnow
from services.errors import Forbidden
from services.models import AuditChainHead, AuditEvent

GENESIS = "0" * 64

# Direct identifiers never enter an audit payload; a change to one is recorded by name only.
DIRECT_IDENTIFIERS = frozenset(
    {"full_name", "email", "phone", "address", "date_of_birth", "password", "activation_code"}
)
REDACTED = "[changed]"


@dataclass(frozen=True)
class Subject:
    """What an event is about; decides its chain and who may read it."""

    study_id: uuid.UUID | None = None
    site_id: uuid.UUID | None = None
    participant_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None

    @property
    def chain(self) -> str:
        for prefix, value in (
            ("participant", self.participant_id),
            ("site", self.site_id),
            ("study", self.study_id),
            ("user", self.user_id),
        ):
            if value is not None:
                return f"{prefix}:{value}"
        return "global"


def redact(values: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if values is None:
        return None
    return {
        key: (REDACTED if key in DIRECT_IDENTIFIERS else value) for key, value in values.items()
    }


# The columns stored encrypted, by purpose: `verify` reads them raw and opens them
# itself, so a tampered ciphertext is reported as a break instead of raising.
SEALED_COLUMNS = {"reason": REASON_PURPOSE, "before": BEFORE_PURPOSE, "after": AFTER_PURPOSE}

EVENT_MAC = "dct-audit-event"


def event_payload(event: AuditEvent, opened: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What an event's hash covers: the plaintext of its encrypted columns, taken from
    `opened` when given (as `verify` decrypted them) or else from the event."""
    if opened is None:
        opened = {name: getattr(event, name) for name in SEALED_COLUMNS}
    return {
        "id": str(event.id),
        "chain": event.chain,
        "seq": event.seq,
        "prev_hash": event.prev_hash,
        "occurred_at": event.occurred_at.astimezone(dt.UTC).isoformat(),
        "actor_id": str(event.actor_id) if event.actor_id else None,
        "actor_role": event.actor_role,
        "action": event.action,
        "entity_type": event.entity_type,
        "entity_id": event.entity_id,
        "study_id": str(event.study_id) if event.study_id else None,
        "site_id": str(event.site_id) if event.site_id else None,
        "participant_id": str(event.participant_id) if event.participant_id else None,
        "before": opened["before"],
        "after": opened["after"],
        "reason": opened["reason"],
        "request_id": event.request_id,
    }


def event_hash(event: AuditEvent) -> str:
    """The event's HMAC under the audit key."""
    return audit_key.mac(EVENT_MAC, event_payload(event))


def lock_head(session: Session, chain: str) -> AuditChainHead:
    """Lock the chain's head for this transaction, creating it race-free on first use."""
    locked = (
        select(AuditChainHead)
        .where(AuditChainHead.chain == chain)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    head = session.scalars(locked).one_or_none()
    if head is not None:
        return head
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        insert(AuditChainHead)
        .values(chain=chain, seq=0, hash=GENESIS)
        .on_conflict_do_nothing(index_elements=["chain"])
    )
    return session.scalars(locked).one()


def record(
    session: Session,
    actor: Actor,
    action: str,
    *,
    entity_type: str,
    entity_id: uuid.UUID | str | None,
    subject: Subject,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    reason: str | None = None,
) -> AuditEvent:
    """Append one event to the subject's chain, in the caller's transaction."""
    head = lock_head(session, subject.chain)
    event = AuditEvent(
        id=uuid.uuid4(),
        chain=subject.chain,
        seq=head.seq + 1,
        prev_hash=head.hash,
        occurred_at=utcnow(),
        actor_id=actor.user_id,
        actor_role=actor.role_name,
        action=action,
        entity_type=entity_type,
        entity_id=str(entity_id) if entity_id is not None else None,
        study_id=subject.study_id,
        site_id=subject.site_id,
        participant_id=subject.participant_id,
        before=redact(before),
        after=redact(after),
        reason=reason,
        request_id=actor.request_id,
    )
    event.hash = event_hash(event)
    head.seq, head.hash = event.seq, event.hash
    session.add(event)
    session.flush()
    return event


def record_change(
    session: Session,
    actor: Actor,
    action: str,
    entity: Audited,
    *,
    subject: Subject,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    reason: str | None = None,
) -> AuditEvent:
    """An event about one stored row, named by the row itself (its entity type and id),
    so a call says only what happened and what changed."""
    return record(
        session,
        actor,
        action,
        entity_type=entity_type_of(entity),
        entity_id=entity.id,
        subject=subject,
        before=before,
        after=after,
        reason=reason,
    )


def record_update(
    session: Session,
    actor: Actor,
    action: str,
    entity: Audited,
    *,
    subject: Subject,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
) -> AuditEvent | None:
    """An edit recorded field by field: only the fields whose value changed, both
    values of each; an edit that changed nothing leaves no event."""
    changed = [name for name in after if after[name] != before.get(name)]
    if not changed:
        return None
    return record_change(
        session,
        actor,
        action,
        entity,
        subject=subject,
        before={name: before.get(name) for name in changed},
        after={name: after[name] for name in changed},
    )


class Audited(Protocol):
    """A stored row an event can be about."""

    @property
    def id(self) -> uuid.UUID: ...


def entity_type_of(entity: Audited) -> str:
    """The row's class in snake case (`ConsentDocument` -> `consent_document`), the
    `entity_type` the trail is filtered by."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(entity).__name__).lower()


def snapshot(entity: object, fields: Iterable[str]) -> dict[str, Any]:
    """The named attributes of a row as JSON values, the `before` and `after` of an
    event: one conversion, so ids, times and lists read alike in every event."""
    return {name: json_value(getattr(entity, name)) for name in fields}


def json_value(value: Any) -> Any:
    """A stored value as the trail keeps it: ids as text, dates and times in ISO 8601,
    enums by value, sequences as lists."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [json_value(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): json_value(item) for key, item in value.items()}
    return value


def visible_events(actor: Actor) -> Select[AuditEvent]:
    """The audit events an actor may read: admin all, coordinators their sites,
    monitors their studies."""
    query = select(AuditEvent)
    if actor.role == Role.ADMIN:
        return query
    if actor.role == Role.COORDINATOR:
        return query.where(AuditEvent.site_id.in_(actor.site_ids))
    if actor.role == Role.MONITOR:
        return query.where(AuditEvent.study_id.in_(actor.study_ids))
    raise Forbidden("only admins, coordinators and monitors read the audit trail")


@dataclass(frozen=True)
class TrailFilter:
    """What a reader narrows the trail to; None is no narrowing."""

    entity_type: str | None = None
    entity_id: str | None = None
    actor_id: uuid.UUID | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None


def trail(actor: Actor, narrowed: TrailFilter) -> Select[AuditEvent]:
    """The events the actor may read, narrowed, newest first (`until` excluded)."""
    query = visible_events(actor)
    for name in ("entity_type", "entity_id", "actor_id"):
        if (value := getattr(narrowed, name)) is not None:
            query = query.where(getattr(AuditEvent, name) == value)
    if narrowed.since is not None:
        query = query.where(AuditEvent.occurred_at >= narrowed.since)
    if narrowed.until is not None:
        query = query.where(AuditEvent.occurred_at < narrowed.until)
    return query.order_by(AuditEvent.occurred_at.desc(), AuditEvent.id)
