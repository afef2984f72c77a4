"""ePRO compliance: how many of the questionnaires participants were asked to answer
they did answer, and in time, per participant, per site and for the study.

An *instance* is one occasion to answer (one questionnaire, one window). With `now`
the time of the report and `grace` the offline grace period (DCT_EPRO_GRACE_MINUTES),
an instance's window has *ended* when `closes_at <= now - grace`: no submission can
be accepted for it any more. For each participant, over the instances of the study
(optionally of one site, or of one questionnaire code, every version):

- cancelled instances (withdrawal, a newer questionnaire version) count nowhere;
- `completed_on_time`: status completed, received before the window closed;
- `completed_late`: status completed, received after the window closed but within
  the grace period (the phone was offline);
- `declined`: the participant answered that they would not fill it in;
- `missed`: status missed, or still scheduled with its window ended (the missed job
  has not closed it yet: it counts as missed from the moment it can no longer be
  answered, whatever the job's timing);
- `expected` = completed_on_time + completed_late + declined + missed: every instance
  answered (even while its window is still open) or whose window has ended;
- `pending`: still scheduled, window opened (`opens_at <= now`) and not ended: it can
  still be answered. Not part of `expected`, so an open window never lowers the rate.
  Instances whose window has not opened yet count nowhere;
- `compliance_rate` = (completed_on_time + completed_late) / expected, rounded to 4
  decimals; null when nothing is expected yet. Declined and missed instances lower it.

A participant is listed when they have at least one instance counted above or not
yet open (so someone enrolled yesterday shows with zeros). Sites list every site of
the study in scope, empty ones too; site and study totals are the sums of the rows.
The report carries participant ids and subject codes only, never names.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, or_, select
from sqlalchemy.orm import Session

from services.access import (
    get_visible,
    require_role,
    visible_participants,
    visible_sites,
    visible_studies,
)
from services.actor import Actor, Role
from services.models import (
    EproInstance,
    InstanceStatus,
    Participant,
    Questionnaire,
    Site,
    Study,
    Timeliness,
)

READERS = (Role.ADMIN, Role.COORDINATOR, Role.MONITOR)


@dataclass(frozen=True)
class ReportFilter:
    site_id: uuid.UUID | None = None
    questionnaire_code: str | None = None


@dataclass(kw_only=True)
class Counts:
    expected: int = 0
    completed_on_time: int = 0
    completed_late: int = 0
    declined: int = 0
    missed: int = 0
    pending: int = 0

    @property
    def compliance_rate(self) -> float | None:
        if not self.expected:
            return None
        return round((self.completed_on_time + self.completed_late) / self.expected, 4)

    def add(self, other: Counts) -> None:
        for name in COUNT_NAMES:
            setattr(self, name, getattr(self, name) + getattr(other, name))


COUNT_NAMES = tuple(f.name for f in fields(Counts))


@dataclass(kw_only=True)
class ParticipantCompliance(Counts):
    participant_id: uuid.UUID
    subject_code: str
    site_id: uuid.UUID
    site_code: str


@dataclass(kw_only=True)
class SiteCompliance(Counts):
    site_id: uuid.UUID | None
    site_code: str
    participants: int = 0


@dataclass(frozen=True)
class Report:
    study_id: uuid.UUID
    study_code: str
    generated_at: dt.datetime
    grace_minutes: int
    filters: ReportFilter
    participants: list[ParticipantCompliance]
    sites: list[SiteCompliance]
    total: SiteCompliance


def compliance(
    session: Session,
    actor: Actor,
    study_id: uuid.UUID,
    *,
    now: dt.datetime,
    grace: dt.timedelta,
    filters: ReportFilter | None = None,
) -> Report:
    """The report as the actor may read it: coordinators their sites, monitors their
    studies, admins every study (patients and nurses 403, a study or site out of
    scope 404)."""
    filters = filters or ReportFilter()
    require_role(actor, *READERS)
    study = get_visible(session, visible_studies(actor), study_id, "study")
    sites_query = visible_sites(actor).where(Site.study_id == study_id).order_by(Site.code)
    if filters.site_id is not None:
        get_visible(session, sites_query, filters.site_id, "site in this study")
        sites_query = sites_query.where(Site.id == filters.site_id)
    rows = [
        ParticipantCompliance(
            participant_id=row.participant_id,
            subject_code=row.subject_code,
            site_id=row.site_id,
            site_code=row.site_code,
            **{name: int(getattr(row, name)) for name in COUNT_NAMES},
        )
        for row in session.execute(_per_participant(actor, study, filters, now, grace))
    ]
    sites = [SiteCompliance(site_id=s.id, site_code=s.code) for s in session.scalars(sites_query)]
    return Report(
        study_id=study.id,
        study_code=study.code,
        generated_at=now,
        grace_minutes=int(grace.total_seconds() // 60),
        filters=filters,
        participants=rows,
        sites=sites,
        total=_totals(rows, sites),
    )


def _per_participant(
    actor: Actor, study: Study, filters: ReportFilter, now: dt.datetime, grace: dt.timedelta
) -> Select[*tuple[Any, ...]]:
    """One GROUP BY over the study's instances by participant, counting with
    conditional sums, then joined to the participants and their sites: grouping by
    the instance's own column (before the join) lets PostgreSQL hash-aggregate the
    whole study in one pass."""
    scoped = visible_participants(actor).where(Participant.study_id == study.id)
    if filters.site_id is not None:
        scoped = scoped.where(Participant.site_id == filters.site_id)
    instance = EproInstance
    counts = (
        select(
            instance.participant_id,
            *(_sum(condition).label(name) for name, condition in _conditions(now, grace)),
        )
        .where(
            instance.study_id == study.id,
            instance.status != InstanceStatus.CANCELLED.value,
            instance.participant_id.in_(scoped.with_only_columns(Participant.id)),
        )
        .group_by(instance.participant_id)
    )
    if filters.questionnaire_code is not None:
        versions = select(Questionnaire.id).where(
            Questionnaire.study_id == study.id, Questionnaire.code == filters.questionnaire_code
        )
        counts = counts.where(instance.questionnaire_id.in_(versions))
    counted = counts.subquery()
    return (
        select(
            Participant.id.label("participant_id"),
            Participant.subject_code,
            Site.id.label("site_id"),
            Site.code.label("site_code"),
            *(counted.c[name] for name in COUNT_NAMES),
        )
        .join(counted, counted.c.participant_id == Participant.id)
        .join(Site, Site.id == Participant.site_id)
        .order_by(Site.code, Participant.subject_code)
    )


def _conditions(now: dt.datetime, grace: dt.timedelta) -> list[tuple[str, ColumnElement[bool]]]:
    """Each count's condition on one instance, as the module docstring defines it."""
    status, timeliness = EproInstance.status, EproInstance.timeliness
    ended = EproInstance.closes_at <= now - grace
    scheduled = status == InstanceStatus.SCHEDULED.value
    completed = status == InstanceStatus.COMPLETED.value
    missed = or_(status == InstanceStatus.MISSED.value, and_(scheduled, ended))
    answered = status.in_((InstanceStatus.COMPLETED.value, InstanceStatus.DECLINED.value))
    return [
        ("expected", or_(answered, missed)),
        ("completed_on_time", and_(completed, timeliness == Timeliness.ON_TIME.value)),
        ("completed_late", and_(completed, timeliness == Timeliness.LATE.value)),
        ("declined", status == InstanceStatus.DECLINED.value),
        ("missed", missed),
        ("pending", and_(scheduled, EproInstance.opens_at <= now, ~ended)),
    ]


def _sum(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.sum(case((condition, 1), else_=0))


def _totals(rows: list[ParticipantCompliance], sites: list[SiteCompliance]) -> SiteCompliance:
    """Adds each row to its site's totals and returns the study's."""
    per_site = {site.site_id: site for site in sites}
    total = SiteCompliance(site_id=None, site_code="all")
    for row in rows:
        for counts in (per_site[row.site_id], total):
            counts.add(row)
            counts.participants += 1
    return total
