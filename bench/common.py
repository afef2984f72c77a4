"""What every bench needs: a scratch database, bench accounts, and timed steps; for
the benches that measure a real server, gunicorn on a scratch PostgreSQL database and
patients who may use it.

The benches run as scripts (`python bench/<name>.py`), so they import this module by
its plain name.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from flask import Flask
from sqlalchemy import make_url, text
from sqlalchemy.orm import Session

from api import create_app
from api.cli import alembic_config
from consent import signing
from consent.models import ConsentDocument, SignerRole
from services.actor import Actor, Role
from services.db import empty_database, make_engine
from services.models import Participant, Site, Study, User
from services.people import enrolment, identity
from services.people import participants as people
from services.studies import studies

PASSWORD = "bench password, long enough"  # noqa: S105 - scratch accounts
ADMIN = Actor(user_id=None, role=Role.ADMIN, request_id="bench")
ROOT = Path(__file__).resolve().parent.parent


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


@contextmanager
def scratch_database(server: str, bench: str, *, keep: bool = False) -> Iterator[str]:
    """A new database on the PostgreSQL server, dropped afterwards unless `keep`."""
    name = f"dct_bench_{bench}_{os.getpid()}"
    admin = make_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        if keep:
            print(f"kept the database: {url}")
        else:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def share_token_secret() -> None:
    """This process signs in the patients and gunicorn checks their tokens: both must
    use the same secret, and the tokens must outlive the run."""
    os.environ["JWT_SECRET_KEY"] = base64.urlsafe_b64encode(os.urandom(48)).decode()
    os.environ["DCT_ACCESS_TOKEN_MINUTES"] = "1440"  # noqa: S105 - minutes, not a secret


def sign(
    session: Session, signer: User, participant: Participant, document: ConsentDocument, role: str
) -> None:
    signing.sign(
        session,
        people.actor_for(session, signer, "bench"),
        document.id,
        signing.SignatureRequest(
            participant_id=participant.id,
            role=SignerRole(role),
            full_name=signer.full_name,
            password=PASSWORD,
            document_sha256=document.content_sha256 or "",
        ),
        signing.ClientInfo(address="127.0.0.1", user_agent="bench"),
    )


def consent_and_enroll(
    session: Session, coordinator: User, participant: Participant, document: ConsentDocument
) -> None:
    """A patient ready to sign (bench/consent_setup.py `add_patient`) signs, is
    countersigned and enrolled today: a current consent, as the patients' endpoints need."""
    sign(session, participant.user, participant, document, "participant")
    sign(session, coordinator, participant, document, "investigator")
    enrolment.enroll(
        session, people.actor_for(session, coordinator, "bench"), participant.id, dt.date.today()
    )


def access_tokens(app: Flask, emails: list[str]) -> list[str]:
    """Each account's access token (password PASSWORD)."""
    client = app.test_client()
    found = []
    for email in emails:
        response = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert response.status_code == 200, response.get_json()
        found.append(response.get_json()["access_token"])
    return found


def wait_until_up(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit("gunicorn exited; see its log above")
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=1) as response:  # noqa: S310 - our own server
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    sys.exit("gunicorn did not answer /healthz within 60 s")


@contextmanager
def gunicorn(
    port: int, settings: Mapping[str, str], *options: str
) -> Iterator[subprocess.Popen[bytes]]:
    """gunicorn serving the app on 127.0.0.1:`port` with these settings added to the
    environment, answering /healthz; stopped afterwards."""
    command = [
        str(ROOT / ".venv/bin/gunicorn"),
        f"--bind=127.0.0.1:{port}",
        "--log-level=warning",
        *options,
        "wsgi:app",
    ]
    env = {**os.environ, "DCT_LOG_LEVEL": "WARNING", **settings}
    server = subprocess.Popen(command, cwd=ROOT, env=env)  # noqa: S603 - our own command line
    try:
        wait_until_up(f"http://127.0.0.1:{port}", server)
        yield server
    finally:
        server.terminate()
        server.wait(timeout=30)
