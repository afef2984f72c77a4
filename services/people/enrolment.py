"""Enrolment: from a complete consent to a participant with planned visits and ePRO."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy.orm import Session

from services.access import get_visible, require_role, visible_participants
from services.actor import Actor, Role
from services.audit import chain as audit
from services.epro import plan as epro_plan
from services.errors import Conflict
from services.models import Participant, ParticipantStatus
from services.people.consent_gate import require_current_consent
from services.people.participants import participant_subject
from services.visits import booking as visits


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
    visits.plan_visits(session, actor, participant)
    epro_plan.plan_participant(session, actor, participant)
    audit.record_change(
        session,
        actor,
        "participant.enroll",
        participant,
        subject=participant_subject(participant),
        before={"status": ParticipantStatus.CONSENTED.value},
        after={"status": participant.status, "baseline_date": baseline_date.isoformat()},
    )
    return participant
