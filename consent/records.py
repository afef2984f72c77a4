"""Reading consent records: scoped like participants, one query for every view."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from consent.documents import current_document
from consent.models import Consent, ConsentDocument, ConsentStatus
from services.access import get_visible, require_role, visible_participants
from services.actor import Actor, Role
from services.errors import Conflict
from services.models import Participant, ParticipantStatus


def visible_consents(actor: Actor) -> Select[Consent]:
    """Consents of the participants the actor may see (patients: their own)."""
    participants = visible_participants(actor).with_only_columns(Participant.id)
    return select(Consent).where(Consent.participant_id.in_(participants))


def get_consent(session: Session, actor: Actor, consent_id: uuid.UUID) -> Consent:
    return get_visible(session, visible_consents(actor), consent_id, "consent")


def participant_consents(
    session: Session, actor: Actor, participant_id: uuid.UUID
) -> list[Consent]:
    participant = get_visible(session, visible_participants(actor), participant_id, "participant")
    query = visible_consents(actor).where(Consent.participant_id == participant.id)
    return list(session.scalars(query.order_by(Consent.created_at)))


@dataclass(frozen=True)
class OwnConsents:
    """What a participant must sign now (or why nothing can be), and their records."""

    to_sign: ConsentDocument | None
    to_sign_unavailable: str | None
    consents: list[Consent]


def own_consents(session: Session, actor: Actor, today: dt.date | None = None) -> OwnConsents:
    """Nothing to sign while a consent is complete (a version that does not require
    re-consent leaves it so) or awaits countersignature on the current version."""
    require_role(actor, Role.PATIENT)
    participant = session.get_one(Participant, actor.participant_id)
    consents = participant_consents(session, actor, participant.id)
    if participant.status == ParticipantStatus.WITHDRAWN:
        return OwnConsents(None, "you have withdrawn from the study", consents)
    try:
        current = current_document(session, participant, today)
    except Conflict as error:
        return OwnConsents(None, error.detail, consents)
    done = any(
        c.status == ConsentStatus.COMPLETE
        or (c.status == ConsentStatus.PENDING_COUNTERSIGN and c.document_id == current.id)
        for c in consents
    )
    return OwnConsents(None if done else current, None, consents)
