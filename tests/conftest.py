"""One app per test session on a database built by `alembic upgrade head`; each test
runs in its own connection and transaction, rolled back afterwards.

The database is SQLite in a temporary folder, or PostgreSQL when TEST_DATABASE_URL
is set (CI runs both). App code may commit: with `join_transaction_mode=
"create_savepoint"` its commits only release savepoints inside the test's transaction.
"""

from __future__ import annotations

import atexit
import base64
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from alembic import command
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, event
from sqlalchemy.orm import Session, sessionmaker

from api import create_app
from api.cli import alembic_config
from services import crypto, passwords
from services.db import empty_database
from tests.factories.people import World, make_world

# Fixtures other modules offer: local S3, Twilio and SMTP servers; the upload tests'
# participants; the requirement marker (validation evidence).
pytest_plugins = [
    "tests.traceability.plugin",
    "tests.fakes.s3",
    "tests.factories.diagnostics",
    "tests.fakes.twilio",
    "tests.fakes.smtp",
]

TEST_KEY = base64.urlsafe_b64encode(os.urandom(32)).decode()
TEST_AUDIT_KEY = os.urandom(32)
TEST_JWT_SECRET = base64.urlsafe_b64encode(os.urandom(48)).decode()
# Uploaded files of the whole test session; each test's database rows roll back, and
# files no row points to are harmless here.
UPLOAD_DIR = tempfile.mkdtemp(prefix="dct-test-uploads-")
atexit.register(shutil.rmtree, UPLOAD_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"
    empty_database(url)
    command.upgrade(alembic_config(url), "head")
    return url


def app_settings(database_url: str, **extra: object) -> dict[str, object]:
    return {
        "DATABASE_URL": database_url,
        "JWT_SECRET_KEY": TEST_JWT_SECRET,
        "DCT_ENCRYPTION_KEY": TEST_KEY,
        "DCT_AUDIT_KEY": base64.urlsafe_b64encode(TEST_AUDIT_KEY).decode(),
        "DCT_PASSWORD_HASH_CHEAP": True,
        "DCT_LOGIN_RATE_LIMIT": "10000 per minute",
        "DCT_LOG_LEVEL": "WARNING",
        "DCT_UPLOAD_DIR": UPLOAD_DIR,
        "DCT_SCHEDULER_ENABLED": False,
        "DCT_CONSOLE_SMS_INBOX": "",  # no developer inbox: the tests read the outbox
        "DCT_EMAIL_GATEWAY": "none",  # codes by SMS, unless a test sets up e-mail
        **extra,
    }


@pytest.fixture(scope="session")
def app(database_url: str) -> Iterator[Flask]:
    app = create_app(app_settings(database_url))
    yield app
    app.extensions["db"].engine.dispose()


def joined_sessions(conn: Connection) -> sessionmaker[Session]:
    """Sessions for an app whose commits only release savepoints in `conn`'s transaction."""
    return sessionmaker(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)


@pytest.fixture
def connection(app: Flask) -> Iterator[Connection]:
    """The test's connection and outer transaction; the app's sessions join it."""
    database = app.extensions["db"]
    conn = database.engine.connect()
    outer = conn.begin()
    original = database.sessions
    database.sessions = joined_sessions(conn)
    try:
        yield conn
    finally:
        database.sessions = original
        outer.rollback()
        conn.close()


AppFactory = Callable[..., Flask]


@pytest.fixture
def make_app(database_url: str, connection: Connection) -> Iterator[AppFactory]:
    """Build other apps with their own settings: `make_app(DCT_LOGIN_RATE_LIMIT="2 per minute")`.

    On the test database their sessions join the test's transaction; an app given another
    DATABASE_URL (a fresh database for `db upgrade`) keeps its own. create_app sets
    process-wide state (root logging, the password hasher, the field keys): the session
    app's is restored afterwards, so one test's settings never leak into the next.
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    built: list[Flask] = []

    def build(**settings: object) -> Flask:
        other = create_app(app_settings(database_url, **settings))
        built.append(other)
        if other.config["DATABASE_URL"] == database_url:
            other.extensions["db"].sessions = joined_sessions(connection)
        return other

    try:
        yield build
    finally:
        for other in built:
            other.extensions["db"].engine.dispose()
        root.handlers[:] = handlers
        root.setLevel(level)
        passwords.configure(cheap=True)
        crypto.configure(crypto.decode_master_key(TEST_KEY))


@pytest.fixture
def db(connection: Connection) -> Iterator[Session]:
    """A session for arranging and inspecting data, in the test's transaction."""
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        yield session


@pytest.fixture
def client(app: Flask, connection: Connection) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def world(db: Session) -> World:
    return make_world(db)


@pytest.fixture
def dialect(app: Flask) -> str:
    return app.extensions["db"].engine.dialect.name


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


# Statements the app sends inside a test's transaction for bookkeeping, not for data.
_SAVEPOINT_WORDS = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")
QueryCounter = Callable[[], AbstractContextManager[list[str]]]


@pytest.fixture
def count_queries(connection: Connection) -> QueryCounter:
    """`with count_queries() as queries: client.get(...)`, then `len(queries)`: the SQL
    statements run on the test's connection (the app's sessions join it), savepoints
    left out. List endpoints pin theirs, so an N+1 shows as a count that grows with
    the rows."""

    @contextmanager
    def counting() -> Iterator[list[str]]:
        statements: list[str] = []

        def note(_conn, _cursor, statement: str, *_args: object) -> None:
            if not statement.lstrip().upper().startswith(_SAVEPOINT_WORDS):
                statements.append(statement)

        event.listen(connection, "before_cursor_execute", note)
        try:
            yield statements
        finally:
            event.remove(connection, "before_cursor_execute", note)

    return counting
