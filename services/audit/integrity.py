"""Sealing and verifying the audit trail: the seal chain records every chain's head,
so `verify` can tell an edited, inserted, renumbered or cut-off event from an intact
trail. Kept apart from `chain`, which only appends; see docs/audit-trail.md."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from sqlalchemy import Text, cast, select, type_coerce
from sqlalchemy.orm import Session, defer

from services import crypto
from services.audit import key as audit_key
from services.audit.chain import (
    EVENT_MAC,
    GENESIS,
    SEALED_COLUMNS,
    event_payload,
    lock_head,
)
from services.db import utcnow
from services.models import AuditChainHead, AuditEvent, AuditSeal

SEAL_CHAIN = "seals"
SEAL_MAC = "dct-audit-seal"


def seal(session: Session) -> AuditSeal | None:
    """Record every chain head in the seal chain; skipped when nothing changed."""
    heads = {head.chain: [head.seq, head.hash] for head in session.scalars(select(AuditChainHead))}
    head = lock_head(session, SEAL_CHAIN)
    heads.pop(SEAL_CHAIN, None)
    previous = session.scalars(select(AuditSeal).where(AuditSeal.seq == head.seq)).one_or_none()
    if previous is not None and previous.heads == heads:
        return None
    new_seal = AuditSeal(
        id=uuid.uuid4(),
        seq=head.seq + 1,
        sealed_at=utcnow(),
        heads=heads,
        prev_hash=head.hash,
        key_cutover=False,
    )
    new_seal.hash = seal_hash(new_seal)
    head.seq, head.hash = new_seal.seq, new_seal.hash
    session.add(new_seal)
    session.flush()
    return new_seal


def seal_payload(item: AuditSeal) -> dict[str, Any]:
    """What a seal's hash covers. Seals from before the audit key lack `key_cutover`."""
    return {
        "id": str(item.id),
        "seq": item.seq,
        "sealed_at": item.sealed_at.astimezone(dt.UTC).isoformat(),
        "heads": item.heads,
        "prev_hash": item.prev_hash,
        "key_cutover": bool(item.key_cutover),
    }


def seal_hash(item: AuditSeal) -> str:
    """The seal's HMAC under the audit key."""
    return audit_key.mac(SEAL_MAC, seal_payload(item))


def _legacy_seal_hash(item: AuditSeal) -> str:
    payload = seal_payload(item)
    del payload["key_cutover"]
    return audit_key.legacy_hash(payload)


@dataclass(frozen=True)
class Break:
    """The first place where the stored trail disagrees with its hashes."""

    where: str
    problem: str


@dataclass(frozen=True)
class _SealedState:
    """What the seal chain vouches for: each chain's newest sealed (seq, hash), and the
    events the cut-over seal lets verify by plain SHA-256 (seq up to which, per chain)."""

    pinned: dict[str, tuple[int, str]]
    legacy: dict[str, tuple[int, str]]


def verify(session: Session) -> tuple[int, Break | None]:
    """Walk every chain and the seals; return how many events were checked and the
    first break. Each event's HMAC covers its predecessor's, so without the key nothing
    can be edited, inserted or renumbered; the seals pin each chain's newest sealed
    position, so a deleted tail up to there is caught too."""
    seal_break, sealed = _verify_seals(session)
    if seal_break:
        return 0, seal_break
    checked = 0
    last: dict[str, tuple[int, str]] = {}
    for event, raw in _events_in_chain_order(session):
        expected_seq, expected_prev = last.get(event.chain, (0, GENESIS))
        where = f"event {event.id} (chain {event.chain}, seq {event.seq})"
        if event.seq != expected_seq + 1:
            return checked, Break(where, f"expected seq {expected_seq + 1}: an event is missing")
        if event.prev_hash != expected_prev:
            return checked, Break(where, "prev_hash does not match the previous event")
        problem = _event_problem(event, raw, sealed.legacy.get(event.chain))
        if problem:
            return checked, Break(where, problem)
        pinned = sealed.pinned.get(event.chain)
        if pinned and pinned[0] == event.seq and not audit_key.matches(pinned[1], event.hash):
            return checked, Break(where, "differs from the sealed hash: the chain was rewritten")
        last[event.chain] = (event.seq, event.hash)
        checked += 1
    heads = {h.chain: (h.seq, h.hash) for h in session.scalars(select(AuditChainHead))}
    heads.pop(SEAL_CHAIN, None)
    for chain in heads.keys() | sealed.pinned.keys():
        if chain in heads and last.get(chain, (0, GENESIS)) != heads[chain]:
            return checked, Break(f"chain {chain}", "events up to the recorded head are missing")
        if chain in sealed.pinned and last.get(chain, (0, GENESIS))[0] < sealed.pinned[chain][0]:
            return checked, Break(f"chain {chain}", "sealed events are missing")
    return checked, None


def _opened(raw: Mapping[str, Any]) -> dict[str, Any] | str:
    """The plaintext of an event's encrypted columns, or which one does not decrypt."""
    opened: dict[str, Any] = {}
    for name, purpose in SEALED_COLUMNS.items():
        try:
            token = raw[name] if name == "reason" else _json_token(raw[name])
            plain = None if token is None else crypto.decrypt(token, purpose)
            opened[name] = plain if name == "reason" or plain is None else json.loads(plain)
        except (ValueError, TypeError, AttributeError, InvalidTag):
            return f"its {name} does not decrypt: the event was edited"
    return opened


def _json_token(stored: str | None) -> str | None:
    """The token a JSON column holds (one JSON string), or None for SQL or JSON null."""
    value = None if stored is None else json.loads(stored)
    if value is not None and not isinstance(value, str):
        raise ValueError("not a token")
    return value


def _event_problem(
    event: AuditEvent, raw: Mapping[str, Any], legacy: tuple[int, str] | None
) -> str | None:
    """Why the event's hash does not vouch for it, or None. Events up to the cut-over
    seal's position in their chain may carry the plain SHA-256 of before the key."""
    opened = _opened(raw)
    if isinstance(opened, str):
        return opened
    payload = event_payload(event, opened)
    if audit_key.matches(audit_key.mac(EVENT_MAC, payload), event.hash):
        return None
    if not audit_key.matches(audit_key.legacy_hash(payload), event.hash):
        return "content does not match its hash: the event was edited"
    if legacy is None or event.seq > legacy[0]:
        return "hashed without the audit key: the chain was recomputed or forged"
    if event.seq == legacy[0] and not audit_key.matches(legacy[1], event.hash):
        return "differs from the key cut-over seal: the chain was rewritten"
    return None


def _events_in_chain_order(
    session: Session,
) -> Iterator[tuple[AuditEvent, dict[str, Any]]]:
    """Events with their encrypted columns as stored (`SEALED_COLUMNS`), for the caller
    to open."""
    raw_reason = type_coerce(AuditEvent.reason, Text).label("reason")
    # Cast to text in SQL (drivers parse JSON columns themselves): a value that is
    # not even JSON must reach `_opened`, to be reported as a break.
    raw_before = cast(AuditEvent.before, Text).label("before")
    raw_after = cast(AuditEvent.after, Text).label("after")
    query = (
        select(AuditEvent, raw_reason, raw_before, raw_after)
        .options(*(defer(getattr(AuditEvent, name)) for name in SEALED_COLUMNS))
        .order_by(AuditEvent.chain, AuditEvent.seq)
    )
    # Closed when the walk stops at a break, so PostgreSQL's server-side cursor does not linger.
    with session.execute(query.execution_options(yield_per=1000)) as rows:
        for event, reason, before, after in rows:
            yield event, {"reason": reason, "before": before, "after": after}


def _verify_seals(session: Session) -> tuple[Break | None, _SealedState]:
    """Check the seal chain: every seal keyed, except those before the one keyed
    cut-over seal; return what the seals vouch for."""
    expected_seq, expected_prev = 0, GENESIS
    state = _SealedState(pinned={}, legacy={})
    unvouched: AuditSeal | None = None  # the first plain SHA-256 seal, until a cut-over
    cutover_seen = False
    for item in session.scalars(select(AuditSeal).order_by(AuditSeal.seq)):
        where = f"seal {item.id} (seq {item.seq})"
        if item.seq != expected_seq + 1 or item.prev_hash != expected_prev:
            return Break(where, "seal chain broken: a seal is missing or out of order"), state
        if audit_key.matches(seal_hash(item), item.hash):
            if item.key_cutover and not cutover_seen:
                state.legacy.update({c: (seq, digest) for c, (seq, digest) in item.heads.items()})
                cutover_seen, unvouched = True, None
            elif unvouched is not None:
                break  # keyed seals after plain ones that no cut-over vouches for
        elif cutover_seen or not audit_key.matches(_legacy_seal_hash(item), item.hash):
            return Break(where, "seal content does not match its hash"), state
        elif unvouched is None:
            unvouched = item
        state.pinned.update({c: (seq, digest) for c, (seq, digest) in item.heads.items()})
        expected_seq, expected_prev = item.seq, item.hash
    if unvouched is not None:
        where = f"seal {unvouched.id} (seq {unvouched.seq})"
        return Break(where, "hashed without the audit key: the seals were recomputed"), state
    head = session.get(AuditChainHead, SEAL_CHAIN)
    if (expected_seq, expected_prev) != ((head.seq, head.hash) if head else (0, GENESIS)):
        return Break("seal chain", "seals up to the recorded head are missing"), state
    return None, state
