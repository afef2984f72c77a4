"""One SQLAlchemy session per request, committed once at the boundary.

A successful response commits; any error rolls back, except domain errors marked
`keep_changes` (a failed log-in must still count towards the lockout).
"""

from __future__ import annotations

from flask import Flask, Response, current_app, g
from sqlalchemy.orm import Session, sessionmaker

from services.db import make_engine, make_session_factory


class Database:
    def __init__(self, url: str) -> None:
        self.engine = make_engine(url, pool_pre_ping=True)
        self.sessions: sessionmaker[Session] = make_session_factory(self.engine)


def init_app(app: Flask) -> None:
    app.extensions["db"] = Database(app.config["DATABASE_URL"])
    app.after_request(_commit_on_success)
    app.teardown_appcontext(_close)


def database() -> Database:
    return current_app.extensions["db"]


def db_session() -> Session:
    """The request's session, opened on first use."""
    if "db_session" not in g:
        g.db_session = database().sessions()
    return g.db_session


def finish(commit: bool) -> None:
    session: Session | None = g.pop("db_session", None)
    if session is None:
        return
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()


def _commit_on_success(response: Response) -> Response:
    if response.status_code < 400:
        finish(commit=True)
    return response


def _close(_exc: BaseException | None) -> None:
    finish(commit=False)
