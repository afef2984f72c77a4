"""SMS dispatch throughput to a fake Twilio answering each request after 150 ms:
messages per second for each number of dispatcher threads, and with two dispatcher
processes. Target: 170 messages/s or more (100,000 in under 10 minutes). Printed,
not asserted.

The fake Twilio (tests/fakes/twilio.py, with its `latency`) runs in a process of its
own, as Twilio is not in ours, and counts the create requests per outbox row (the
row id is in each request's status callback URL). The data: --rows enrolled
participants with a phone, in a zone where it is early afternoon now (so quiet hours
defer nothing), the daily cap raised. For each run, every participant gets a diary
window open now, and the `plan` job (`sms_rules.plan_due`) plans its "questionnaire
waiting" SMS: --rows due rows, each checked for relevance at sending. Then
`scheduling.sms_dispatch.Dispatcher.dispatch` rounds run, as the scheduler's job runs them
(batch = threads x ROWS_PER_THREAD, the app's engine and the Twilio gateway of
`make_gateway`), until nothing is due or --seconds have passed. Afterwards every row
of the run is checked: sent with exactly one request, or (a run cut short) still
pending with none. Each run also prints this process's CPU per message (the
dispatcher's Python work, under one GIL) and how many PostgreSQL sessions it opened
(the app's pool is smaller than 32 threads: the overflow connects and disconnects);
`--pool-size N` dispatches through an engine of N pooled connections instead, to
compare. Last, two dispatcher processes (--process-threads threads each, 0 to skip)
share one run's rows; their time includes their start-up.

    .venv/bin/python bench/sms_dispatch.py [--rows 10000] [--threads 1,8,32]

It creates a scratch PostgreSQL database on the server of --postgres (default: root
at 127.0.0.1:5432) and drops it at the end.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import importlib
import multiprocessing
import resource
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import parse_qs, urlsplit

from common import ADMIN, ROOT, make_app, reset, scratch_database
from sms_planning import analyze, seed_instances, seed_participants, seed_study
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from scheduling import sms_dispatch
from services.db import make_engine, make_session_factory, utcnow
from services.models import SmsMessage, SmsStatus
from services.notifications import planning as sms_rules
from services.notifications.gateway import make_gateway

LATENCY = 0.150
TARGET = 170  # messages per second: 100,000 in under 10 minutes
PENDING, SENT = SmsStatus.PENDING.value, SmsStatus.SENT.value


def fake_twilio() -> Any:
    """tests/fakes/twilio.py; the repository root is not on a bench's path."""
    sys.path.insert(0, str(ROOT))
    return importlib.import_module("tests.fakes.twilio")


# --- the fake Twilio in its own process --------------------------------------------------


def serve_fake(conn: Connection, latency: float) -> None:
    """Serves until told "stop"; answers "counts" with the create requests per row id
    and the number of list (reconciliation) requests."""
    module = fake_twilio()
    fake, server = module.start()
    fake.latency = latency
    conn.send(fake.url)
    while conn.recv() != "stop":
        with fake.lock:
            callbacks = [form.get("StatusCallback", "") for form in fake.requests]
            queries = len(fake.queries)
        per_row = collections.Counter(
            parse_qs(urlsplit(url).query).get("message_id", [""])[0] for url in callbacks
        )
        conn.send((dict(per_row), queries))
    module.stop(fake, server)


@dataclass
class Fake:
    url: str
    conn: Connection
    process: multiprocessing.Process

    def counts(self) -> tuple[dict[str, int], int]:
        self.conn.send("counts")
        return self.conn.recv()

    def stop(self) -> None:
        self.conn.send("stop")
        self.process.join(timeout=10)


def start_fake(latency: float) -> Fake:
    ours, theirs = multiprocessing.get_context("fork").Pipe()
    process = multiprocessing.get_context("fork").Process(
        target=serve_fake, args=(theirs, latency), daemon=True
    )
    process.start()
    return Fake(ours.recv(), ours, process)


# --- the data ----------------------------------------------------------------------------


def daytime_zone(now: dt.datetime) -> str:
    """A fixed-offset zone where it is 12:xx now (Etc/GMT-3 is UTC+3)."""
    offset = 12 - now.hour  # -11 to +12, all of which exist
    return f"Etc/GMT{-offset:+d}"


def plan_run(sessions: sessionmaker[Session], ids: dict[str, Any], label: str) -> list[uuid.UUID]:
    """A diary window open now for every participant and its SMS planned by the plan
    job: the run's due rows."""
    now = utcnow()
    with sessions.begin() as session:
        seed_instances(
            session, ids, label, now - dt.timedelta(minutes=1), now + dt.timedelta(hours=1)
        )
    with sessions.begin() as session:
        sms_rules.plan_due(session, ADMIN, now)
    with sessions() as session:
        return list(session.scalars(select(SmsMessage.id).where(SmsMessage.status == PENDING)))


def drop_leftovers(sessions: sessionmaker[Session], rows: list[uuid.UUID]) -> None:
    """A run cut short leaves rows pending: they must not count in the next run."""
    with sessions.begin() as session:
        session.execute(
            update(SmsMessage)
            .where(SmsMessage.id.in_(rows), SmsMessage.status == PENDING)
            .values(status=SmsStatus.CANCELLED.value, status_reason="bench run ended")
        )


# --- dispatching -------------------------------------------------------------------------


def rounds(
    sessions: sessionmaker[Session],
    settings: Mapping[str, Any],
    threads: int,
    batch: int,
    worker: str,
    seconds: float,
) -> int:
    """Dispatch rounds until nothing is due (or the time is up); how many were sent."""
    dispatcher = sms_dispatch.Dispatcher(sessions, make_gateway(settings), settings, worker=worker)
    sent, stop = 0, time.monotonic() + seconds
    while time.monotonic() < stop:
        sent += dispatcher.dispatch(threads=threads, batch=batch)
        if not dispatcher.anything_due():
            break
    return sent


def dispatcher_process(
    url: str, settings: dict[str, Any], threads: int, batch: int, worker: str, seconds: float
) -> int:
    """One more dispatcher, as another scheduler process: its own app and engine."""
    app = make_app(url)
    return rounds(
        app.extensions["db"].sessions, {**app.config, **settings}, threads, batch, worker, seconds
    )


def check(
    sessions: sessionmaker[Session], fake: Fake, rows: list[uuid.UUID]
) -> tuple[collections.Counter[str], str]:
    """The rows' statuses, and whether each sent row had exactly one request and each
    other row none; why rows were not sent, if any were not."""
    with sessions() as session:
        found = session.execute(
            select(
                SmsMessage.id,
                SmsMessage.status,
                func.concat_ws(": ", SmsMessage.status_reason, SmsMessage.error_message),
            ).where(SmsMessage.id.in_(rows))
        ).all()
    statuses = {row_id: status for row_id, status, _ in found}
    requests, _ = fake.counts()
    wrong = [
        row for row in rows if requests.get(str(row), 0) != (1 if statuses[row] == SENT else 0)
    ]
    verdict = "each sent row exactly once" if not wrong else f"{len(wrong)} rows WRONG"
    unsent = collections.Counter((s, reason) for _, s, reason in found if s != SENT)
    if unsent and unsent.keys() != {(PENDING, "")}:  # not merely a run cut short
        verdict += f"; not sent: {dict(unsent)}"
    return collections.Counter(statuses.values()), verdict


def report(
    label: str, sent: int, seconds: float, statuses: Mapping[str, int], verdict: str
) -> None:
    rate = sent / seconds
    meets = "meets" if rate >= TARGET else "MISSES"
    print(
        f"{label:<36} {sent:>7,} sent in {seconds:6.1f} s = {rate:6.1f} msg/s ({meets} "
        f"{TARGET}/s); statuses {dict(statuses)}; {verdict}",
        flush=True,
    )


@dataclass
class Usage:
    """What a run cost besides time: this process's CPU, and the PostgreSQL sessions
    opened (a connection pool smaller than the threads opens and closes connections)."""

    cpu: float
    sessions: int

    @classmethod
    def now(cls, sessions: sessionmaker[Session]) -> Usage:
        own = resource.getrusage(resource.RUSAGE_SELF)
        with sessions() as session:
            session.execute(text("SELECT pg_stat_clear_snapshot()"))
            opened = session.scalar(
                text("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
            )
        return cls(own.ru_utime + own.ru_stime, opened or 0)

    def since(self, before: Usage, sent: int) -> str:
        cpu = (self.cpu - before.cpu) / max(sent, 1) * 1000
        return (
            f"  dispatcher CPU {cpu:.1f} ms per message; "
            f"PostgreSQL sessions opened {self.sessions - before.sessions:,}"
        )


def run_threads(
    sessions: sessionmaker[Session],
    settings: dict[str, Any],
    ids: dict[str, Any],
    fake: Fake,
    threads: int,
    args: argparse.Namespace,
) -> None:
    rows = plan_run(sessions, ids, f"threads-{threads}")
    batch = args.batch or threads * sms_dispatch.ROWS_PER_THREAD
    usage = Usage.now(sessions)
    started = time.perf_counter()
    sent = rounds(
        sessions,
        {**settings, "DCT_SMS_THREADS": threads},
        threads,
        batch,
        f"bench-{threads}",
        args.seconds,
    )
    seconds = time.perf_counter() - started
    used = Usage.now(sessions)
    report(
        f"1 process, {threads} threads (batch {batch})", sent, seconds, *check(sessions, fake, rows)
    )
    print(used.since(usage, sent), flush=True)
    drop_leftovers(sessions, rows)


def run_processes(
    url: str,
    sessions: sessionmaker[Session],
    settings: dict[str, Any],
    ids: dict[str, Any],
    fake: Fake,
    args: argparse.Namespace,
) -> None:
    threads = args.process_threads
    rows = plan_run(sessions, ids, "processes")
    batch = args.batch or threads * sms_dispatch.ROWS_PER_THREAD
    process_settings = {**settings, "DCT_SMS_THREADS": threads}
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        started = time.perf_counter()
        results = [
            pool.apply_async(
                dispatcher_process,
                (url, process_settings, threads, batch, f"bench-process-{n}", args.seconds),
            )
            for n in range(2)
        ]
        sent = [result.get() for result in results]
        seconds = time.perf_counter() - started
    report(
        f"2 processes x {threads} threads",
        sum(sent),
        seconds,
        *check(sessions, fake, rows),
    )
    print(f"  sent per process: {sent} (includes each process's start-up)")
    drop_leftovers(sessions, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default="postgresql+psycopg://root@127.0.0.1:5432/postgres")
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--threads", default="1,8,32", help="comma-separated thread counts")
    parser.add_argument("--batch", type=int, default=0, help="rows per round (default: the job's)")
    parser.add_argument("--seconds", type=float, default=300, help="time limit of one run")
    parser.add_argument("--latency", type=float, default=LATENCY, help="fake Twilio, seconds")
    parser.add_argument("--process-threads", type=int, default=32, help="0: no two-process run")
    parser.add_argument(
        "--pool-size", type=int, default=0, help="database connections (default: the app's pool)"
    )
    args = parser.parse_args()
    fake = start_fake(args.latency)  # forked before any engine or thread exists here
    try:
        with scratch_database(args.postgres, "sms_dispatch") as url:
            reset(url)
            app = make_app(url)
            engine = app.extensions["db"].engine  # the scheduler's, and its pool
            if args.pool_size:
                engine = make_engine(url, pool_pre_ping=True, pool_size=args.pool_size)
            sessions = make_session_factory(engine)
            with sessions.begin() as session:
                ids = seed_study(session)
                seed_participants(session, ids, args.rows, daytime_zone(utcnow()))
            analyze(sessions)
            settings = {
                **app.config,
                **fake_twilio().twilio_settings(fake),
                "DCT_SMS_DAILY_CAP": 1_000_000,
            }
            print(
                f"{args.rows:,} rows per run, fake Twilio latency {args.latency * 1000:.0f} ms, "
                f"at most {args.seconds:.0f} s per run",
                flush=True,
            )
            for threads in [int(t) for t in args.threads.split(",")]:
                run_threads(sessions, settings, ids, fake, threads, args)
            if args.process_threads:
                run_processes(url, sessions, settings, ids, fake, args)
            engine.dispose()
            app.extensions["db"].engine.dispose()
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
