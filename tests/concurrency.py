"""Helpers for tests that need real concurrency: their own PostgreSQL database (threads
need their own connections and must see each other's commits, so they cannot run in
the test's transaction), threads released together, and a wait for a lock."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

import pytest
from alembic import command
from sqlalchemy import Engine, make_url, text
from sqlalchemy.orm import Session

from api.cli import alembic_config
from services.db import make_engine

T = TypeVar("T")


@contextmanager
def fresh_postgres_database(database_url: str, prefix: str, why: str) -> Iterator[str]:
    """A migrated database of its own beside the test database, dropped afterwards;
    skips (saying `why`) when the tests run on SQLite."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        pytest.skip(why)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    server = make_engine(url.set(database="postgres").render_as_string(hide_password=False))
    with server.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    fresh = url.set(database=name).render_as_string(hide_password=False)
    try:
        command.upgrade(alembic_config(fresh), "head")
        yield fresh
    finally:
        with server.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        server.dispose()


def at_once(*calls: Callable[[], T]) -> list[T]:
    """Run the calls in threads released together by a barrier; results in call order."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def wait_until_blocked(engine: Engine, pid: int | None = None) -> None:
    """Until the backend `pid` (or, without one, any backend of this database) waits
    for a lock another transaction holds, or fail."""
    query = (
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    if pid is not None:
        query += f" AND pid = {int(pid)}"
    deadline = time.monotonic() + 30
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(text(query)).scalar()
            conn.rollback()
            if waiting:
                return
            time.sleep(0.01)
    pytest.fail("the second transaction never waited for the first")


def while_first_holds(
    engine: Engine, first: Session, second: Session, call: Callable[[], None]
) -> None:
    """Run `call` (which writes through `second`) in a thread; once `second` waits for
    a lock `first` holds, commit `first` and let `call` finish."""
    pid = second.execute(text("SELECT pg_backend_pid()")).scalar()
    thread = threading.Thread(target=call)
    thread.start()
    try:
        wait_until_blocked(engine, pid)
    finally:
        first.commit()
        thread.join()
