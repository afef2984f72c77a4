"""Home-nurse visits at scale: 1,000 nurses and 1,000,000 visits in PostgreSQL.

Measures, through Flask's test client (JWT, scope, query, serialisation):
- GET /api/v1/me/visits for one nurse's week (p50 and p95 over --requests requests);
- GET /api/v1/visits/{id}/slots for a 5-day window across 50 eligible nurses (p50 and
  p95 over --slot-requests requests);
and prints the EXPLAIN (ANALYZE, BUFFERS) plans of the main query of each, as the app
sends them. Targets: p95 under 20 ms and 200 ms. Printed, not asserted.

The data: one study of 20 sites, 50 nurses per site (each delegated, Monday to Friday
08:00-18:00 Brussels, a few days off a year), 100,000 participants with ten home visits
each, every visit with its site's nurse, three a day per nurse over 333 days around
today (done in the past, scheduled ahead). Accounts that log in are made through the
services; the bulk is INSERT ... SELECT generate_series in the database.

    DATABASE_URL=postgresql+psycopg://root@127.0.0.1:5432/dct_bench_visits \\
        .venv/bin/python bench/visits_scale.py

The database is reset and migrated first: point it at a scratch database.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from common import PASSWORD, make_app, reset, staff, study_with_sites, timed
from flask import Flask
from sqlalchemy import event, text

from services import crypto
from services.actor import Role

SITES = 20
NURSES = 1_000
PARTICIPANTS = 100_000
DEFINITIONS = 10  # visits per participant: 1,000,000 in all
OFFICE_HOURS = [{"weekday": d, "start": "08:00", "end": "18:00"} for d in range(5)]


def seed(app: Flask, today: dt.date) -> dict[str, Any]:
    """The accounts that log in through the services, the bulk in SQL."""
    sessions = app.extensions["db"].sessions
    with sessions.begin() as session:
        study, sites = study_with_sites(session, "SCALE", "Scale", SITES)
        coordinator = staff(
            session,
            Role.COORDINATOR,
            "coordinator@example.org",
            "Anne Dubois",
            site_ids=[sites[0].id],
        )
        nurse = staff(
            session, Role.NURSE, "nurse@example.org", "Nora Peeters", site_ids=[sites[0].id]
        )
        ids = {"study": study.id, "coordinator": coordinator.id, "nurse": nurse.id}
        sql = _statements(ids, today)
        session.execute(
            text("CREATE TEMP TABLE bench_sites (s int PRIMARY KEY, id uuid) ON COMMIT DROP")
        )
        for index, site in enumerate(sites):
            session.execute(
                text("INSERT INTO bench_sites VALUES (:s, :id)"), {"s": index, "id": site.id}
            )
        for label, statements, params in sql:
            with timed(label):
                for statement in statements.split(";"):
                    if statement.strip():
                        session.execute(text(statement), params)
        target = session.execute(text("SELECT id FROM visits WHERE code = 'TARGET'")).scalar_one()
    with timed("ANALYZE"), app.extensions["db"].engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    return {**ids, "target": target}


def _statements(ids: dict[str, Any], today: dt.date) -> list[tuple[str, str, dict[str, Any]]]:
    """INSERT ... SELECT generate_series (statements separated by ';'), with one
    ciphertext per encrypted column: each row decrypts as the app's own rows do."""
    first_day = today - dt.timedelta(days=166)
    next_monday = today + dt.timedelta(days=7 - today.weekday())
    hours = str(OFFICE_HOURS).replace("'", '"')
    params = {
        "study": ids["study"],
        "coordinator": ids["coordinator"],
        "probe": ids["nurse"],
        "nurse_name": crypto.encrypt("Bench Nurse", "users.full_name"),
        "patient_name": crypto.encrypt("Bench Patient", "users.full_name"),
        "phone": crypto.encrypt("+32470000000", "users.phone"),
        "address": crypto.encrypt("Rue de la Loi 16, 1000 Bruxelles", "participants.address"),
        "first_day": first_day,
        "monday": next_monday,
        "hours": hours,
    }
    return [
        (
            "999 nurses, memberships, profiles, delegations, time off",
            """
            CREATE TEMP TABLE bench_nurses ON COMMIT DROP AS
                SELECT 0 AS n, CAST(:probe AS uuid) AS id
                UNION ALL SELECT n, gen_random_uuid() FROM generate_series(1, 999) AS n;
            INSERT INTO users (id, role, full_name, locale, timezone, is_active,
                               failed_logins, created_at)
                SELECT id, 'nurse', :nurse_name, 'en', 'Europe/Brussels', true, 0, now()
                FROM bench_nurses WHERE n > 0;
            INSERT INTO user_sites (user_id, site_id)
                SELECT b.id, s.id FROM bench_nurses b JOIN bench_sites s ON s.s = b.n % 20
                WHERE b.n > 0;
            INSERT INTO nurse_profiles (user_id, timezone, weekly_hours, updated_at)
                SELECT id, 'Europe/Brussels', CAST(:hours AS json), now() FROM bench_nurses;
            INSERT INTO delegations (id, nurse_id, study_id, delegated_by,
                                     training_valid_until, created_at)
                SELECT gen_random_uuid(), id, :study, :coordinator, DATE '2099-12-31', now()
                FROM bench_nurses;
            INSERT INTO nurse_time_off (id, nurse_id, start_at, end_at)
                SELECT gen_random_uuid(), b.id, t.day, t.day + interval '1 day'
                FROM bench_nurses b, generate_series(0, 3) AS k,
                LATERAL (SELECT (CAST(:first_day AS date) + (b.n * 7 + k * 83) % 333)::timestamp
                                AT TIME ZONE 'Europe/Brussels' AS day) AS t;
            """,
            params,
        ),
        (
            "100,000 participants and their accounts",
            """
            CREATE TEMP TABLE bench_participants ON COMMIT DROP AS
                SELECT p, gen_random_uuid() AS id, gen_random_uuid() AS user_id
                FROM generate_series(0, 99999) AS p;
            INSERT INTO users (id, role, full_name, phone, locale, timezone, is_active,
                               failed_logins, created_at)
                SELECT user_id, 'patient', :patient_name, :phone, 'nl', 'Europe/Brussels',
                       true, 0, now()
                FROM bench_participants;
            INSERT INTO participants (id, study_id, site_id, user_id, subject_code, status,
                                      consent_state, contact_allowed, baseline_date, address,
                                      created_at, updated_at)
                SELECT b.id, :study, s.id, b.user_id, 'SCALE-' || lpad(b.p::text, 6, '0'),
                       'enrolled', 'complete', true, :first_day, :address, now(), now()
                FROM bench_participants b JOIN bench_sites s ON s.s = b.p % 20;
            INSERT INTO visit_definitions (id, study_id, code, name, day, window_before,
                                           window_after, duration_minutes, location,
                                           procedures, created_at)
                SELECT gen_random_uuid(), :study, 'V' || k, 'Visit ' || k, k * 30, 3, 3, 60,
                       'home', CAST('["vitals", "ecg"]' AS json), now()
                FROM generate_series(0, 9) AS k
                UNION ALL
                SELECT gen_random_uuid(), :study, 'TARGET', 'Target', 0, 0, 4, 60, 'home',
                       CAST('["vitals"]' AS json), now();
            """,
            params,
        ),
        (
            "1,000,000 visits",
            """
            INSERT INTO visits (id, participant_id, study_id, site_id, definition_id, code,
                                name, location, procedures, duration_minutes, target_date,
                                window_start, window_end, status, nurse_id, start_at,
                                end_at, busy_until, created_at)
                SELECT gen_random_uuid(), b.id, :study, s.id, d.id, d.code, d.name, 'home',
                       d.procedures, 60, t.day, t.day - 3, t.day + 3,
                       CASE WHEN t.start_at < now() THEN 'completed' ELSE 'scheduled' END,
                       n.id, t.start_at, t.start_at + interval '60 minutes',
                       t.start_at + interval '90 minutes', now()
                FROM bench_participants b
                JOIN bench_sites s ON s.s = b.p % 20
                JOIN bench_nurses n ON n.n = b.p % 1000
                CROSS JOIN visit_definitions d
                                CROSS JOIN LATERAL (
                    SELECT CAST(:first_day AS date) + (CAST(substr(d.code, 2) AS int) * 100
                                                       + b.p / 1000) / 3 AS day,
                           (CAST(:first_day AS date) + (CAST(substr(d.code, 2) AS int) * 100
                                                        + b.p / 1000) / 3)::timestamp
                           AT TIME ZONE 'UTC'
                           + make_interval(hours => 8 + 3 * ((CAST(substr(d.code, 2) AS int)
                                                              * 100 + b.p / 1000) % 3))
                           AS start_at
                ) AS t
                WHERE d.study_id = :study AND d.code <> 'TARGET';
            """,
            params,
        ),
        (
            "the visit to book: a participant of site 0, window next Monday to Friday",
            """
            INSERT INTO visits (id, participant_id, study_id, site_id, definition_id, code,
                                name, location, procedures, duration_minutes, target_date,
                                window_start, window_end, status, created_at)
                SELECT gen_random_uuid(), p.id, :study, p.site_id, d.id, d.code, d.name,
                       'home', d.procedures, 60, :monday, :monday,
                       CAST(:monday AS date) + 4, 'planned', now()
                FROM participants p, visit_definitions d
                WHERE p.subject_code = 'SCALE-000000' AND d.code = 'TARGET';
            """,
            params,
        ),
    ]


def login(app: Flask, email: str) -> dict[str, str]:
    response = app.test_client().post(
        "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
    )
    assert response.status_code == 200, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['access_token']}"}


def measure(get: Callable[[], Any], requests: int, warm_up: int = 20) -> list[float]:
    for _ in range(warm_up):
        get()
    latencies = []
    for _ in range(requests):
        started = time.perf_counter()
        get()
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def report(label: str, latencies: list[float], target_ms: float) -> None:
    cuts = statistics.quantiles(latencies, n=100)
    p50, p95 = statistics.median(latencies), cuts[94]
    verdict = "meets" if p95 < target_ms else "MISSES"
    print(
        f"{label}: n={len(latencies)} p50={p50:.1f} ms p95={p95:.1f} ms "
        f"max={max(latencies):.1f} ms ({verdict} the p95 target of {target_ms:.0f} ms)"
    )


@contextmanager
def captured(app: Flask) -> Iterator[list[tuple[str, Any]]]:
    """The SQL the app sends, with its parameters."""
    engine = app.extensions["db"].engine
    statements: list[tuple[str, Any]] = []

    def listen(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", listen)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", listen)


def _short(sql: str) -> str:
    """Long id lists folded, for reading."""
    sql = re.sub(r"\(%\((\w+?)_1_1\)s::UUID(, %\(\w+\)s::UUID)+\)", r"(<\1 list>)", sql)
    return re.sub(
        r"'\{[0-9a-f-]{36}(,[0-9a-f-]{36})+\}'", lambda m: f"'{{<{m[0].count(',') + 1} ids>}}'", sql
    )


def explain(app: Flask, title: str, statement: str, parameters: Any) -> None:
    print(f"\n--- {title}\n{_short(statement.strip())}\n")
    with app.extensions["db"].engine.connect() as conn:
        plan = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
        for (line,) in plan:
            print(f"    {_short(line)}")


def only(statements: list[tuple[str, Any]], *markers: str) -> tuple[str, Any]:
    (found,) = [s for s in statements if all(m in s[0] for m in markers)]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--slot-requests", type=int, default=100)
    parser.add_argument("--skip-seed", action="store_true", help="reuse the seeded database")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgresql"):
        sys.exit("set DATABASE_URL to a scratch PostgreSQL database")
    today = dt.datetime.now(dt.UTC).date()
    if not args.skip_seed:
        print("seeding", flush=True)
        started = time.perf_counter()
        reset(url)
    app = make_app(url)
    if args.skip_seed:
        with app.extensions["db"].sessions() as session:
            row = session.execute(
                text(
                    "SELECT v.id, u.id FROM visits v, users u "
                    "WHERE v.code = 'TARGET' AND u.role = 'nurse' AND u.password_hash IS NOT NULL"
                )
            ).one()
        ids = {"target": row[0], "nurse": row[1]}
    else:
        ids = seed(app, today)
        print(f"  seeded in {time.perf_counter() - started:.0f} s")
    with app.extensions["db"].engine.connect() as conn:
        counts = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM visits), "
                "(SELECT count(*) FROM users WHERE role = 'nurse'), "
                "(SELECT count(*) FROM visits WHERE nurse_id = :nurse)"
            ),
            {"nurse": ids["nurse"]},
        ).one()
    print(
        f"visits: {counts[0]:,}, nurses: {counts[1]:,}, visits of the measured nurse: {counts[2]}"
    )

    client = app.test_client()
    monday = today + dt.timedelta(days=7 - today.weekday())
    week = {
        "from": f"{monday.isoformat()}T00:00:00+01:00",
        "to": f"{(monday + dt.timedelta(days=7)).isoformat()}T00:00:00+01:00",
    }
    nurse = login(app, "nurse@example.org")
    coordinator = login(app, "coordinator@example.org")

    def my_week() -> Any:
        response = client.get("/api/v1/me/visits", query_string=week, headers=nurse)
        assert response.status_code == 200, response.get_json()
        return response

    def slots() -> Any:
        response = client.get(f"/api/v1/visits/{ids['target']}/slots", headers=coordinator)
        assert response.status_code == 200, response.get_json()
        return response

    visits_in_week, found = len(my_week().get_json()), slots().get_json()["slots"]
    nurses_offered = len({s["nurse_id"] for s in found})
    print(f"one nurse's week: {visits_in_week} visits")
    print(f"slot search: {len(found)} slots of {nurses_offered} nurses over 5 days\n")
    report("GET /me/visits (a week)", measure(my_week, args.requests), 20)
    report("GET /visits/{id}/slots (5 days, 50 nurses)", measure(slots, args.slot_requests), 200)

    with captured(app) as statements:
        my_week()
    explain(app, "GET /me/visits: the visits query", *only(statements, "FROM visits", "JOIN"))
    with captured(app) as statements:
        slots()
    explain(
        app, "slots: busy ranges of the eligible nurses", *only(statements, "visits.busy_until >")
    )
    explain(app, "slots: time off of the eligible nurses", *only(statements, "FROM nurse_time_off"))
    explain(app, "slots: the eligible nurses", *only(statements, "JOIN delegations"))
    app.extensions["db"].engine.dispose()


if __name__ == "__main__":
    main()
