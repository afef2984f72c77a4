"""The ePRO compliance report for 10,000 participants x 90 daily questionnaires
(900,000 instances) in PostgreSQL. Target: under 2 s. Printed, not asserted.

Times the service call (`services.epro.reports.compliance`, the one GROUP BY and the
Python totals) for the whole study as a monitor and for one site as its coordinator,
then the full GET /studies/{id}/reports/epro-compliance through Flask's test client
as JSON and as CSV (JWT, scope, query, serialisation), each over --runs runs (min and
median); prints the study's figures and the query plan as the app sends it.

The data: one study of 20 sites; participants enrolled over the last 120 days
(baseline = today - p % 120), one daily diary (days 1..90, window 18:00-23:59
Brussels). Windows whose grace has ended were answered on time (80 %), late (7 %),
declined (3 %) or missed (10 %); open ones half answered; 2 % of the participants
withdrew, their future instances cancelled. The accounts that log in are made
through the services; the bulk is INSERT ... SELECT generate_series in the database.

    DATABASE_URL=postgresql+psycopg://root@127.0.0.1:5432/dct_bench_epro \\
        .venv/bin/python bench/epro_compliance.py

The database is reset and migrated first: point it at a scratch database.
`--index "CREATE INDEX ..."` adds an index to the scratch database before measuring
(to try one; the schema itself comes only from migrations).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from common import PASSWORD, make_app, reset, staff, study_with_sites, timed
from flask import Flask
from sqlalchemy import event, text

from services import crypto
from services.actor import Actor, Role
from services.db import utcnow
from services.epro import reports as epro_reports
from services.models import Questionnaire, QuestionnaireStatus

SITES = 20
GRACE = dt.timedelta(minutes=1440)
DIARY_ITEMS = [
    {
        "link_id": "q1",
        "type": "nrs",
        "required": True,
        "text": {"en": "Breathlessness today, 0-10"},
    }
]


def seed(app: Flask, participants: int, days: int) -> None:
    sessions = app.extensions["db"].sessions
    with sessions.begin() as session:
        study, sites = study_with_sites(session, "EPRO", "ePRO scale", SITES)
        staff(session, Role.MONITOR, "monitor@example.org", study_ids=[study.id])
        author = staff(session, Role.COORDINATOR, "coordinator@example.org", site_ids=[sites[0].id])
        diary = Questionnaire(
            id=uuid.uuid4(),
            study_id=study.id,
            code="DIARY",
            version="1.0",
            status=QuestionnaireStatus.PUBLISHED.value,
            title={"en": "Daily diary"},
            items=DIARY_ITEMS,
            schedule={
                "type": "daily",
                "start_day": 1,
                "end_day": days,
                "window": {"opens": "18:00", "closes": "23:59", "close_after_days": 0},
            },
            created_by=author.id,
            published_by=author.id,
            published_at=utcnow(),
        )
        session.add(diary)
        session.flush()
        session.execute(
            text("CREATE TEMP TABLE bench_sites (s int PRIMARY KEY, id uuid) ON COMMIT DROP")
        )
        for index, site in enumerate(sites):
            session.execute(
                text("INSERT INTO bench_sites VALUES (:s, :id)"), {"s": index, "id": site.id}
            )
        params = {
            "study": study.id,
            "diary": diary.id,
            "participants": participants,
            "days": days,
            "now": utcnow(),
            "ended": utcnow() - GRACE,
            "today": dt.date.today(),
            "patient_name": crypto.encrypt("Bench Patient", "users.full_name"),
            "phone": crypto.encrypt("+32470000000", "users.phone"),
        }
        for label, statements in STATEMENTS:
            with timed(label.format(**params)):
                for statement in statements.split(";"):
                    if statement.strip():
                        session.execute(text(statement), params)
    with timed("VACUUM ANALYZE"), app.extensions["db"].engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))


STATEMENTS = [
    (
        "{participants:,} participants and their accounts",
        """
        CREATE TEMP TABLE bench_participants ON COMMIT DROP AS
            SELECT p, gen_random_uuid() AS id, gen_random_uuid() AS user_id
            FROM generate_series(0, :participants - 1) AS p;
        INSERT INTO users (id, role, full_name, phone, locale, timezone, is_active,
                           failed_logins, created_at)
            SELECT user_id, 'patient', :patient_name, :phone, 'en', 'Europe/Brussels',
                   true, 0, now()
            FROM bench_participants;
        INSERT INTO participants (id, study_id, site_id, user_id, subject_code, status,
                                  consent_state, contact_allowed, baseline_date,
                                  created_at, updated_at)
            SELECT b.id, :study, s.id, b.user_id, 'EPRO-' || lpad(b.p::text, 6, '0'),
                   CASE WHEN b.p % 50 = 0 THEN 'withdrawn' ELSE 'enrolled' END,
                   'complete', true, CAST(:today AS date) - b.p % 120, now(), now()
            FROM bench_participants b JOIN bench_sites s ON s.s = b.p % 20
        """,
    ),
    (
        "{participants:,} x {days} instances",
        """
        INSERT INTO epro_instances (id, participant_id, study_id, site_id,
                                    questionnaire_id, slot, local_date, opens_at,
                                    closes_at, status, timeliness, created_at)
            SELECT gen_random_uuid(), p.id, :study, p.site_id, :diary,
                   to_char(t.day, 'YYYY-MM-DD'), t.day, t.opens_at, t.closes_at,
                   CASE WHEN t.closes_at <= :ended THEN
                            CASE WHEN t.r < 87 THEN 'completed'
                                 WHEN t.r < 90 THEN 'declined' ELSE 'missed' END
                        WHEN t.opens_at <= :now AND t.r < 50 THEN 'completed'
                        WHEN t.opens_at > :now AND p.status = 'withdrawn' THEN 'cancelled'
                        ELSE 'scheduled' END,
                   CASE WHEN t.closes_at <= :ended AND t.r < 80 THEN 'on_time'
                        WHEN t.closes_at <= :ended AND t.r < 87 THEN 'late'
                        WHEN t.closes_at > :ended AND t.opens_at <= :now AND t.r < 50
                            THEN 'on_time' END,
                   now()
            FROM participants p
            CROSS JOIN generate_series(1, :days) AS d
            CROSS JOIN LATERAL (
                SELECT p.baseline_date + d AS day,
                       (p.baseline_date + d + time '18:00') AT TIME ZONE 'Europe/Brussels'
                           AS opens_at,
                       (p.baseline_date + d + time '23:59') AT TIME ZONE 'Europe/Brussels'
                           AS closes_at,
                       abs(hashtext(p.subject_code || ':' || d)) % 100 AS r
            ) AS t
            WHERE p.study_id = :study
        """,
    ),
]


def ids(app: Flask) -> dict[str, Any]:
    with app.extensions["db"].engine.connect() as conn:
        study_id, site_id = conn.execute(
            text("SELECT s.study_id, s.id FROM sites s WHERE s.code = 'S00'")
        ).one()
        count = conn.execute(text("SELECT count(*) FROM epro_instances")).scalar_one()
    return {"study": study_id, "site": site_id, "instances": count}


def runs(call: Callable[[], Any], times: int) -> tuple[float, float, Any]:
    """(min, median) seconds over `times` calls after one warm-up, and the last result."""
    result = call()
    seconds = []
    for _ in range(times):
        started = time.perf_counter()
        result = call()
        seconds.append(time.perf_counter() - started)
    return min(seconds), statistics.median(seconds), result


def show(label: str, best: float, median: float) -> None:
    verdict = "meets" if median < 2 else "MISSES"
    print(f"{label:<58} min {best * 1000:7.0f} ms  median {median * 1000:7.0f} ms  ({verdict})")


def service_call(app: Flask, actor: Actor, study_id: uuid.UUID) -> Callable[[], Any]:
    def call() -> epro_reports.Report:
        with app.extensions["db"].sessions() as session:
            return epro_reports.compliance(session, actor, study_id, now=utcnow(), grace=GRACE)

    return call


def http_call(app: Flask, headers: dict[str, str], study_id: uuid.UUID) -> Callable[[], Any]:
    client = app.test_client()

    def call() -> Any:
        response = client.get(
            f"/api/v1/studies/{study_id}/reports/epro-compliance", headers=headers
        )
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
        return response

    return call


def login(app: Flask, email: str) -> dict[str, str]:
    response = app.test_client().post(
        "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
    )
    assert response.status_code == 200, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['access_token']}"}


def print_figures(report: epro_reports.Report) -> None:
    total = report.total
    print(
        f"\nstudy {report.study_code}: {total.participants:,} participants, "
        f"expected {total.expected:,}, on time {total.completed_on_time:,}, "
        f"late {total.completed_late:,}, declined {total.declined:,}, "
        f"missed {total.missed:,}, pending {total.pending:,}, "
        f"compliance {total.compliance_rate}"
    )
    for site in report.sites[:3]:
        print(
            f"  site {site.site_code}: {site.participants} participants, expected "
            f"{site.expected:,}, compliance {site.compliance_rate}"
        )
    print(f"  ... {len(report.sites)} sites\n")


def explain(app: Flask, actor: Actor, study_id: uuid.UUID) -> None:
    engine = app.extensions["db"].engine
    captured: list[tuple[str, Any]] = []

    def listen(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "GROUP BY" in statement:
            captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", listen)
    try:
        service_call(app, actor, study_id)()
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    ((statement, parameters),) = captured
    print(f"\n--- the report query\n{statement.strip()}\n")
    with engine.connect() as conn:
        for (line,) in conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters):
            print(f"    {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--skip-seed", action="store_true", help="reuse the seeded database")
    parser.add_argument("--index", help="a CREATE INDEX statement to try before measuring")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgresql"):
        sys.exit("set DATABASE_URL to a scratch PostgreSQL database")
    if not args.skip_seed:
        reset(url)
    app = make_app(url)
    if not args.skip_seed:
        print("seeding", flush=True)
        seed(app, args.participants, args.days)
    if args.index:
        with timed(args.index), app.extensions["db"].engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(text(args.index))
            conn.execute(text("VACUUM ANALYZE epro_instances"))
    found = ids(app)
    study_id = found["study"]
    print(f"instances: {found['instances']:,}; {args.runs} runs each after a warm-up\n")
    monitor = Actor(user_id=None, role=Role.MONITOR, study_ids=frozenset({study_id}))
    coordinator = Actor(
        user_id=None,
        role=Role.COORDINATOR,
        site_ids=frozenset({found["site"]}),
        study_ids=frozenset({study_id}),
    )
    best, median, report = runs(service_call(app, monitor, study_id), args.runs)
    show("service, whole study (monitor)", best, median)
    show(
        "service, one site (coordinator)",
        *runs(service_call(app, coordinator, study_id), args.runs)[:2],
    )
    monitor_headers = login(app, "monitor@example.org")
    show(
        "GET .../epro-compliance, JSON (monitor)",
        *runs(http_call(app, monitor_headers, study_id), args.runs)[:2],
    )
    csv_headers = {**monitor_headers, "Accept": "text/csv"}
    best_csv, median_csv, response = runs(http_call(app, csv_headers, study_id), args.runs)
    show("GET .../epro-compliance, CSV (monitor)", best_csv, median_csv)
    print(f"  CSV body: {len(response.get_data()) / 1024:.0f} KiB")
    print_figures(report)
    explain(app, monitor, study_id)
    app.extensions["db"].engine.dispose()


if __name__ == "__main__":
    main()
