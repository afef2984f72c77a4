"""Consent signatures per second through the HTTP API, with the production password
hashing (Argon2id, RFC 9106 low-memory profile) and with the cheap test profile
(DCT_PASSWORD_HASH_CHEAP), and the time of one password verification alone: every
signature re-authenticates its signer, so that verification is what dominates.

Each signature is a real request through Flask's test client (JWT, validation,
re-authentication, the checks, the insert, the audit event, the commit): first
every participant signs, then the investigator countersigns each consent, which
completes it.

    .venv/bin/python bench/signing_throughput.py --participants 40
    DATABASE_URL=postgresql+psycopg://root@127.0.0.1:5432/dct_bench \\
        .venv/bin/python bench/signing_throughput.py --threads 4

The database is reset and migrated first: point it at a scratch database.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from dataclasses import dataclass

from common import PASSWORD, make_app, reset
from consent_setup import add_patient, make_trial
from flask import Flask

from services import passwords

DEFAULT_URL = "sqlite:////tmp/dct_bench_signing.sqlite3"
BODY = "## Why this study\n\nWe study home monitoring.\n\n## Risks\n\nFew."
CLAUSES = {"future_research": "My samples may be used for future research."}


@dataclass
class Signer:
    headers: dict[str, str]
    full_name: str
    participant_id: str


@dataclass
class Run:
    signatures: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.signatures / self.seconds


def login(app: Flask, email: str) -> dict[str, str]:
    response = app.test_client().post(
        "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
    )
    assert response.status_code == 200, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['access_token']}"}


def sign_all(app: Flask, url: str, signers: list[Signer], role: str, sha: str, threads: int) -> Run:
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def work(share: list[Signer]) -> None:
        client = app.test_client()
        for signer in share:
            body = {
                "participant_id": signer.participant_id,
                "role": role,
                "full_name": signer.full_name,
                "password": PASSWORD,
                "document_sha256": sha,
                "clause_choices": {"future_research": True} if role == "participant" else {},
            }
            started = time.perf_counter()
            response = client.post(url, json=body, headers=signer.headers)
            elapsed = time.perf_counter() - started
            with lock:
                if response.status_code != 201:
                    failures.append(f"{response.status_code} {response.get_json()}")
                    return
                latencies.append(elapsed)

    workers = [threading.Thread(target=work, args=(signers[i::threads],)) for i in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if failures:
        raise SystemExit(f"a signature failed: {failures[0]}")
    return Run(len(signers), time.perf_counter() - started, latencies)


def verify_alone(repeats: int) -> float:
    """Median seconds of one password verification with the configured profile."""
    stored = passwords.hash_password(PASSWORD)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        assert passwords.verify_password(stored, PASSWORD)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


@dataclass
class Result:
    label: str
    total: int
    seconds: float
    participant_rate: float
    investigator_rate: float
    latencies: list[float]
    verify: float


def bench(url: str, cheap: bool, participants: int, threads: int) -> Result:
    reset(url)
    app = make_app(url, cheap_hashing=cheap)
    with app.extensions["db"].sessions() as session:
        trial = make_trial(session, BODY, CLAUSES)
        patients = [add_patient(session, trial, f"Patient Number{i}") for i in range(participants)]
        session.commit()
        document_id, sha = str(trial.document.id), trial.document.content_sha256
        coordinator = (trial.coordinator.email or "", trial.coordinator.full_name)
        people = [(p.user.email or "", p.user.full_name, str(p.id)) for p in patients]
    coordinator_headers = login(app, coordinator[0])
    as_participants = [Signer(login(app, email), name, pid) for email, name, pid in people]
    as_investigator = [Signer(coordinator_headers, coordinator[1], pid) for _, _, pid in people]
    url_path = f"/api/v1/consent-documents/{document_id}/signatures"

    first = sign_all(app, url_path, as_participants, "participant", sha, threads)
    second = sign_all(app, url_path, as_investigator, "investigator", sha, threads)
    # Right after the requests, as many verifications: the same machine load for both.
    verify = verify_alone(first.signatures + second.signatures)
    app.extensions["db"].engine.dispose()
    return Result(
        label="cheap test profile (CHEAPEST)"
        if cheap
        else "production Argon2id (RFC 9106 low-memory)",
        total=first.signatures + second.signatures,
        seconds=first.seconds + second.seconds,
        participant_rate=first.rate,
        investigator_rate=second.rate,
        latencies=first.latencies + second.latencies,
        verify=verify,
    )


def report(result: Result, threads: int) -> None:
    median = statistics.median(result.latencies)
    print(f"{result.label}, {threads} thread(s):")
    print(
        f"  {result.total} signatures in {result.seconds:.2f} s: "
        f"{result.total / result.seconds:.1f} signatures/s (participant "
        f"{result.participant_rate:.1f}/s, investigator countersign "
        f"{result.investigator_rate:.1f}/s)"
    )
    print(
        f"  a signature request: median {median * 1000:.1f} ms, "
        f"p95 {statistics.quantiles(result.latencies, n=20)[-1] * 1000:.1f} ms"
    )
    print(
        f"  one password verification alone: median {result.verify * 1000:.2f} ms "
        f"= {result.verify / median:.0%} of a signature request"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", DEFAULT_URL)
    print(f"database: {url.split(':')[0]}, {args.participants} consents (2 signatures each)")
    production = bench(url, False, args.participants, args.threads)
    report(production, args.threads)
    cheap = bench(url, True, args.participants, args.threads)
    report(cheap, args.threads)
    rest = statistics.median(cheap.latencies)
    print(
        f"what dominates: in production a signature request is "
        f"{statistics.median(production.latencies) * 1000:.0f} ms, of which the password "
        f"verification is about {production.verify * 1000:.0f} ms and everything else (the "
        f"cheap-profile request) about {rest * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
