"""The APScheduler set-up: it only ticks; the database holds every job's state.

Jobs are module-level functions with stable ids, each run through `run_job`, which
opens its own session, commits or rolls back, and logs. `coalesce` and
`max_instances=1` keep a slow or resumed scheduler from piling runs up; running
several scheduler processes is safe because every job claims its work in the
database.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from apscheduler.events import EVENT_SCHEDULER_SHUTDOWN, SchedulerEvent
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy.orm import Session, sessionmaker

from scheduling import email_dispatch, housekeeping, sms_dispatch
from services.actor import Actor
from services.diagnostics.storage import make_storage
from services.notifications.email_gateway import make_email_gateway
from services.notifications.gateway import make_gateway

log = logging.getLogger("dct.scheduler")

Job = Callable[[Session, Actor], object]


# A job that must not run inside one transaction (the SMS dispatcher sends between
# its own short ones) gets the session factory instead of a session.
OwnTransactionsJob = Callable[[sessionmaker[Session], Actor], object]


@dataclass(frozen=True)
class JobSpec:
    """Runs every `minutes` plus `seconds` (the dispatcher ticks in seconds)."""

    id: str
    func: Job | OwnTransactionsJob
    minutes: int = 0
    seconds: int = 0
    own_transactions: bool = False


def run_job(
    sessions: sessionmaker[Session],
    job_id: str,
    func: Job | OwnTransactionsJob,
    own_transactions: bool = False,
) -> None:
    """One run of one job, acting as the system: in its own transaction, or, for an
    `own_transactions` job, handed the session factory to open its own."""
    actor = Actor.system(request_id=f"job-{job_id}-{uuid.uuid4().hex[:12]}")
    try:
        if own_transactions:
            result = func(sessions, actor)  # type: ignore[arg-type]
        else:
            with sessions() as session:  # closing it rolls back what a failure left
                result = func(session, actor)  # type: ignore[arg-type]
                session.commit()
    except Exception:
        log.exception("job failed", extra={"job": job_id})
        return
    log.info("job done: %s", result, extra={"job": job_id})


def job_specs(settings: dict[str, Any]) -> list[JobSpec]:
    """The gateways are built once here, so their clients are reused across ticks; the
    e-mail job exists only with an e-mail gateway."""
    gateway = make_gateway(settings)
    specs = [
        JobSpec("audit-seal", housekeeping.seal_audit_trail, settings["DCT_AUDIT_SEAL_MINUTES"]),
        JobSpec("purge-expired-sessions", housekeeping.purge_expired_sessions, 60),
        JobSpec("mark-missed-visits", housekeeping.mark_missed_visits, 60),
        JobSpec(
            "close-epro-windows",
            partial(
                housekeeping.close_epro_windows,
                grace=dt.timedelta(minutes=settings["DCT_EPRO_GRACE_MINUTES"]),
            ),
            5,
        ),
        JobSpec(
            "expire-tus-uploads",
            partial(housekeeping.expire_tus_uploads, storage=make_storage(settings)),
            60,
        ),
        JobSpec("plan-sms", sms_dispatch.plan, minutes=1),
        JobSpec(
            "dispatch-sms",
            partial(
                sms_dispatch.dispatch_job,
                gateway=gateway,
                settings=settings,
                threads=settings["DCT_SMS_THREADS"],
                batch=settings["DCT_SMS_THREADS"] * sms_dispatch.ROWS_PER_THREAD,
            ),
            seconds=settings["DCT_SMS_DISPATCH_SECONDS"],
            own_transactions=True,
        ),
    ]
    email_gateway = make_email_gateway(settings)
    if email_gateway is not None:
        specs.append(
            JobSpec(
                "dispatch-email",
                partial(email_dispatch.dispatch, gateway=email_gateway, settings=settings),
                seconds=settings["DCT_EMAIL_DISPATCH_SECONDS"],
                own_transactions=True,
            )
        )
    return specs


def build_scheduler(
    sessions: sessionmaker[Session],
    settings: dict[str, Any],
    *,
    blocking: bool,
    extra_jobs: Sequence[JobSpec] = (),
) -> BaseScheduler:
    """`extra_jobs` come from packages scheduling does not import (consent's, via the CLI)."""
    scheduler: BaseScheduler = (
        BlockingScheduler(timezone="UTC") if blocking else BackgroundScheduler(timezone="UTC")
    )
    for spec in [*job_specs(settings), *extra_jobs]:
        scheduler.add_job(
            run_job,
            "interval",
            minutes=spec.minutes,
            seconds=spec.seconds,
            args=(sessions, spec.id, spec.func, spec.own_transactions),
            id=spec.id,
            name=spec.id,
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=300,
        )
    scheduler.add_listener(partial(_seal_at_shutdown, sessions), EVENT_SCHEDULER_SHUTDOWN)
    return scheduler


def _seal_at_shutdown(sessions: sessionmaker[Session], _event: SchedulerEvent) -> None:
    """A last seal as the scheduler stops: what was written since the last periodic
    seal is pinned too, instead of waiting for the next scheduler to start."""
    run_job(sessions, "audit-seal-at-shutdown", housekeeping.seal_audit_trail)
