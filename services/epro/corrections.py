"""Staff corrections of ePRO responses (Part 11 11.10(e)): a response is never updated;
a correction is a new version after the latest one, with who, when and why, and the
audit event names only the items that changed, with both values."""

from __future__ import annotations

import uuid
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.access import get_visible, require_role
from services.actor import Actor, Role
from services.audit import chain as audit
from services.db import utcnow
from services.epro.responses import validated, visible_responses
from services.errors import Conflict, Invalid
from services.models import EproInstance, EproResponse, Participant, Questionnaire, ResponseStatus
from services.people.participants import participant_subject


def correct(
    session: Session,
    actor: Actor,
    response_id: uuid.UUID,
    answers: list[dict[str, Any]],
    reason: str,
) -> EproResponse:
    """A coordinator's correction: a new version after the latest one, validated
    against the same questionnaire version; every earlier version stays readable."""
    require_role(actor, Role.COORDINATOR)
    corrected = get_visible(session, visible_responses(actor), response_id, "ePRO response")
    session.execute(
        select(EproInstance.id).where(EproInstance.id == corrected.instance_id).with_for_update()
    )
    latest = _latest_version(session, corrected.instance_id)
    if latest.status != ResponseStatus.COMPLETED:
        raise Conflict("a declined response has no answers to correct")
    validated(session.get_one(Questionnaire, latest.questionnaire_id), answers)
    before, after = _answer_values(latest.answers), _answer_values(answers)
    changed = sorted(i for i in before.keys() | after.keys() if before.get(i) != after.get(i))
    if not changed:
        raise Invalid("answers", errors={"answers": [f"the same as version {latest.version}"]})
    correction = _correction_of(latest, actor, answers, reason)
    try:
        with session.begin_nested():
            session.add(correction)
    except IntegrityError:
        raise Conflict("the response was corrected meanwhile; read it and retry") from None
    audit.record_change(
        session,
        actor,
        "epro.response.correct",
        correction,
        subject=participant_subject(session.get_one(Participant, latest.participant_id)),
        before={"version": latest.version, "answers": {i: before.get(i) for i in changed}},
        after={
            "version": correction.version,
            "corrects_id": str(latest.id),
            "changed_items": changed,
            "answers": {i: after.get(i) for i in changed},
        },
        reason=reason,
    )
    return correction


def _latest_version(session: Session, instance_id: uuid.UUID) -> EproResponse:
    latest = session.scalars(
        select(EproResponse)
        .where(EproResponse.instance_id == instance_id)
        .order_by(EproResponse.version.desc())
    ).first()
    return cast(EproResponse, latest)  # the corrected response exists: at least one version


def _answer_values(answers: list[dict[str, Any]]) -> dict[str, Any]:
    return {answer["item"]: answer["value"] for answer in answers}


def _correction_of(
    latest: EproResponse, actor: Actor, answers: list[dict[str, Any]], reason: str
) -> EproResponse:
    """The answers of the same occasion: device and timing facts stay those of the
    participant's response; who recorded the correction, when and why are new."""
    return EproResponse(
        id=uuid.uuid4(),
        client_id=None,
        instance_id=latest.instance_id,
        participant_id=latest.participant_id,
        questionnaire_id=latest.questionnaire_id,
        version=latest.version + 1,
        corrects_id=latest.id,
        status=ResponseStatus.COMPLETED.value,
        answers=list(answers),
        started_at=latest.started_at,
        completed_at=latest.completed_at,
        received_at=utcnow(),
        timeliness=latest.timeliness,
        originator=Role.COORDINATOR.value,
        entered_by=actor.user_id,
        reason=reason,
    )
