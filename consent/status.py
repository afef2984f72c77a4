"""Consent status per participant and per site, for the study team's follow-up:
who awaits a countersignature, who must re-consent, who withdrew.

A participant's current consent is their latest consent record: the one in play
(an earlier one is superseded once a later one completes, or still flagged
requires_reconsent while the new version awaits its countersignature).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import Session, aliased

from consent.models import Consent, ConsentDocument, ConsentStatus
from services.access import (
    get_visible,
    require_role,
    visible_participants,
    visible_sites,
    visible_studies,
)
from services.actor import Actor
from services.models import ConsentState, Participant, Site
from services.people.participants import PARTICIPANT_LISTERS


@dataclass(frozen=True)
class StatusFilter:
    consent_states: tuple[str, ...] = ()
    consent_statuses: tuple[str, ...] = ()
    participant_statuses: tuple[str, ...] = ()
    site_id: uuid.UUID | None = None


@dataclass
class SiteCounts:
    site_id: uuid.UUID
    site_code: str
    participants: int = 0
    consent_state: dict[str, int] = field(
        default_factory=lambda: {state.value: 0 for state in ConsentState}
    )
    pending_countersign: int = 0


@dataclass(frozen=True)
class Summary:
    study_id: uuid.UUID
    sites: list[SiteCounts]
    total: SiteCounts


def _scoped_participants(
    session: Session, actor: Actor, study_id: uuid.UUID
) -> Select[Participant]:
    require_role(actor, *PARTICIPANT_LISTERS)
    get_visible(session, visible_studies(actor), study_id, "study")
    return visible_participants(actor).where(Participant.study_id == study_id)


def status_rows(
    session: Session, actor: Actor, study_id: uuid.UUID, filters: StatusFilter
) -> Select[*tuple[Any, ...]]:  # twelve columns: SQLAlchemy types up to ten
    """One row per participant in the actor's scope: ids, subject code, states and the
    current consent. Holds no direct identifiers, so monitors read it as it is."""
    scoped = _scoped_participants(session, actor, study_id).subquery()
    participant = aliased(Participant, scoped)
    current = aliased(Consent)
    latest = aliased(Consent)
    current_id = (
        select(latest.id)
        .where(latest.participant_id == participant.id)
        .order_by(latest.created_at.desc(), latest.id.desc())
        .limit(1)
        .correlate(scoped)
        .scalar_subquery()
    )
    query = (
        select(
            participant.id.label("participant_id"),
            participant.subject_code,
            participant.site_id,
            participant.status.label("participant_status"),
            participant.consent_state,
            participant.contact_allowed,
            current.id.label("consent_id"),
            current.status.label("consent_status"),
            ConsentDocument.version.label("document_version"),
            ConsentDocument.language.label("document_language"),
            current.completed_at,
            current.withdrawn_at,
        )
        .select_from(participant)
        .outerjoin(current, current.id == current_id)
        .outerjoin(ConsentDocument, ConsentDocument.id == current.document_id)
        .order_by(participant.subject_code)
    )
    if filters.consent_states:
        query = query.where(participant.consent_state.in_(filters.consent_states))
    if filters.consent_statuses:
        query = query.where(current.status.in_(filters.consent_statuses))
    if filters.participant_statuses:
        query = query.where(participant.status.in_(filters.participant_statuses))
    if filters.site_id is not None:
        query = query.where(participant.site_id == filters.site_id)
    return query


def summary(session: Session, actor: Actor, study_id: uuid.UUID) -> Summary:
    """Counts per site (every site of the study in the actor's scope, empty ones too)."""
    rows = status_rows(session, actor, study_id, StatusFilter()).subquery()
    sites = session.scalars(
        visible_sites(actor).where(Site.study_id == study_id).order_by(Site.code)
    ).all()
    per_site = {site.id: SiteCounts(site.id, site.code) for site in sites}
    counted = session.execute(
        select(
            rows.c.site_id,
            rows.c.consent_state,
            func.count(),
            func.sum(
                case((rows.c.consent_status == ConsentStatus.PENDING_COUNTERSIGN.value, 1), else_=0)
            ),
        ).group_by(rows.c.site_id, rows.c.consent_state)
    )
    for site_id, state, number, pending in counted:
        counts = per_site[site_id]
        counts.participants += number
        counts.consent_state[state] += number
        counts.pending_countersign += pending
    total = SiteCounts(study_id, "all")
    for counts in per_site.values():
        total.participants += counts.participants
        total.pending_countersign += counts.pending_countersign
        for state, number in counts.consent_state.items():
            total.consent_state[state] += number
    return Summary(study_id=study_id, sites=list(per_site.values()), total=total)
