"""Seal digests for outside the database, and the check of the database against them.

A seal's HMAC stops anyone without DCT_AUDIT_KEY from forging one, but someone who can
write to the database can still delete the newest seals (and then the events after the
last one left), and someone who later steals the key as well can rewrite everything.
Neither can reach a copy already outside: the operator exports each day's seals
(`flask --app wsgi audit export-seals`) to write-once storage, and `audit verify
--anchors` checks that every exported seal is still in the database, unchanged. The
seal chain links each seal to the one before, so one anchored seal vouches for every
seal and event before it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.actor import Actor
from services.audit import chain as audit
from services.models import AuditSeal

DIGEST_FIELDS = ("seq", "sealed_at", "hash", "prev_hash")


def seal_digest(session: Session, day: dt.date) -> Iterator[dict[str, Any]]:
    """The seals taken on `day` (UTC), oldest first, as the lines of an anchor file."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    query = (
        select(AuditSeal)
        .where(AuditSeal.sealed_at >= start, AuditSeal.sealed_at < start + dt.timedelta(days=1))
        .order_by(AuditSeal.seq)
    )
    for item in session.scalars(query):
        yield _line(item)


def _line(item: AuditSeal) -> dict[str, Any]:
    return {
        "seq": item.seq,
        "sealed_at": item.sealed_at.astimezone(dt.UTC).isoformat(),
        "hash": item.hash,
        "prev_hash": item.prev_hash,
        "chains": len(item.heads),
    }


@dataclass(frozen=True)
class Mismatch:
    seq: object
    problem: str

    def describe(self) -> str:
        return f"seal {self.seq}: {self.problem}"


def read_anchor_lines(lines: Iterable[str]) -> list[dict[str, Any]]:
    """The seals of an anchor file (JSON Lines); ValueError naming a line that is not
    one of ours."""
    anchors = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            anchor = json.loads(line)
        except ValueError:
            raise ValueError(f"line {number} is not JSON") from None
        if not isinstance(anchor, dict) or any(name not in anchor for name in DIGEST_FIELDS):
            raise ValueError(f"line {number} is not a seal: it needs {', '.join(DIGEST_FIELDS)}")
        anchors.append(anchor)
    return anchors


def check(session: Session, anchors: Iterable[dict[str, Any]]) -> list[Mismatch]:
    """Every anchored seal that the database no longer holds as it was exported."""
    mismatches = []
    for anchor in anchors:
        stored = session.scalars(select(AuditSeal).where(AuditSeal.seq == anchor["seq"])).first()
        if stored is None:
            mismatches.append(Mismatch(anchor["seq"], "exported, now missing from the database"))
            continue
        differing = [name for name in DIGEST_FIELDS if _line(stored)[name] != anchor[name]]
        if differing:
            mismatches.append(
                Mismatch(anchor["seq"], f"differs from the export in {', '.join(differing)}")
            )
    return mismatches


def record_mismatches(session: Session, actor: Actor, mismatches: list[Mismatch]) -> None:
    """One security alert naming the seals that differ from their anchors."""
    audit.record(
        session,
        actor,
        "security.alert.audit_anchor_mismatch",
        entity_type="audit_seal",
        entity_id=None,
        subject=audit.Subject(),
        after={"seals": [m.describe() for m in mismatches]},
    )
