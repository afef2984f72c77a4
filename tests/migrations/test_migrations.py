"""The schema comes only from migrations: empty to head, models agree, down and up again;
and the deployment commands `db upgrade` and `users create`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, make_url, select, text

import consent.models  # noqa: F401 - registers the eConsent tables on Base.metadata
import services.models  # noqa: F401 - registers every other table
from api.cli import alembic_config
from services.db import Base, make_engine
from services.models import AuditEvent, User
from tests.checks import count
from tests.factories.people import login

MODEL_TABLES = set(Base.metadata.tables)
CREATE_ADMIN = ["users", "create", "--role", "admin"]


@pytest.fixture
def fresh_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A brand-new, empty database of the kind the suite runs on."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
        return
    name = f"dct_migrations_{uuid.uuid4().hex[:12]}"
    server = make_engine(url.set(database="postgres").render_as_string(hide_password=False))
    with server.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with server.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        server.dispose()


@pytest.fixture
def fresh_engine(fresh_url: str) -> Iterator[Engine]:
    engine = make_engine(fresh_url)
    yield engine
    engine.dispose()


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def drift(engine: Engine) -> list:
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), Base.metadata)


def test_fresh_database_starts_empty(fresh_engine):
    assert tables(fresh_engine) == set()


def test_db_upgrade_command_builds_every_table(fresh_url, fresh_engine, make_app):
    app = make_app(DATABASE_URL=fresh_url)

    result = app.test_cli_runner().invoke(args=["db", "upgrade"])

    assert result.exit_code == 0, result.output
    assert "database at head" in result.output
    assert tables(fresh_engine) == MODEL_TABLES | {"alembic_version"}


def test_models_and_migrations_agree(fresh_url, fresh_engine):
    command.upgrade(alembic_config(fresh_url), "head")

    assert drift(fresh_engine) == []


def test_downgrade_to_base_and_upgrade_again(fresh_url, fresh_engine):
    cfg = alembic_config(fresh_url)
    command.upgrade(cfg, "head")

    command.downgrade(cfg, "base")
    assert tables(fresh_engine) <= {"alembic_version"}

    command.upgrade(cfg, "head")
    assert tables(fresh_engine) == MODEL_TABLES | {"alembic_version"}
    assert drift(fresh_engine) == []


def test_postgresql_migration_installs_the_append_only_trigger(fresh_url, fresh_engine):
    if fresh_engine.dialect.name != "postgresql":
        pytest.skip("the append-only trigger exists on PostgreSQL only")
    command.upgrade(alembic_config(fresh_url), "head")
    query = text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY tgname")

    with fresh_engine.connect() as conn:
        assert conn.scalars(query).all() == [
            "audit_events_append_only",
            "audit_seals_append_only",
            "consent_signatures_append_only",
            "epro_responses_append_only",
            "readings_append_only",
            "uploads_append_only",
        ]
    command.downgrade(alembic_config(fresh_url), "base")
    with fresh_engine.connect() as conn:
        assert conn.scalars(query).all() == []


def test_users_create_makes_an_admin_who_can_log_in(app, client, db):
    result = app.test_cli_runner().invoke(
        args=[*CREATE_ADMIN, "--email", "Root@Example.org", "--full-name", "Ada Admin"],
        input="a long enough password\na long enough password\n",
    )

    assert result.exit_code == 0, result.output
    admin = db.scalars(select(User).where(User.role == "admin")).one()
    assert result.output.strip().endswith(f"created admin {admin.id}")
    assert admin.email == "root@example.org"
    tokens = login(client, admin, "a long enough password")
    assert tokens["user"]["role"] == "admin"
    actions = db.scalars(select(AuditEvent.action).where(AuditEvent.entity_id == str(admin.id)))
    assert "user.create" in actions.all()


def test_users_create_refuses_a_short_password_cleanly(app, db):
    result = app.test_cli_runner().invoke(
        args=[*CREATE_ADMIN, "--email", "root@example.org", "--full-name", "Ada Admin"],
        input="short\nshort\n",
    )

    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)  # a message, not a traceback
    assert "at least 12 characters" in result.output
    assert count(db, User) == 0


def test_users_create_refuses_a_taken_email_cleanly(app, db):
    runner = app.test_cli_runner()
    args = [*CREATE_ADMIN, "--email", "root@example.org"]
    password = "a long enough password\n" * 2
    assert runner.invoke(args=[*args, "--full-name", "First"], input=password).exit_code == 0

    result = runner.invoke(args=[*args, "--full-name", "Second"], input=password)

    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert "already belongs to another account" in result.output
    assert count(db, User) == 1
