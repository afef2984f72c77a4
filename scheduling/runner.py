"""The APScheduler set-up: it only ticks; the database holds every job's state.

Jobs (scheduling/jobs.py: id -> service call) each run through `run_job`, which
opens its own session, commits or rolls back, and logs. `coalesce` and
`max_instances=1` keep a slow or resumed scheduler from piling runs up; running
several scheduler processes is safe because every job claims its work in the
database.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from functools import partial
from typing import Any

from apscheduler.events import EVENT_SCHEDULER_SHUTDOWN, SchedulerEvent
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy.orm import Session, sessionmaker

from scheduling import housekeeping
from scheduling.jobs import Job, JobSpec, OwnTransactionsJob, job_specs
from services.actor import Actor

log = logging.getLogger("dct.scheduler")


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
