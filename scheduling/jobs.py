"""The scheduler's jobs: each id and the service call it makes, how often. The runner
(scheduling/runner.py) only ticks and runs them; every job claims its work in the
database, so several scheduler processes may run the same table."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from scheduling import email_dispatch, housekeeping
from scheduling.sms_dispatch import ROWS_PER_THREAD, Dispatcher, worker_name
from services.actor import Actor
from services.db import utcnow
from services.diagnostics.storage import make_storage
from services.notifications import planning
from services.notifications.email_gateway import make_email_gateway
from services.notifications.gateway import SmsGateway, make_gateway

# How long one run of the dispatch job goes on draining a backlog.
JOB_SECONDS = 60

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


def plan_sms(session: Session, actor: Actor) -> str:
    """The `plan-sms` job: materialise the rows that became plannable."""
    return f"{planning.plan_due(session, actor, utcnow())} SMS planned"


def dispatch_sms(
    sessions: sessionmaker[Session],
    _actor: Actor,
    *,
    gateway: SmsGateway,
    settings: Mapping[str, Any],
    threads: int = 1,
    batch: int = 50,
) -> str:
    """The `dispatch-sms` job, in short transactions of its own (see `Dispatcher.dispatch`): rounds
    until nothing due is left, so a backlog drains at sending speed rather than one
    batch per tick; after JOB_SECONDS the next tick carries on (`coalesce` folds the
    ticks missed meanwhile)."""
    dispatcher = Dispatcher(sessions, gateway, settings, worker=worker_name())
    sent, stop = 0, time.monotonic() + JOB_SECONDS
    while True:
        sent += dispatcher.dispatch(threads=threads, batch=batch)
        if time.monotonic() > stop or not dispatcher.anything_due():
            return f"{sent} SMS sent"


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
        JobSpec("plan-sms", plan_sms, minutes=1),
        JobSpec(
            "dispatch-sms",
            partial(
                dispatch_sms,
                gateway=gateway,
                settings=settings,
                threads=settings["DCT_SMS_THREADS"],
                batch=settings["DCT_SMS_THREADS"] * ROWS_PER_THREAD,
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
