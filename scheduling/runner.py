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

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy.orm import Session, sessionmaker

from scheduling import housekeeping
from services.actor import Actor
from services.storage import make_storage

log = logging.getLogger("dct.scheduler")

Job = Callable[[Session, Actor], object]


@dataclass(frozen=True)
class JobSpec:
    id: str
    func: Job
    minutes: int


def run_job(sessions: sessionmaker[Session], job_id: str, func: Job) -> None:
    """One run of one job in its own transaction, acting as the system."""
    actor = Actor.system(request_id=f"job-{job_id}-{uuid.uuid4().hex[:12]}")
    with sessions() as session:
        try:
            result = func(session, actor)
            session.commit()
        except Exception:
            session.rollback()
            log.exception("job failed", extra={"job": job_id})
            return
    log.info("job done: %s", result, extra={"job": job_id})


def job_specs(settings: dict) -> list[JobSpec]:
    return [
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
    ]


def build_scheduler(
    sessions: sessionmaker[Session],
    settings: dict,
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
            args=(sessions, spec.id, spec.func),
            id=spec.id,
            name=spec.id,
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=300,
        )
    return scheduler
