"""Alembic environment: the URL comes from the caller's config or DATABASE_URL."""

from __future__ import annotations

import os

from alembic import context

import consent.models  # noqa: F401 - registers the eConsent tables
import services.models  # noqa: F401 - registers every table on Base.metadata
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


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
