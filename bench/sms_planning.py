"""Planning a day of SMS reminders for 100,000 enrolled participants in PostgreSQL:
seconds, rows planned, rows per second and the process's peak memory growth.
Printed, not asserted.

The day is D, two local days from now (Brussels): every participant has a daily ePRO
window on D (09:00-21:00, so an "open" and a "closing" reminder), one in --visit-every
(default 10) a home visit booked on D between 09:00 and 17:00 with one of --nurses
nurses (up to five each). Measured, each in one transaction:
- `sms_rules.plan_due` as the `plan` job runs it on the eve of D (D-1 10:00): the ePRO
  reminders and the nurses' next-day lists;
- the same job once more with nothing new (it runs every minute, so this is its
  steady-state cost while the day's instances are in sight);
- `sms_rules.plan_visit_reminders` for every booked visit, as each booking calls it
  (the 24 h and morning reminders), per visit.
Memory is `ru_maxrss` (the process's peak RSS) before and after each step; seeding is
timed apart. `--profile` plans the ePRO/nurse day again under cProfile (the planned
rows deleted first) and prints where the time goes; `--tracemalloc` reports Python's
own allocation peak of a plan_due run (slower).

The data: one study of 20 sites; accounts made through the services for the staff,
the bulk (users with an encrypted phone, participants, instances, nurses, visits) as
INSERT ... SELECT generate_series in the database, one ciphertext per encrypted
column, so every row decrypts as the app's own rows do.

    .venv/bin/python bench/sms_planning.py [--participants 100000]

It creates a scratch PostgreSQL database on the server of --postgres (default: root
at 127.0.0.1:5432) and drops it at the end (--keep keeps it).
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import pstats
import resource
import time
import tracemalloc
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from common import ADMIN, make_app, reset, scratch_database, staff, study_with_sites, timed
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from services import crypto
from services.actor import Role
from services.db import utcnow
from services.models import Questionnaire, QuestionnaireStatus, SmsMessage, Visit
from services.notifications import planning as sms_rules

SITES = 20
ZONE = "Europe/Brussels"
OPENS, CLOSES = dt.time(9, 0), dt.time(21, 0)
DIARY = [{"link_id": "q1", "type": "nrs", "required": True, "text": {"en": "Pain, 0-10"}}]


def local(day: dt.date, time: dt.time, zone: str = ZONE) -> dt.datetime:
    return dt.datetime.combine(day, time, tzinfo=ZoneInfo(zone)).astimezone(dt.UTC)


def peak_rss_mib() -> float:
    """The process's peak resident set so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(label: str, call: Callable[[], Any], rows: Callable[[], int]) -> tuple[float, Any]:
    """Prints seconds, rows (counted by `rows` afterwards), rows/s and the growth of the
    peak RSS; returns the seconds and what `call` returned."""
    before = peak_rss_mib()
    started = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - started
    count = rows()
    print(
        f"{label}: {seconds:.2f} s, {count:,} rows, {count / seconds:,.0f} rows/s, "
        f"peak RSS {before:.0f} -> {peak_rss_mib():.0f} MiB (+{peak_rss_mib() - before:.0f})",
        flush=True,
    )
    return seconds, result


# --- seeding (shared with bench/sms_dispatch.py) -----------------------------------------


def seed_study(session: Session) -> dict[str, Any]:
    """A study of SITES sites with a coordinator and a published daily diary; the
    sites' index table `bench_sites` (s, id) lives for the transaction."""
    study, sites = study_with_sites(session, "SMS", "SMS scale", SITES)
    author = staff(session, Role.COORDINATOR, "coordinator@example.org", site_ids=[sites[0].id])
    diary = Questionnaire(
        id=uuid.uuid4(),
        study_id=study.id,
        code="DIARY",
        version="1.0",
        status=QuestionnaireStatus.PUBLISHED.value,
        title={"en": "Daily diary"},
        items=DIARY,
        schedule={"type": "daily", "window": {"opens": "09:00", "closes": "21:00"}},
        created_by=author.id,
        published_by=author.id,
        published_at=utcnow(),
    )
    session.add(diary)
    session.flush()
    return {"study": study.id, "diary": diary.id, "sites": [site.id for site in sites]}


def seed_participants(session: Session, ids: dict[str, Any], count: int, zone: str) -> None:
    """`count` enrolled participants (subject codes SMS-000000...), each with a patient
    account in `zone` with an encrypted phone."""
    session.execute(text("CREATE TEMP TABLE IF NOT EXISTS bench_sites (s int, id uuid)"))
    session.execute(text("TRUNCATE bench_sites"))
    for index, site_id in enumerate(ids["sites"]):
        session.execute(
            text("INSERT INTO bench_sites VALUES (:s, :id)"), {"s": index, "id": site_id}
        )
    params = {
        "study": ids["study"],
        "count": count,
        "zone": zone,
        "name": crypto.encrypt("Bench Patient", "users.full_name"),
        "phone": crypto.encrypt("+32470000000", "users.phone"),
        "today": dt.date.today(),
    }
    for statement in PARTICIPANTS.split(";"):
        session.execute(text(statement), params)


PARTICIPANTS = """
CREATE TEMP TABLE bench_participants ON COMMIT DROP AS
    SELECT p, gen_random_uuid() AS id, gen_random_uuid() AS user_id
    FROM generate_series(0, :count - 1) AS p;
INSERT INTO users (id, role, full_name, phone, locale, timezone, is_active,
                   failed_logins, created_at)
    SELECT user_id, 'patient', :name, :phone, 'en', :zone, true, 0, now()
    FROM bench_participants;
INSERT INTO participants (id, study_id, site_id, user_id, subject_code, status,
                          consent_state, contact_allowed, baseline_date,
                          created_at, updated_at)
    SELECT b.id, :study, s.id, b.user_id, 'SMS-' || lpad(b.p::text, 6, '0'), 'enrolled',
           'complete', true, :today, now(), now()
    FROM bench_participants b JOIN bench_sites s ON s.s = b.p % 20
"""


def seed_instances(
    session: Session, ids: dict[str, Any], slot: str, opens_at: dt.datetime, closes_at: dt.datetime
) -> None:
    """One scheduled diary instance per participant of the study, in this window."""
    session.execute(
        text(
            """
            INSERT INTO epro_instances (id, participant_id, study_id, site_id,
                                        questionnaire_id, slot, local_date, opens_at,
                                        closes_at, status, created_at)
                SELECT gen_random_uuid(), p.id, p.study_id, p.site_id, :diary, :slot,
                       CAST(:opens AS timestamptz)::date, :opens, :closes, 'scheduled', now()
                FROM participants p WHERE p.study_id = :study
            """
        ),
        {
            "study": ids["study"],
            "diary": ids["diary"],
            "slot": slot,
            "opens": opens_at,
            "closes": closes_at,
        },
    )


def seed_visits(
    session: Session, ids: dict[str, Any], day: dt.date, every: int, nurses: int
) -> None:
    """A home visit booked on `day` for one participant in `every`, spread over
    `nurses` nurses, five a day each at most (09:00, 11:00, ... 17:00 Brussels)."""
    params = {
        "study": ids["study"],
        "day": day,
        "every": every,
        "nurses": nurses,
        "zone": ZONE,
        "name": crypto.encrypt("Bench Nurse", "users.full_name"),
        "phone": crypto.encrypt("+32470000001", "users.phone"),
    }
    for statement in VISITS.split(";"):
        session.execute(text(statement), params)


VISITS = """
CREATE TEMP TABLE bench_nurses ON COMMIT DROP AS
    SELECT n, gen_random_uuid() AS id FROM generate_series(0, :nurses - 1) AS n;
INSERT INTO users (id, role, full_name, phone, locale, timezone, is_active,
                   failed_logins, created_at)
    SELECT id, 'nurse', :name, :phone, 'en', :zone, true, 0, now() FROM bench_nurses;
INSERT INTO visit_definitions (id, study_id, code, name, day, window_before, window_after,
                               duration_minutes, location, procedures, created_at)
    VALUES (gen_random_uuid(), :study, 'HOME', 'Home visit', 0, 3, 3, 60, 'home',
            CAST('["vitals"]' AS json), now());
INSERT INTO visits (id, participant_id, study_id, site_id, definition_id, code, name,
                    location, procedures, duration_minutes, target_date, window_start,
                    window_end, status, nurse_id, start_at, end_at, busy_until, created_at)
    SELECT gen_random_uuid(), p.id, p.study_id, p.site_id, d.id, d.code, d.name, 'home',
           d.procedures, 60, :day, :day, :day, 'scheduled', n.id, t.start_at,
           t.start_at + interval '60 minutes', t.start_at + interval '90 minutes', now()
    FROM participants p
    JOIN visit_definitions d ON d.study_id = p.study_id
    CROSS JOIN LATERAL (SELECT CAST(substr(p.subject_code, 5) AS int) AS k) AS c
    JOIN bench_nurses n ON n.n = (c.k / :every) % :nurses
    CROSS JOIN LATERAL (
        SELECT (CAST(:day AS date) + make_time(9 + 2 * ((c.k / :every / :nurses) % 5), 0, 0))
               AT TIME ZONE :zone AS start_at
    ) AS t
    WHERE p.study_id = :study AND c.k % :every = 0
"""


def analyze(sessions: sessionmaker[Session]) -> None:
    with timed("ANALYZE"), sessions.begin() as session:
        session.execute(text("ANALYZE"))


# --- measuring ---------------------------------------------------------------------------


def outbox_rows(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(SmsMessage)) or 0


def planned_by_template(sessions: sessionmaker[Session]) -> dict[str, int]:
    with sessions() as session:
        found = session.execute(
            select(SmsMessage.template, func.count()).group_by(SmsMessage.template)
        )
        return {template: count for template, count in sorted(found.all())}


def plan_day(sessions: sessionmaker[Session], now: dt.datetime) -> int:
    with sessions.begin() as session:
        return sms_rules.plan_due(session, ADMIN, now)


def plan_bookings(sessions: sessionmaker[Session]) -> int:
    """Each booked visit's reminders, as `visits.book` plans them: visit by visit."""
    with sessions.begin() as session:
        visits = session.scalars(select(Visit).order_by(Visit.start_at)).all()
        for visit in visits:
            sms_rules.plan_visit_reminders(session, visit)
        return len(visits)


def forget_day(sessions: sessionmaker[Session]) -> None:
    """The ePRO and nurse rows gone, so the day can be planned again as new."""
    with sessions.begin() as session:
        session.execute(
            text(
                "DELETE FROM sms_outbox WHERE template IN ('epro_open', 'epro_closing', "
                "'nurse_next_day')"
            )
        )


def profile(sessions: sessionmaker[Session], now: dt.datetime, lines: int) -> None:
    forget_day(sessions)
    profiler = cProfile.Profile()
    profiler.enable()
    plan_day(sessions, now)
    profiler.disable()
    print("\n--- plan_due under cProfile (cumulative)")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(lines)
    print("--- plan_due under cProfile (own time)")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(lines)


def traced(sessions: sessionmaker[Session], now: dt.datetime, lines: int = 10) -> None:
    """Python's own allocation peak while planning the day anew, and where the memory
    still held at the end of the run was allocated."""
    forget_day(sessions)
    tracemalloc.start(5)
    plan_day(sessions, now)
    peak = tracemalloc.get_traced_memory()[1]
    top = tracemalloc.take_snapshot().statistics("lineno")[:lines]
    tracemalloc.stop()
    print(f"\nplan_due under tracemalloc: peak {peak / 2**20:.0f} MiB of Python objects")
    for stat in top:
        print(f"  {stat}")


def run(args: argparse.Namespace, url: str) -> None:
    reset(url)
    app = make_app(url)
    sessions = app.extensions["db"].sessions
    day = dt.datetime.now(ZoneInfo(ZONE)).date() + dt.timedelta(days=2)
    eve = local(day - dt.timedelta(days=1), dt.time(10, 0))
    print(f"seeding: {args.participants:,} participants, the day is {day}", flush=True)
    started = time.perf_counter()
    with sessions.begin() as session:
        ids = seed_study(session)
        with timed(f"{args.participants:,} participants and their accounts"):
            seed_participants(session, ids, args.participants, ZONE)
        with timed(f"{args.participants:,} ePRO instances"):
            seed_instances(session, ids, day.isoformat(), local(day, OPENS), local(day, CLOSES))
        with timed(f"visits for 1 in {args.visit_every}, {args.nurses:,} nurses"):
            seed_visits(session, ids, day, args.visit_every, args.nurses)
    analyze(sessions)
    print(f"  seeded in {time.perf_counter() - started:.0f} s\n", flush=True)

    rows = partial(outbox_rows, sessions)
    new = measure(
        f"plan_due on the eve ({eve:%Y-%m-%d %H:%M} UTC)", partial(plan_day, sessions, eve), rows
    )[1]
    print(f"  new rows reported: {new:,}; by template: {planned_by_template(sessions)}")
    again = partial(plan_day, sessions, eve + dt.timedelta(minutes=1))
    print(
        f"  new rows: {measure('plan_due again a minute later, nothing new', again, lambda: 0)[1]}"
    )
    before = rows()
    seconds, visits = measure(
        "plan_visit_reminders, visit by visit",
        partial(plan_bookings, sessions),
        lambda: rows() - before,
    )
    print(f"  {visits:,} visits, {seconds / visits * 1000:.2f} ms per visit")
    print(f"  all rows by template: {planned_by_template(sessions)}")
    if args.profile:
        profile(sessions, eve, args.profile)
    if args.tracemalloc:
        traced(sessions, eve)
    app.extensions["db"].engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default="postgresql+psycopg://root@127.0.0.1:5432/postgres")
    parser.add_argument("--participants", type=int, default=100_000)
    parser.add_argument("--visit-every", type=int, default=10)
    parser.add_argument("--nurses", type=int, default=2_000)
    parser.add_argument("--profile", type=int, default=0, metavar="LINES")
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()
    with scratch_database(args.postgres, "sms_planning", keep=args.keep) as url:
        run(args, url)


if __name__ == "__main__":
    main()
