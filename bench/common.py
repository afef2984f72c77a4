"""What every bench needs: a scratch database, bench accounts, and timed steps.

The benches run as scripts (`python bench/<name>.py`), so they import this module by
its plain name.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from flask import Flask
from sqlalchemy.orm import Session

from api import create_app
from api.cli import alembic_config
from services import identity, people, studies
from services.actor import Actor, Role
from services.db import empty_database
from services.models import Site, Study, User

PASSWORD = "bench password, long enough"  # noqa: S105 - scratch accounts
ADMIN = Actor(user_id=None, role=Role.ADMIN, request_id="bench")


def reset(url: str) -> None:
    """An empty, migrated database (a SQLite file is deleted first)."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
    empty_database(url)
    command.upgrade(alembic_config(url), "head")


@contextmanager
def timed(label: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    print(f"  {label}: {time.perf_counter() - started:.1f} s", flush=True)


def staff(
    session: Session, role: Role, email: str, name: str = "Bench Staff", **scope: list[uuid.UUID]
) -> User:
    """An activated staff account with `site_ids` or `study_ids`, password PASSWORD."""
    user, code = people.create_staff(
        session, ADMIN, people.NewStaff(email, name, role, "en", "Europe/Brussels", **scope)
    )
    identity.activate(session, ADMIN, identity.AuthPolicy(), code=code, password=PASSWORD)
    return user


def make_app(url: str, *, cheap_hashing: bool = True) -> Flask:
    """The app on the scratch database; log-ins unthrottled, logs quiet."""
    return create_app(
        {
            "DATABASE_URL": url,
            "DCT_PASSWORD_HASH_CHEAP": cheap_hashing,
            "DCT_LOGIN_RATE_LIMIT": "1000000 per minute",
            "DCT_LOG_LEVEL": "WARNING",
        }
    )


def study_with_sites(
    session: Session, code: str, title: str, sites: int
) -> tuple[Study, list[Site]]:
    """An English-language study in Brussels time with sites S00, S01, ..."""
    study = studies.create_study(
        session, ADMIN, studies.NewStudy(code, title, ["en"], "Europe/Brussels")
    )
    return study, [
        studies.create_site(
            session,
            ADMIN,
            study.id,
            studies.NewSite(f"S{n:02d}", f"Site {n}", "BE", "Europe/Brussels"),
        )
        for n in range(sites)
    ]
