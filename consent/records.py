"""Reading consent records: scoped like participants, one query for every view."""

from __future__ import annotations

import uuid

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from consent.models import Consent
from services.access import get_visible, visible_participants
from services.actor import Actor
from services.models import Participant


def visible_consents(actor: Actor) -> Select[tuple[Consent]]:
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
