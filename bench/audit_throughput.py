"""How many audited transactions per second the audit chains allow.

Each transaction appends one event, as every audited change does. Compares events
spread over per-participant chains (how the service records them) with every event
forced into one global chain (one head row that every writer locks).

    DATABASE_URL=postgresql+psycopg://root@127.0.0.1:5432/dct_bench \\
        .venv/bin/python bench/audit_throughput.py --threads 8 --seconds 10

The database is reset and migrated first: point it at a scratch database.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
import uuid

from common import reset

from services import crypto
from services.actor import Actor
from services.audit import chain as audit
from services.audit import integrity
from services.audit import key as audit_key
from services.db import make_engine, make_session_factory


def run(url: str, threads: int, seconds: float, shared_chain: bool) -> float:
    engine = make_engine(url, pool_size=threads, max_overflow=0)
    sessions = make_session_factory(engine)
    participants = [uuid.uuid4() for _ in range(threads * 50)]
    done = [0] * threads
    stop = time.monotonic() + seconds
    actor = Actor.system("bench")

    def worker(index: int) -> None:
        while time.monotonic() < stop:
            participant = participants[(done[index] * threads + index) % len(participants)]
            subject = (
                audit.Subject()  # the global chain
                if shared_chain
                else audit.Subject(participant_id=participant)
            )
            with sessions.begin() as session:
                audit.record(
                    session,
                    actor,
                    "bench.event",
                    entity_type="participant",
                    entity_id=participant,
                    subject=subject,
                    after={"n": done[index]},
                )
            done[index] += 1

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    started = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.monotonic() - started
    engine.dispose()
    return sum(done) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "sqlite:////tmp/dct_bench.sqlite3")
    # Events are HMAC-chained under the audit key and their payloads encrypted: fresh
    # keys for this scratch trail, as the app would take them from its settings.
    crypto.configure(os.urandom(32))
    audit_key.configure(os.urandom(32))
    reset(url)
    print(f"database: {make_engine(url).dialect.name}, {args.seconds}s a run")
    for threads in sorted({1, args.threads}):
        for label, shared in (("per-participant chains", False), ("one global chain", True)):
            rate = run(url, threads, args.seconds, shared)
            print(f"{threads:>2} threads, {label:<24} {rate:8.0f} audited transactions/s")
    with make_engine(url).connect() as conn:
        session = make_session_factory(conn.engine)()
        checked, broken = integrity.verify(session)
        print(
            f"audit verify: {checked} events, {'BROKEN ' + broken.problem if broken else 'intact'}"
        )


if __name__ == "__main__":
    main()
