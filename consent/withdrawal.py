"""Withdrawal of consent (ICH E6 4.8.10(m), EU CTR Art. 28(3)): at any time, without
giving a reason to the sponsor, never deleting what was collected before."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from consent.models import Consent, ConsentStatus
from consent.records import get_consent
from services.access import require_role
from services.actor import Actor, Role
from services.audit import chain as audit
from services.db import utcnow
from services.epro import plan as epro_plan
from services.errors import Conflict, Invalid, Unauthenticated
from services.models import ConsentState, Participant, ParticipantStatus
from services.notifications import outbox
from services.people import identity
from services.people.identity import AuthPolicy
from services.people.participants import participant_subject
from services.visits import booking as visits

WITHDRAWABLE = (
    ConsentStatus.COMPLETE,
    ConsentStatus.PENDING_COUNTERSIGN,
    ConsentStatus.REQUIRES_RECONSENT,
)


@dataclass(frozen=True)
class Withdrawal:
    scope: str  # "all", "contact" or "clause:<code>"
    reason: str | None = None
    password: str | None = None


def withdraw(
    session: Session,
    actor: Actor,
    consent_id: uuid.UUID,
    request: Withdrawal,
    policy: AuthPolicy | None = None,
    address: str | None = None,
) -> Consent:
    require_role(actor, Role.PATIENT, Role.COORDINATOR)
    consent = get_consent(session, actor, consent_id)
    participant = session.get_one(Participant, consent.participant_id)
    if actor.role == Role.PATIENT:
        # As at signing: failures count towards the lock-out of the caller's address.
        try:
            identity.reauthenticate(
                session,
                actor,
                policy or AuthPolicy(),
                request.password or "",
                purpose="withdraw",
                address=address,
            )
        except Unauthenticated:
            audit.record_change(
                session,
                actor,
                "consent.withdraw_reauth_failed",
                consent,
                subject=participant_subject(participant),
            )
            raise
    elif not (request.reason or "").strip():
        raise Invalid(
            "reason", errors={"reason": ["say how the participant expressed the withdrawal"]}
        )
    if consent.status == ConsentStatus.WITHDRAWN and request.scope == "all":
        raise Conflict("this consent was already withdrawn")
    # After withdrawing from the study a participant may still stop contact or an
    # optional use of their data (future research), so those scopes stay open.
    if consent.status not in (*WITHDRAWABLE, ConsentStatus.WITHDRAWN):
        raise Conflict(f"a {consent.status} consent cannot be withdrawn")
    now = utcnow()
    before = {
        "status": consent.status,
        "withdrawn_clauses": dict(consent.withdrawn_clauses),
        "contact_allowed": participant.contact_allowed,
    }
    if request.scope == "all":
        _withdraw_all(consent, participant, request, now)
        visits.cancel_future(session, actor, participant, "consent withdrawn")
        epro_plan.cancel_future(session, actor, participant, "consent withdrawn")
    elif request.scope == "contact":
        if consent.contact_withdrawn_at:
            raise Conflict("contact was already withdrawn")
        consent.contact_withdrawn_at = now
        participant.contact_allowed = False
    elif request.scope.startswith("clause:"):
        _withdraw_clause(consent, request.scope.removeprefix("clause:"), now)
    else:
        raise Invalid("scope", errors={"scope": ["use all, contact or clause:<code>"]})
    # The dispatcher would refuse them at sending anyway; cancelled now, the outbox the
    # coordinator sees says at once that nothing more goes to this participant.
    sms_cancelled = 0
    if request.scope in ("all", "contact"):
        reason = "consent withdrawn" if request.scope == "all" else "contact withdrawn"
        sms_cancelled = outbox.cancel_participant_messages(session, participant, reason)
    session.flush()
    audit.record_change(
        session,
        actor,
        "consent.withdraw",
        consent,
        subject=participant_subject(participant),
        before=before,
        after={
            "scope": request.scope,
            "status": consent.status,
            "withdrawn_clauses": dict(consent.withdrawn_clauses),
            "contact_allowed": participant.contact_allowed,
            "participant_status": participant.status,
            "sms_cancelled": sms_cancelled,
        },
        reason=request.reason,
    )
    return consent


def _withdraw_all(
    consent: Consent, participant: Participant, request: Withdrawal, now: dt.datetime
) -> None:
    consent.status = ConsentStatus.WITHDRAWN.value
    consent.withdrawn_at = now
    consent.withdrawal_reason = request.reason
    participant.status = ParticipantStatus.WITHDRAWN.value
    participant.consent_state = ConsentState.WITHDRAWN.value


def _withdraw_clause(consent: Consent, code: str, now: dt.datetime) -> None:
    if code not in consent.clause_choices:
        raise Invalid("clause", errors={"scope": [f"this consent has no clause {code!r}"]})
    if not consent.clause_choices[code]:
        raise Conflict(f"clause {code!r} was not agreed to, so there is nothing to withdraw")
    if code in consent.withdrawn_clauses:
        raise Conflict(f"clause {code!r} was already withdrawn")
    consent.withdrawn_clauses = {**consent.withdrawn_clauses, code: now.isoformat()}
