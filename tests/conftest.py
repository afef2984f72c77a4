"""One app per test session on a database built by `alembic upgrade head`; each test
runs in its own connection and transaction, rolled back afterwards.

The database is SQLite in a temporary folder, or PostgreSQL when TEST_DATABASE_URL
is set (CI runs both). App code may commit: with `join_transaction_mode=
"create_savepoint"` its commits only release savepoints inside the test's transaction.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection
from sqlalchemy.orm import Session, sessionmaker

from api import create_app
from api.cli import alembic_config
from services.db import empty_database

TEST_KEY = base64.urlsafe_b64encode(os.urandom(32)).decode()
TEST_JWT_SECRET = base64.urlsafe_b64encode(os.urandom(48)).decode()


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
        "DCT_PASSWORD_HASH_CHEAP": True,
        "DCT_LOGIN_RATE_LIMIT": "10000 per minute",
        "DCT_LOG_LEVEL": "WARNING",
        **extra,
    }


@pytest.fixture(scope="session")
def app(database_url: str) -> Iterator[Flask]:
    app = create_app(app_settings(database_url))
    yield app
    app.extensions["db"].engine.dispose()


@pytest.fixture
def connection(app: Flask) -> Iterator[Connection]:
    """The test's connection and outer transaction; the app's sessions join it."""
    database = app.extensions["db"]
    conn = database.engine.connect()
    outer = conn.begin()
    original = database.sessions
    database.sessions = sessionmaker(
        bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    try:
        yield conn
    finally:
        database.sessions = original
        outer.rollback()
        conn.close()


@pytest.fixture
def db(connection: Connection) -> Iterator[Session]:
    """A session for arranging and inspecting data, in the test's transaction."""
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        yield session


@pytest.fixture
def client(app: Flask, connection: Connection) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def dialect(app: Flask) -> str:
    return app.extensions["db"].engine.dialect.name


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
