"""ePRO submissions per second under gunicorn with PostgreSQL, beside the same
server's /healthz requests per second measured in the same run. Targets: submissions
at 25 % or more of the /healthz rate, p99 under 100 ms at 32 concurrent connections.
Printed, not asserted.

The load generator is wrk in its own process (bench/epro_submissions.lua): first
/healthz, then POST /api/v1/epro/responses, each for --seconds at --connections
connections after a short warm-up. Every submission is real, distinct and valid: its
own open instance and client_id, a participant enrolled with a complete consent, the
answers of a published questionnaire, the patient's own access token; each one is
validated, stored, audited and committed durably (the run prints the server's
synchronous_commit and fsync). Afterwards the database is checked: one response and
one audit event per accepted request, no replay, the audit chains intact.

The data, through the services: a study with one site, an approved consent, a
published questionnaire of seven items; --participants patients who signed, were
countersigned and enrolled, each with --instances open instances (inserted in bulk,
windows open now), logged in once each (DCT_ACCESS_TOKEN_MINUTES set long).

    .venv/bin/python bench/epro_submissions.py --workers 4

It creates a scratch PostgreSQL database on the server of --postgres (default: root
at 127.0.0.1:5432) and drops it at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from common import (
    access_tokens,
    consent_and_enroll,
    gunicorn,
    make_app,
    reset,
    scratch_database,
    share_token_secret,
    timed,
)
from consent_setup import add_patient, make_trial
from flask import Flask
from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from services.audit import integrity
from services.db import make_engine, utcnow
from services.epro import checks
from services.epro import definitions as epro_definitions
from services.models import AuditEvent, EproInstance, EproResponse
from services.people import participants as people

LUA = Path(__file__).with_suffix(".lua")
ZONE = ZoneInfo("Europe/Brussels")
CONSENT = "## Why this study\n\nWe study home monitoring.\n\n## Risks\n\nFew."


def nl(text_: str) -> dict[str, str]:
    return {"nl": text_}


def choice(value: str) -> dict[str, Any]:
    return {"value": value, "text": nl(value)}


# A heart-failure diary: seven items of six types, one shown by skip logic.
ITEMS = [
    {
        "link_id": "breath",
        "type": "single_choice",
        "required": True,
        "text": nl("Kortademig?"),
        "options": [choice("none"), choice("some"), choice("severe")],
    },
    {
        "link_id": "symptoms",
        "type": "multiple_choice",
        "text": nl("Klachten"),
        "options": [choice("cough"), choice("swelling"), choice("fatigue")],
    },
    {"link_id": "pillows", "type": "integer", "min": 0, "max": 20, "text": nl("Kussens")},
    {"link_id": "weight", "type": "decimal", "min": 30.0, "max": 250.0, "text": nl("Gewicht")},
    {"link_id": "pain", "type": "nrs", "required": True, "text": nl("Pijn 0-10")},
    {"link_id": "fall", "type": "boolean", "required": True, "text": nl("Gevallen?")},
    {
        "link_id": "fall_how",
        "type": "text",
        "required": True,
        "max_length": 500,
        "text": nl("Hoe?"),
        "enable_when": {"item": "fall", "equals": True},
    },
]
ANSWERS = [
    {"item": "breath", "value": "some"},
    {"item": "symptoms", "value": ["cough", "fatigue"]},
    {"item": "pillows", "value": 2},
    {"item": "weight", "value": 81.4},
    {"item": "pain", "value": 3},
    {"item": "fall", "value": True},
    {"item": "fall_how", "value": "Uitgegleden in de badkamer"},
]
SCHEDULE = {
    "type": "daily",
    "start_day": 1,
    "end_day": 90,
    "window": {"opens": "18:00", "closes": "23:59", "close_after_days": 0},
}


@dataclass
class WrkResult:
    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @classmethod
    def parse(cls, output: str) -> WrkResult:
        line = next(line for line in output.splitlines() if line.startswith("BENCH "))
        raw = json.loads(line.removeprefix("BENCH "))
        return cls(
            requests=raw["requests"],
            seconds=raw["duration_us"] / 1e6,
            non_2xx=raw["non_2xx"],
            socket_errors=sum(
                raw[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
            ),
            p50_ms=raw["p50_us"] / 1000,
            p90_ms=raw["p90_us"] / 1000,
            p99_ms=raw["p99_us"] / 1000,
            max_ms=raw["max_us"] / 1000,
        )

    def line(self, label: str) -> str:
        return (
            f"{label:<12} {self.rate:8.1f} req/s  n={self.requests:<6} p50 {self.p50_ms:6.1f} ms  "
            f"p90 {self.p90_ms:6.1f} ms  p99 {self.p99_ms:6.1f} ms  max {self.max_ms:6.1f} ms  "
            f"non-2xx {self.non_2xx}  socket errors {self.socket_errors}"
        )


def seed(app: Flask, participants: int, instances: int) -> tuple[list[str], list[list[str]]]:
    """The patients' e-mail addresses, and per patient the ids of their open instances."""
    sessions = app.extensions["db"].sessions
    with sessions.begin() as session:
        trial = make_trial(session, CONSENT, {})
        coordinator = people.actor_for(session, trial.coordinator, "bench")
        draft = epro_definitions.create_draft(
            session,
            coordinator,
            trial.study.id,
            checks.Content("HFDIARY", "1.0", nl("Hartfalen dagboek"), ITEMS, SCHEDULE),
        )
        questionnaire = epro_definitions.publish(session, coordinator, draft.id)
        enrolled = []
        for n in range(participants):
            participant = add_patient(session, trial, f"Patient Number{n}")
            consent_and_enroll(session, trial.coordinator, participant, trial.document)
            enrolled.append(participant)
        emails = [p.user.email or "" for p in enrolled]
        now = utcnow()
        rows = [
            {
                "id": uuid.uuid4(),
                "participant_id": p.id,
                "study_id": p.study_id,
                "site_id": p.site_id,
                "questionnaire_id": questionnaire.id,
                "slot": f"bench-{k:05d}",
                "local_date": now.date(),
                "opens_at": now - dt.timedelta(hours=1),
                "closes_at": now + dt.timedelta(hours=12),
                "status": "scheduled",
                "created_at": now,
            }
            for p in enrolled
            for k in range(instances)
        ]
        session.execute(insert(EproInstance), rows)
        per_participant = [
            [str(row["id"]) for row in rows[i * instances : (i + 1) * instances]]
            for i in range(participants)
        ]
    return emails, per_participant


def request_lines(access: list[str], instances: list[list[str]]) -> list[str]:
    """Round-robin over the patients, so concurrent requests are mostly different
    patients (as in real use), each instance once with a fresh client_id."""
    completed = dt.datetime.now(ZONE).replace(microsecond=0)
    times = {
        "started_at": (completed - dt.timedelta(minutes=3)).isoformat(),
        "completed_at": completed.isoformat(),
        "device_timezone": "Europe/Brussels",
    }
    lines = []
    for k in range(len(instances[0])):
        for token, ids in zip(access, instances, strict=True):
            body = {
                "client_id": str(uuid.uuid4()),
                "instance_id": ids[k],
                "status": "completed",
                "answers": ANSWERS,
                **times,
            }
            lines.append(f"{token}\t{json.dumps(body, separators=(',', ':'))}")
    return lines


def wrk(base: str, args: argparse.Namespace, seconds: int, *script_args: str) -> WrkResult:
    command = [
        "wrk",
        f"-t{args.wrk_threads}",
        f"-c{args.connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        base,
        "--",
        *script_args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode:
        sys.exit(f"wrk failed: {done.stdout}{done.stderr}")
    return WrkResult.parse(done.stdout)


def server_settings(url: str) -> dict[str, str]:
    engine = make_engine(url)
    with engine.connect() as conn:
        found = {
            name: conn.execute(text(f"SHOW {name}")).scalar_one()
            for name in ("synchronous_commit", "fsync", "wal_sync_method")
        }
    engine.dispose()
    return found


def check_database(url: str, accepted: int) -> None:
    """Every accepted request left one response and one audit event, nothing replayed."""
    engine = make_engine(url)
    with Session(engine) as session:
        responses = session.scalar(select(func.count()).select_from(EproResponse)) or 0
        distinct = session.scalar(select(func.count(func.distinct(EproResponse.instance_id))))
        events = session.scalar(
            select(func.count()).where(AuditEvent.action == "epro.response.submit")
        )
        completed = session.scalar(
            select(func.count()).where(
                EproInstance.status == "completed", EproInstance.slot.like("bench-%")
            )
        )
        checked, broken = integrity.verify(session)
    engine.dispose()
    print(
        f"database: {responses} responses for {distinct} instances ({completed} completed), "
        f"{events} submit audit events; 2xx answers counted by wrk: {accepted} (wrk does not "
        "count the requests in flight when it stops, which the server still commits)"
    )
    print(f"audit verify: {checked} events, {'BROKEN ' + broken.problem if broken else 'intact'}")


def run(args: argparse.Namespace, url: str) -> None:
    reset(url)
    app = make_app(url)
    print("seeding", flush=True)
    with timed(f"{args.participants} enrolled patients, {args.instances} open instances each"):
        emails, instances = seed(app, args.participants, args.instances)
    with timed("log-ins"):
        access = access_tokens(app, emails)
    app.extensions["db"].engine.dispose()
    lines = request_lines(access, instances)
    warm = args.connections * 10
    with tempfile.TemporaryDirectory() as folder:
        warm_file, main_file = Path(folder, "warm.tsv"), Path(folder, "main.tsv")
        warm_file.write_text("\n".join(lines[:warm]) + "\n")
        main_file.write_text("\n".join(lines[warm:]) + "\n")
        measure(args, url, warm_file, main_file, len(lines) - warm)


def measure(args: argparse.Namespace, url: str, warm_file: Path, main_file: Path, n: int) -> None:
    base = f"http://127.0.0.1:{args.port}"
    options = (f"--workers={args.workers}", f"--threads={args.threads}", "--backlog=2048")
    with gunicorn(args.port, {"DATABASE_URL": url}, *options):
        threads = str(args.wrk_threads)
        wrk(base, args, 2, "healthz")
        healthz = wrk(base, args, args.seconds, "healthz")
        warm = wrk(base, args, 1, "submit", str(warm_file), threads)
        submissions = wrk(base, args, args.seconds, "submit", str(main_file), threads)
    durability = ", ".join(f"{k}={v}" for k, v in server_settings(url).items())
    worker_kind = "sync" if args.threads == 1 else f"gthread x{args.threads}"
    print(
        f"\ngunicorn: {args.workers} workers ({worker_kind}); wrk: {args.wrk_threads} thread(s), "
        f"{args.connections} connections, {args.seconds} s a run; {os.cpu_count()} cores; "
        f"PostgreSQL {durability}; {n} prepared submissions\n"
    )
    print(healthz.line("/healthz"))
    print(submissions.line("submissions"))
    ratio = submissions.rate / healthz.rate
    print(
        f"\nratio submissions / healthz: {ratio:.2f} (target >= 0.25); "
        f"p99 {submissions.p99_ms:.1f} ms (target < 100 ms)"
    )
    errors = warm.non_2xx + submissions.non_2xx + warm.socket_errors + submissions.socket_errors
    print(f"errors (non-2xx and socket, submissions incl. warm-up): {errors}")
    check_database(url, warm.requests + submissions.requests - warm.non_2xx - submissions.non_2xx)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default="postgresql+psycopg://root@127.0.0.1:5432/postgres")
    parser.add_argument("--participants", type=int, default=100)
    parser.add_argument("--instances", type=int, default=100, help="open instances per patient")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=1, help="threads per worker (gthread)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--port", type=int, default=8077)
    args = parser.parse_args()
    share_token_secret()
    with scratch_database(args.postgres, "epro_submissions") as url:
        run(args, url)


if __name__ == "__main__":
    main()
