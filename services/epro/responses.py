"""ePRO responses: offline-safe submission, reads and FHIR export (built by
`services.epro.fhir`); staff corrections are `services.epro.corrections`.

A phone may send one submission many times (retries, offline sync): its `client_id`
makes every repeat answer the original record, and it is checked before anything that
may have changed since (the window, the consent, the instance's status). A response is
never updated: a correction is a new version pointing to the one it corrects.
Submissions to one instance are serialised by a row lock on the instance, and the
unique `client_id` and (instance, version) columns back that up in the database.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services import validation
from services.access import get_visible, require_role, visible_participants
from services.actor import Actor, Role
from services.audit import chain as audit
from services.epro import fhir as epro_fhir
from services.epro.answers import validate_answers
from services.errors import Conflict, DomainError, Forbidden, Invalid
from services.models import (
    EproInstance,
    EproResponse,
    InstanceStatus,
    Participant,
    Questionnaire,
    ResponseStatus,
    Timeliness,
    Visit,
    VisitStatus,
)
from services.people import disclosure
from services.people.consent_gate import require_enrolled
from services.people.participants import participant_subject

MAX_BATCH = 100
SKEW_FLAG_SECONDS = 300
READERS = (Role.COORDINATOR, Role.MONITOR, Role.PATIENT, Role.NURSE)
SUBMITTERS = (Role.PATIENT, Role.NURSE)
_ANSWERED_BEFORE = {
    InstanceStatus.COMPLETED.value: "this instance was already answered",
    InstanceStatus.DECLINED.value: "this instance was already answered (declined)",
    InstanceStatus.MISSED.value: "the window of this instance closed without a response",
}


@dataclass(frozen=True)
class Submission:
    """What the phone sends. Device times keep the offset the phone gave them."""

    client_id: uuid.UUID
    instance_id: uuid.UUID
    status: str
    answers: list[dict[str, Any]]
    started_at: dt.datetime
    completed_at: dt.datetime
    sent_at: dt.datetime | None = None
    device_timezone: str | None = None
    decline_reason: str | None = None


@dataclass(frozen=True)
class Outcome:
    """One batch item's answer: the response (created or replayed) or the refusal."""

    response: EproResponse | None = None
    created: bool = False
    error: DomainError | None = None


@dataclass(frozen=True)
class Context:
    """What a response row does not hold itself, for reading it."""

    subject_code: str
    superseded_by: uuid.UUID | None
    # The items whose answers are free text, which not every reader receives.
    free_text_items: frozenset[str]


def _visible_participant_ids(actor: Actor) -> Select[Any]:
    return visible_participants(actor).with_only_columns(Participant.id)


def visible_instances(actor: Actor) -> Select[EproInstance]:
    """Patients their own instances; nurses those of their visits' participants; staff
    their scope."""
    return select(EproInstance).where(
        EproInstance.participant_id.in_(_visible_participant_ids(actor))
    )


def visible_responses(actor: Actor) -> Select[EproResponse]:
    return select(EproResponse).where(
        EproResponse.participant_id.in_(_visible_participant_ids(actor))
    )


# --- submission ------------------------------------------------------------------


def submit(
    session: Session, actor: Actor, submission: Submission, *, now: dt.datetime, grace: dt.timedelta
) -> tuple[EproResponse, bool]:
    """Record a response; answer the original (created False) for a replayed client_id."""
    require_role(actor, *SUBMITTERS)
    instance = get_visible(
        session,
        visible_instances(actor).with_for_update(of=EproInstance),
        submission.instance_id,
        "ePRO instance",
    )
    original = _replayed(session, submission.client_id, instance)
    if original is not None:
        return original, False
    participant = session.get_one(Participant, instance.participant_id)
    _require_open(participant, instance)
    visit_id = _nurse_visit(session, actor, participant) if actor.role == Role.NURSE else None
    _check_device_data(submission)
    _check_window(instance, submission.completed_at, now, grace)
    _check_answers(session, instance, submission)
    response, created = _stored(
        session, instance, _new_response(actor, instance, submission, now, visit_id)
    )
    if not created:
        return response, False
    instance.status = submission.status
    instance.timeliness = response.timeliness
    session.flush()
    _audit_submission(session, actor, participant, response)
    return response, True


def _audit_submission(
    session: Session, actor: Actor, participant: Participant, response: EproResponse
) -> None:
    """The response row is the record of the answers: the event names the items only."""
    audit.record_change(
        session,
        actor,
        "epro.response.submit",
        response,
        subject=participant_subject(participant),
        after={
            "instance_id": str(response.instance_id),
            "questionnaire_id": str(response.questionnaire_id),
            "status": response.status,
            "items": [answer["item"] for answer in response.answers],
            "timeliness": response.timeliness,
            "originator": response.originator,
            "visit_id": str(response.visit_id) if response.visit_id else None,
            "clock_skew_seconds": response.clock_skew_seconds,
            "clock_skew_flag": response.clock_skew_flag,
        },
    )


def _replayed(
    session: Session, client_id: uuid.UUID, instance: EproInstance
) -> EproResponse | None:
    original = session.scalars(
        select(EproResponse).where(EproResponse.client_id == client_id)
    ).first()
    if original is not None and original.instance_id != instance.id:
        raise Conflict(f"client_id {client_id} was already used for another ePRO instance")
    return original


def _require_open(participant: Participant, instance: EproInstance) -> None:
    require_enrolled(participant)
    if instance.status == InstanceStatus.CANCELLED:
        raise Conflict(f"this instance was cancelled: {instance.cancel_reason or 'no reason'}")
    if instance.status != InstanceStatus.SCHEDULED:
        raise Conflict(_ANSWERED_BEFORE[instance.status])


def _nurse_visit(session: Session, actor: Actor, participant: Participant) -> uuid.UUID:
    """A nurse enters answers for a participant only while at their visit."""
    visit_id = session.scalars(
        select(Visit.id).where(
            Visit.participant_id == participant.id,
            Visit.nurse_id == actor.user_id,
            Visit.status == VisitStatus.IN_PROGRESS.value,
        )
    ).first()
    if visit_id is None:
        raise Forbidden(
            "a nurse enters answers for a participant only during their visit: check in first"
        )
    return visit_id


def _check_device_data(submission: Submission) -> None:
    if submission.started_at > submission.completed_at:
        raise Invalid("device times", errors={"started_at": ["must not be after completed_at"]})
    if submission.device_timezone is not None:
        validation.timezone_name(submission.device_timezone, field="device_timezone")


def _utc(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_window(
    instance: EproInstance, completed_at: dt.datetime, received: dt.datetime, grace: dt.timedelta
) -> None:
    """Completed inside the window (a device clock ahead of ours is judged by receipt)
    and received before the window closes plus the grace for an offline phone."""
    effective = min(completed_at, received)
    opens, closes = instance.opens_at, instance.closes_at
    if received < opens:
        why = f"received at {_utc(received)}, before the window opened"
    elif effective < opens:
        why = f"completed at {_utc(completed_at)}, before the window opened"
    elif effective > closes:
        why = f"completed at {_utc(completed_at)}, after the window closed"
    elif received > closes + grace:
        why = f"received at {_utc(received)}, after the window closed and its grace period"
    else:
        return
    minutes = int(grace.total_seconds() // 60)
    raise Conflict(
        f"{why}: the window opens at {_utc(opens)} and closes at {_utc(closes)} (UTC); "
        f"answers completed in it are accepted until {minutes} minutes' grace after it "
        "closes, and a closed window cannot be filled in later"
    )


def _check_answers(session: Session, instance: EproInstance, submission: Submission) -> None:
    if submission.status == ResponseStatus.DECLINED:
        if submission.answers:
            raise Invalid("answers", errors={"answers": ["a declined response has no answers"]})
        return
    if submission.decline_reason is not None:
        raise Invalid("decline_reason", errors={"decline_reason": ["only for a declined response"]})
    questionnaire = session.get_one(Questionnaire, instance.questionnaire_id)
    validated(questionnaire, submission.answers)


def validated(questionnaire: Questionnaire, answers: list[dict[str, Any]]) -> None:
    errors = validate_answers(questionnaire.items, answers)
    if errors:
        raise Invalid(
            f"the answers do not fit questionnaire {questionnaire.code} version "
            f"{questionnaire.version}; see errors for each item",
            errors=errors,
        )


def _utc_offset(moment: dt.datetime) -> str:
    """ "+01:00": the offset the phone gave, to rebuild the wall-clock time it showed."""
    minutes = int(moment.utcoffset().total_seconds() // 60)  # type: ignore[union-attr]
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _skew_seconds(submission: Submission, received: dt.datetime) -> int:
    """The device clock minus the server's (positive: the phone is ahead). Without
    `sent_at` only a completion in the future reveals it."""
    if submission.sent_at is not None:
        return round((submission.sent_at - received).total_seconds())
    return max(0, round((submission.completed_at - received).total_seconds()))


def _new_response(
    actor: Actor,
    instance: EproInstance,
    submission: Submission,
    received: dt.datetime,
    visit_id: uuid.UUID | None,
) -> EproResponse:
    skew = _skew_seconds(submission, received)
    return EproResponse(
        id=uuid.uuid4(),
        client_id=submission.client_id,
        instance_id=instance.id,
        participant_id=instance.participant_id,
        questionnaire_id=instance.questionnaire_id,
        version=1,
        status=submission.status,
        answers=list(submission.answers),
        started_at=submission.started_at,
        completed_at=submission.completed_at,
        device_utc_offset=_utc_offset(submission.completed_at),
        device_timezone=submission.device_timezone,
        received_at=received,
        clock_skew_seconds=skew,
        clock_skew_flag=abs(skew) > SKEW_FLAG_SECONDS,
        timeliness=(Timeliness.LATE if received > instance.closes_at else Timeliness.ON_TIME).value,
        originator=actor.role_name,
        entered_by=actor.user_id,
        visit_id=visit_id,
        reason=submission.decline_reason,
    )


def _stored(
    session: Session, instance: EproInstance, response: EproResponse
) -> tuple[EproResponse, bool]:
    """Insert, or find what a concurrent request committed first: the same client_id
    (a replay) or another response to the instance (409)."""
    try:
        with session.begin_nested():
            session.add(response)
    except IntegrityError:
        winner = _replayed(session, response.client_id, instance)  # type: ignore[arg-type]
        if winner is None:
            raise Conflict("this instance was already answered") from None
        return winner, False
    return response, True


def submit_batch(
    session: Session,
    actor: Actor,
    submissions: Sequence[Submission],
    *,
    now: dt.datetime,
    grace: dt.timedelta,
) -> list[Outcome]:
    """An offline phone's queue: each submission in its own savepoint and answered on
    its own, so a refused one never undoes the others."""
    require_role(actor, *SUBMITTERS)
    if len(submissions) > MAX_BATCH:
        raise Invalid("batch", errors={"responses": [f"at most {MAX_BATCH} per request"]})
    outcomes = []
    for submission in submissions:
        try:
            with session.begin_nested():
                response, created = submit(session, actor, submission, now=now, grace=grace)
        except DomainError as error:
            outcomes.append(Outcome(error=error))
        else:
            outcomes.append(Outcome(response=response, created=created))
    return outcomes


# --- reads -----------------------------------------------------------------------


def participant_responses(
    session: Session, actor: Actor, participant_id: uuid.UUID
) -> Select[EproResponse]:
    """Every version, newest first (a correction comes before what it corrects)."""
    require_role(actor, *READERS)
    participant = get_visible(session, visible_participants(actor), participant_id, "participant")
    return (
        visible_responses(actor)
        .where(EproResponse.participant_id == participant.id)
        .order_by(EproResponse.received_at.desc(), EproResponse.version.desc(), EproResponse.id)
    )


def get_response(session: Session, actor: Actor, response_id: uuid.UUID) -> EproResponse:
    require_role(actor, *READERS)
    return get_visible(session, visible_responses(actor), response_id, "ePRO response")


def contexts(session: Session, responses: Sequence[EproResponse]) -> dict[uuid.UUID, Context]:
    """Subject codes, successors and free-text items of a page of responses."""
    ids = [response.id for response in responses]
    successors = dict(
        session.execute(
            select(EproResponse.corrects_id, EproResponse.id).where(
                EproResponse.corrects_id.in_(ids)
            )
        ).all()
    )
    # Usually one participant, already in the session's identity map (no query).
    codes = {
        pid: session.get_one(Participant, pid).subject_code
        for pid in {response.participant_id for response in responses}
    }
    # A page is usually of one or two questionnaire versions.
    free_text = {
        qid: disclosure.free_text_items(session.get_one(Questionnaire, qid).items)
        for qid in {response.questionnaire_id for response in responses}
    }
    return {
        response.id: Context(
            codes[response.participant_id],
            successors.get(response.id),
            free_text[response.questionnaire_id],
        )
        for response in responses
    }


def fhir_questionnaire_response(
    session: Session, actor: Actor, response_id: uuid.UUID
) -> dict[str, Any]:
    """The response as a FHIR R4 QuestionnaireResponse, for whoever may read it."""
    response = get_response(session, actor, response_id)
    return epro_fhir.questionnaire_response(
        response,
        session.get_one(Questionnaire, response.questionnaire_id),
        contexts(session, [response])[response.id].subject_code,
        withhold_free_text=not disclosure.sees_free_text(actor),
    )
