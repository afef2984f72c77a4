"""The consent discussion: recorded by the study team before anyone may sign."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from consent.models import ConsentDiscussion
from services.access import get_visible, require_role, visible_participants
from services.actor import Actor, Role
from services.audit import chain as audit
from services.db import utcnow
from services.errors import Conflict, Invalid
from services.models import Participant, Site
from services.people.participants import participant_subject
from services.validation import person_name

# Belgian eICF guidance: the information interview is held in person or by video.
NO_PHONE_COUNTRIES = frozenset({"BE"})
# A coordinator's clock this far ahead of the server's still records a discussion just held.
CLOCK_TOLERANCE = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Discussion:
    mode: str
    held_at: dt.datetime
    notes: str | None = None
    participant_can_read: bool = True
    lar_name: str | None = None
    witness_name: str | None = None


def record(
    session: Session, actor: Actor, participant_id: uuid.UUID, data: Discussion
) -> ConsentDiscussion:
    require_role(actor, Role.COORDINATOR)
    participant = get_visible(session, visible_participants(actor), participant_id, "participant")
    site = session.get_one(Site, participant.site_id)
    if data.mode == "phone" and site.country in NO_PHONE_COUNTRIES:
        raise Conflict(
            f"sites in {site.country} hold the consent discussion in person or by video, "
            "not by phone"
        )
    _check_held_at(data.held_at, participant)
    if not data.participant_can_read and not data.witness_name:
        raise Invalid(
            "witness needed",
            errors={"witness_name": ["a participant who cannot read needs an impartial witness"]},
        )
    discussion = ConsentDiscussion(
        id=uuid.uuid4(),
        participant_id=participant.id,
        mode=data.mode,
        held_at=data.held_at,
        notes=data.notes,
        participant_can_read=data.participant_can_read,
        lar_name=person_name(data.lar_name, field="lar_name") if data.lar_name else None,
        witness_name=(
            person_name(data.witness_name, field="witness_name") if data.witness_name else None
        ),
        recorded_by=actor.user_id,
    )
    session.add(discussion)
    session.flush()
    audit.record_change(
        session,
        actor,
        "consent.discussion",
        discussion,
        subject=participant_subject(participant),
        after={
            "mode": data.mode,
            "held_at": data.held_at.isoformat(),
            "participant_can_read": data.participant_can_read,
            "with_lar": data.lar_name is not None,
            "with_witness": data.witness_name is not None,
        },
    )
    return discussion


def _check_held_at(held_at: dt.datetime, participant: Participant) -> None:
    """Between the participant's registration and now: signatures rest on the latest
    discussion, and one dated before the study knew the participant (or ahead) cannot
    have taken place as recorded."""
    if held_at > utcnow() + CLOCK_TOLERANCE:
        raise Invalid(
            "held_at is in the future",
            errors={"held_at": ["a discussion cannot be in the future"]},
        )
    registered = participant.created_at
    if held_at < registered:
        raise Invalid(
            "held_at is before the participant's registration",
            errors={
                "held_at": [
                    "a discussion cannot be before the participant's registration "
                    f"({registered.astimezone(dt.UTC):%Y-%m-%dT%H:%M:%SZ})"
                ]
            },
        )


def latest(session: Session, participant: Participant) -> ConsentDiscussion | None:
    return session.scalars(
        select(ConsentDiscussion)
        .where(ConsentDiscussion.participant_id == participant.id)
        .order_by(ConsentDiscussion.held_at.desc(), ConsentDiscussion.created_at.desc())
    ).first()
