"""SQLAlchemy base, column types and engine set-up shared by every model."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, cast

from sqlalchemy import (
    JSON,
    CursorResult,
    DateTime,
    Engine,
    MetaData,
    Result,
    String,
    TypeDecorator,
    Uuid,
    create_engine,
    text,
)
from sqlalchemy import event as sa_event
from sqlalchemy.orm import DeclarativeBase, Session, mapped_column, sessionmaker

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC on every backend.

    SQLite has no time zones and hands back naive values; this type refuses naive
    input and always returns aware UTC, so comparisons never mix the two.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: store timezone-aware values only")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


uuid_pk = Annotated[uuid.UUID, mapped_column(primary_key=True, default=uuid.uuid4)]
created_now = Annotated[dt.datetime, mapped_column(UtcDateTime(), default=utcnow)]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        uuid.UUID: Uuid(),
        dt.datetime: UtcDateTime(),
        dict[str, Any]: JSON(),
        list[str]: JSON(),
        list[str] | None: JSON(),
        list[dict[str, Any]]: JSON(),
        str: String(),
    }


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create the engine; on SQLite, switch on foreign keys and WAL as PostgreSQL would behave."""
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
    # Bound values (contact data, tokens) must never reach an error message or a log line.
    engine = create_engine(url, hide_parameters=True, **kwargs)
    if engine.dialect.name == "sqlite":

        @sa_event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy, not pysqlite, open transactions: savepoints then work.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        @sa_event.listens_for(engine, "begin")
        def _sqlite_begin(connection: Any) -> None:
            # IMMEDIATE takes the write lock up front, as the audit head lock needs.
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def affected_rows(result: Result[*tuple[Any, ...]]) -> int:
    """How many rows an UPDATE or DELETE matched. `Session.execute` is typed to return
    a plain `Result`; for such statements it is a `CursorResult`, which has the count."""
    return cast("CursorResult[*tuple[Any, ...]]", result).rowcount


def empty_database(url: str) -> None:
    """Drop everything, for tests and benchmarks that migrate a scratch database from
    nothing (a SQLite file they create is empty already)."""
    engine = make_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
