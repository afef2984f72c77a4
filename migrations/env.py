"""Alembic environment: the URL comes from the caller's config or DATABASE_URL.

Migrations that encrypt existing values need the app's keys. `flask db upgrade`
has them already (the app factory configured them); plain `alembic upgrade` gets
them here from the app settings (DCT_ENCRYPTION_KEY), with the same checks as at
start-up, so production never encrypts with the development key."""

from __future__ import annotations

import os

from alembic import context

import consent.models  # noqa: F401 - registers the eConsent tables
import services.models  # noqa: F401 - registers every table on Base.metadata
from services import crypto
from services.db import Base, make_engine

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    from api.config import DEFAULTS

    return (
        config.get_main_option("sqlalchemy.url")
        or os.environ.get("DATABASE_URL")
        or DEFAULTS["DATABASE_URL"]
    )


def _configure_crypto() -> None:
    """Install the keys from the settings unless the app already did (with its own)."""
    if crypto.is_configured():
        return
    from api.config import load

    crypto.configure(crypto.decode_master_key(load()["DCT_ENCRYPTION_KEY"]))


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


_configure_crypto()
if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
