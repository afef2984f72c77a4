"""Enrolment, and the consent gate every later study procedure passes through.

Consent itself lives in `consent/`; it keeps `Participant.consent_state` current so
that this layer can check it without depending on the consent records.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy.orm import Session

from services import audit
from services.access import get_visible, require_role, visible_participants
from services.actor import Actor, Role
from services.errors import Conflict
from services.models import ConsentState, Participant, ParticipantStatus
from services.people import participant_subject

_WHY_NOT = {
    ConsentState.NONE.value: "the participant has not signed a consent",
    ConsentState.PENDING.value: "the consent is not complete (signatures are missing)",
    ConsentState.REQUIRES_RECONSENT.value: (
        "a new consent version requires re-consent before any new study procedure"
    ),
    ConsentState.WITHDRAWN.value: "the participant withdrew consent",
}


def require_current_consent(participant: Participant) -> None:
    """Refuse a new study procedure unless the participant's consent is complete and
    current (what was done before a re-consent or withdrawal stays valid)."""
    if participant.consent_state != ConsentState.COMPLETE:
        raise Conflict(f"not allowed: {_WHY_NOT[participant.consent_state]}")


def enroll(
    session: Session, actor: Actor, participant_id: uuid.UUID, baseline_date: dt.date
) -> Participant:
    require_role(actor, Role.COORDINATOR)
    participant = get_visible(session, visible_participants(actor), participant_id, "participant")
    require_current_consent(participant)
    if participant.status != ParticipantStatus.CONSENTED:
        raise Conflict(
            f"only a consented participant can be enrolled; this one is {participant.status}"
        )
    participant.status = ParticipantStatus.ENROLLED.value
    participant.baseline_date = baseline_date
    session.flush()
    audit.record(
        session,
        actor,
        "participant.enroll",
        entity_type="participant",
        entity_id=participant.id,
        subject=participant_subject(participant),
        before={"status": ParticipantStatus.CONSENTED.value},
        after={"status": participant.status, "baseline_date": baseline_date.isoformat()},
    )
    return participant
