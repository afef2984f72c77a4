"""Writing, reading and verifying the audit trail.

`record` runs inside the caller's transaction, so an event exists exactly when the
change it describes was committed. The chain head row is locked (`FOR UPDATE` on
PostgreSQL; SQLite serialises writers anyway) until that transaction ends.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from services.actor import Actor, Role
from services.db import utcnow
from services.errors import Forbidden
from services.models import AuditChainHead, AuditEvent, AuditSeal

GENESIS = "0" * 64
SEAL_CHAIN = "seals"

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


def _digest(payload: Mapping[str, Any]) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _event_payload(event: AuditEvent) -> dict[str, Any]:
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
        "before": event.before,
        "after": event.after,
        "reason": event.reason,
        "request_id": event.request_id,
    }


def event_hash(event: AuditEvent) -> str:
    return _digest(_event_payload(event))


def _lock_head(session: Session, chain: str) -> AuditChainHead:
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
    head = _lock_head(session, subject.chain)
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


def visible_events(actor: Actor) -> Select[tuple[AuditEvent]]:
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


def seal(session: Session) -> AuditSeal | None:
    """Record every chain head in the seal chain; skipped when nothing changed."""
    heads = {head.chain: [head.seq, head.hash] for head in session.scalars(select(AuditChainHead))}
    head = _lock_head(session, SEAL_CHAIN)
    heads.pop(SEAL_CHAIN, None)
    previous = session.scalars(select(AuditSeal).where(AuditSeal.seq == head.seq)).one_or_none()
    if previous is not None and previous.heads == heads:
        return None
    new_seal = AuditSeal(
        id=uuid.uuid4(), seq=head.seq + 1, sealed_at=utcnow(), heads=heads, prev_hash=head.hash
    )
    new_seal.hash = _seal_hash(new_seal)
    head.seq, head.hash = new_seal.seq, new_seal.hash
    session.add(new_seal)
    session.flush()
    return new_seal


def _seal_hash(item: AuditSeal) -> str:
    return _digest(
        {
            "id": str(item.id),
            "seq": item.seq,
            "sealed_at": item.sealed_at.astimezone(dt.UTC).isoformat(),
            "heads": item.heads,
            "prev_hash": item.prev_hash,
        }
    )


@dataclass(frozen=True)
class Break:
    """The first place where the stored trail disagrees with its hashes."""

    where: str
    problem: str


def verify(session: Session) -> tuple[int, Break | None]:
    """Walk every chain and the seals; return how many events were checked and the
    first break. The latest seal pins each chain's hash at the sealed position, so a
    chain recomputed from an edit onwards is caught too."""
    seal_break, sealed = _verify_seals(session)
    if seal_break:
        return 0, seal_break
    checked = 0
    last: dict[str, tuple[int, str]] = {}
    for event in _events_in_chain_order(session):
        expected_seq, expected_prev = last.get(event.chain, (0, GENESIS))
        where = f"event {event.id} (chain {event.chain}, seq {event.seq})"
        if event.seq != expected_seq + 1:
            return checked, Break(where, f"expected seq {expected_seq + 1}: an event is missing")
        if event.prev_hash != expected_prev:
            return checked, Break(where, "prev_hash does not match the previous event")
        if event_hash(event) != event.hash:
            return checked, Break(where, "content does not match its hash: the event was edited")
        if (
            sealed.get(event.chain, (0, ""))[0] == event.seq
            and sealed[event.chain][1] != event.hash
        ):
            return checked, Break(where, "differs from the sealed hash: the chain was rewritten")
        last[event.chain] = (event.seq, event.hash)
        checked += 1
    heads = {h.chain: (h.seq, h.hash) for h in session.scalars(select(AuditChainHead))}
    heads.pop(SEAL_CHAIN, None)
    for chain in heads.keys() | sealed.keys():
        if chain in heads and last.get(chain, (0, GENESIS)) != heads[chain]:
            return checked, Break(f"chain {chain}", "events up to the recorded head are missing")
        if chain in sealed and last.get(chain, (0, GENESIS))[0] < sealed[chain][0]:
            return checked, Break(f"chain {chain}", "sealed events are missing")
    return checked, None


def _events_in_chain_order(session: Session) -> Iterator[AuditEvent]:
    # Closed when the walk stops at a break, so PostgreSQL's server-side cursor does not linger.
    query = select(AuditEvent).order_by(AuditEvent.chain, AuditEvent.seq)
    with session.scalars(query.execution_options(yield_per=1000)) as events:
        yield from events


def _verify_seals(session: Session) -> tuple[Break | None, dict[str, tuple[int, str]]]:
    """Check the seal chain; return the heads pinned by the latest seal."""
    expected_seq, expected_prev = 0, GENESIS
    pinned: dict[str, tuple[int, str]] = {}
    for item in session.scalars(select(AuditSeal).order_by(AuditSeal.seq)):
        where = f"seal {item.id} (seq {item.seq})"
        if item.seq != expected_seq + 1 or item.prev_hash != expected_prev:
            return Break(where, "seal chain broken: a seal is missing or out of order"), {}
        if _seal_hash(item) != item.hash:
            return Break(where, "seal content does not match its hash"), {}
        pinned = {chain: (seq, digest) for chain, (seq, digest) in item.heads.items()}
        expected_seq, expected_prev = item.seq, item.hash
    head = session.get(AuditChainHead, SEAL_CHAIN)
    if (expected_seq, expected_prev) != ((head.seq, head.hash) if head else (0, GENESIS)):
        return Break("seal chain", "seals up to the recorded head are missing"), {}
    return None, pinned
