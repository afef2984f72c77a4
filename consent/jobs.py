"""Time-driven consent work, handed to the scheduler by the API's CLI (scheduling
does not depend on consent)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from consent import documents
from scheduling.jobs import JobSpec
from services.actor import Actor


def apply_effective_versions(session: Session, actor: Actor, today: dt.date | None = None) -> str:
    """Versions approved with a later effective date supersede the older ones (and
    flag re-consent) once that date has come."""
    superseded = documents.apply_effective_versions(session, actor, today)
    return f"{superseded} consent document versions superseded"


# Daily in effect: the job is idempotent, and running it hourly makes a version
# effective within the hour of its date even when processes restart more often
# than an interval of a day would ever fire.
CONSENT_JOBS: tuple[JobSpec, ...] = (
    JobSpec("consent-effective-versions", apply_effective_versions, 60),
)
