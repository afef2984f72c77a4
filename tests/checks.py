"""Assertions and inspections shared by the tests: problem+json answers, row counts,
audit events and the app's log lines."""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from api import logs
from services.models import AuditEvent

PROBLEM_JSON = "application/problem+json"
PROBLEM_KEYS = {"type", "title", "status", "detail"}


def assert_problem(response: TestResponse, status: int) -> dict[str, Any]:
    """An RFC 9457 answer with this status and no internals; returns its body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM_JSON
    body = response.get_json()
    assert body.keys() >= PROBLEM_KEYS
    assert body["status"] == status
    assert body["type"].startswith("https://")
    assert "Traceback" not in response.get_data(as_text=True)
    return body


def count(db: Session, model: type) -> int:
    return db.scalar(select(func.count()).select_from(model)) or 0


def audit_events(db: Session, action: str, entity_id: uuid.UUID | str) -> list[AuditEvent]:
    """The events of one action on one entity, oldest first, as committed by now."""
    db.expire_all()
    return list(
        db.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == action, AuditEvent.entity_id == str(entity_id))
            .order_by(AuditEvent.occurred_at)
        )
    )


@contextmanager
def captured_logs(level: str = "INFO") -> Iterator[io.StringIO]:
    """The app's JSON log lines, written to a buffer instead of stderr."""
    root = logging.getLogger()
    handlers, old_level = root.handlers[:], root.level
    logs.configure(level)
    stream = io.StringIO()
    root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
    try:
        yield stream
    finally:
        root.handlers[:] = handlers
        root.setLevel(old_level)
