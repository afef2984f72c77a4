"""Migration 0008 encrypts the free text and signed PDFs a database already holds, and
its downgrade gives them back in clear; on PostgreSQL the append-only trigger it
lifts for the rewrite is back in force afterwards."""

from __future__ import annotations

import json
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from api.cli import alembic_config
from services.db import make_engine
from tests.factories.free_text import (
    JSON_COLUMNS,
    Stored,
    as_text,
    model_value,
    raw_value,
    write_free_text,
)
from tests.factories.people import make_world
from tests.migrations import test_migrations

fresh_url, fresh_engine = test_migrations.fresh_url, test_migrations.fresh_engine
BEFORE = "0007"


def in_clear(raw: Any, stored: Stored) -> Any:
    """A value as the code before 0008 stored it: text, JSON, PDF bytes."""
    if stored.column == "pdf":
        return bytes(raw)
    if stored.purpose in JSON_COLUMNS and isinstance(raw, str):
        return json.loads(raw)  # SQLite hands JSON back as its text
    return raw


def trigger_state(conn: Connection) -> str:
    return conn.scalar(
        text("SELECT tgenabled FROM pg_trigger WHERE tgname = 'epro_responses_append_only'")
    )


@pytest.fixture
def populated(app, fresh_url: str) -> list[Stored]:
    """A database at head holding every kind of free text, taken back to 0007."""
    command.upgrade(alembic_config(fresh_url), "head")
    engine = make_engine(fresh_url)
    with Session(engine) as session:
        stored = write_free_text(session, make_world(session))
        session.commit()
    engine.dispose()
    command.downgrade(alembic_config(fresh_url), BEFORE)
    return stored


def test_downgrade_leaves_the_values_in_clear_as_before(fresh_engine, populated):
    with fresh_engine.connect() as conn:
        for value in populated:
            assert in_clear(raw_value(conn, value), value) == value.value, value.purpose


@pytest.mark.requirement("X-GDPR")
def test_upgrade_encrypts_what_was_stored_in_clear(fresh_url, fresh_engine, populated):
    command.upgrade(alembic_config(fresh_url), "head")

    with fresh_engine.connect() as conn:
        for value in populated:
            raw = as_text(raw_value(conn, value))
            for secret in value.secrets:
                assert secret not in raw, f"{secret!r} readable in {value.purpose}"
        if conn.dialect.name == "postgresql":
            assert trigger_state(conn) == "O"  # enabled again ("origin" mode)
    with Session(fresh_engine) as session:
        for value in populated:
            assert model_value(session, value) == value.value, value.purpose
    assert test_migrations.drift(fresh_engine) == []
