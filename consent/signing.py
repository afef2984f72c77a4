"""Electronic signatures under 21 CFR Part 11 and ICH E6 4.8.

A signature is executed by its owner re-entering their password in the same session
(11.200: two components, the token's identity plus the password), over the exact
document hash the signer was shown, with a printed name matching the one on file.
The manifestation (11.50) is stored with a keyed binding (11.70), so it cannot be
edited or moved to another record unnoticed. The participant (or their legal
representative) signs first, an impartial witness when needed, the investigator last.

A little over the usual size: the re-authentication, the manifestation and its binding
are one Part 11 control, reviewed together.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field
from typing import cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from consent import discussions
from consent.documents import current_document, visible_documents
from consent.models import (
    Consent,
    ConsentDiscussion,
    ConsentDocument,
    ConsentSignature,
    ConsentStatus,
    DocumentStatus,
    SignerRole,
)
from services import crypto
from services.access import get_visible, visible_participants
from services.actor import Actor, Role
from services.audit import chain as audit
from services.db import utcnow
from services.errors import Conflict, Forbidden, Invalid, Unauthenticated
from services.models import ConsentState, Participant, ParticipantStatus, User
from services.people import credentials, identity
from services.people.identity import AuthPolicy
from services.people.participants import participant_subject

MEANINGS = {
    SignerRole.PARTICIPANT: "I consent to take part in this study",
    SignerRole.LAR: "I consent on behalf of the participant as their legally authorised "
    "representative",
    SignerRole.WITNESS: "Signed as impartial witness: the information was accurately explained "
    "and consent was freely given",
    SignerRole.INVESTIGATOR: "Countersigned as investigator: I conducted the consent discussion",
}
FIRST_SIGNERS = (SignerRole.PARTICIPANT, SignerRole.LAR)


class RefusedAttempt(Conflict):
    """A signature refused for what the signer did or is (a failed quiz, a held
    credential) leaves nothing behind but the attempt's audit event."""

    keep_changes = True


@dataclass(frozen=True)
class SignatureRequest:
    participant_id: uuid.UUID
    role: SignerRole
    full_name: str
    password: str
    document_sha256: str
    clause_choices: dict[str, bool] = field(default_factory=dict)
    quiz_answers: list[str] = field(default_factory=list)
    signature_image: str | None = None


@dataclass(frozen=True)
class ClientInfo:
    address: str | None
    user_agent: str | None


def signature_binding(signature: ConsentSignature) -> str:
    """Keyed hash over the manifestation and the record it belongs to."""
    bound = {
        "id": str(signature.id),
        "consent_id": str(signature.consent_id),
        "participant_id": str(signature.participant_id),
        "document_id": str(signature.document_id),
        "document_version": signature.document_version,
        "document_sha256": signature.document_sha256,
        "signer_role": signature.signer_role,
        "signer_user_id": str(signature.signer_user_id),
        "printed_name": signature.printed_name,
        "meaning": signature.meaning,
        "signed_at": signature.signed_at.astimezone(dt.UTC).isoformat(),
        "clause_choices": signature.clause_choices,
    }
    if signature.credential_note is not None:
        # Bound only when present, so signatures made before it existed still verify.
        bound["credential_note"] = signature.credential_note
    canonical = json.dumps(bound, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return crypto.blind_index(canonical, "consent-signature")


def signature_is_intact(signature: ConsentSignature, consent: Consent) -> bool:
    return (
        signature.binding == signature_binding(signature)
        and signature.consent_id == consent.id
        and signature.document_id == consent.document_id
        and signature.participant_id == consent.participant_id
    )


def _same_name(typed: str, on_file: str | None) -> bool:
    def normal(name: str) -> str:
        return " ".join(name.split()).casefold()

    return on_file is not None and normal(typed) == normal(on_file)


def required_roles(document: ConsentDocument, discussion: ConsentDiscussion) -> set[SignerRole]:
    """A representative signs instead of the participant; a participant who cannot read
    needs an impartial witness even when the document does not list one."""
    roles = {SignerRole(role) for role in document.signer_roles}
    if discussion.lar_name:
        roles = (roles - {SignerRole.PARTICIPANT}) | {SignerRole.LAR}
    else:
        roles.discard(SignerRole.LAR)
    if not discussion.participant_can_read:
        roles.add(SignerRole.WITNESS)
    return roles


def _signer_may_act(actor: Actor, role: SignerRole) -> None:
    if role == SignerRole.PARTICIPANT and actor.role != Role.PATIENT:
        raise Forbidden("only the participant signs as participant, from their own account")
    if role != SignerRole.PARTICIPANT and actor.role != Role.COORDINATOR:
        raise Forbidden(
            "the investigator countersigns, and records a representative's or witness's "
            "signature, from a coordinator account at the participant's site"
        )


def _reauthenticate(
    session: Session,
    actor: Actor,
    policy: AuthPolicy,
    password: str,
    participant: Participant,
    client: ClientInfo,
) -> User:
    try:
        return identity.reauthenticate(
            session, actor, policy, password, purpose="sign", address=client.address
        )
    except Unauthenticated:
        audit.record_change(
            session,
            actor,
            "consent.signature_reauth_failed",
            participant,
            subject=participant_subject(participant),
        )
        raise


def _check_document(
    session: Session, document: ConsentDocument, participant: Participant, shown_sha256: str
) -> None:
    if document.status == DocumentStatus.DRAFT:
        raise Conflict("this version is a draft: only an approved version can be signed")
    if document.status == DocumentStatus.SUPERSEDED:
        raise Conflict("this version was superseded: sign the current version")
    current = current_document(session, participant)
    if current.id != document.id:
        raise Conflict(
            f"version {document.version} ({document.language}) is not the current version "
            f"for this participant: sign version {current.version} ({current.language})"
        )
    if shown_sha256 != document.content_sha256:
        raise Conflict(
            "document_sha256 does not match this version's content_sha256: the text shown is "
            "not the text on record; reload the document and sign again"
        )


def _check_quiz(
    session: Session,
    actor: Actor,
    document: ConsentDocument,
    answers: list[str],
    participant: Participant,
) -> None:
    if not document.quiz:
        return
    if len(answers) != len(document.quiz):
        raise Invalid(
            "quiz answers",
            errors={"quiz_answers": [f"answer each of the {len(document.quiz)} questions"]},
        )
    correct = sum(a == q["answer"] for a, q in zip(answers, document.quiz, strict=True))
    if correct < (document.quiz_pass_mark or 0):
        audit.record_change(
            session,
            actor,
            "consent.quiz_failed",
            document,
            subject=participant_subject(participant),
            after={"correct": correct, "pass_mark": document.quiz_pass_mark},
        )
        raise RefusedAttempt(
            f"the comprehension quiz was not passed ({correct} of {len(document.quiz)} correct, "
            f"{document.quiz_pass_mark} needed): go through the information again with the "
            "study team"
        )


def _name_on_file(
    role: SignerRole, participant: Participant, signer: User, discussion: ConsentDiscussion
) -> str | None:
    return {
        SignerRole.PARTICIPANT: participant.user.full_name,
        SignerRole.LAR: discussion.lar_name,
        SignerRole.WITNESS: discussion.witness_name,
        SignerRole.INVESTIGATOR: signer.full_name,
    }[role]


def _clause_choices(document: ConsentDocument, choices: dict[str, bool]) -> dict[str, bool]:
    codes = {clause["code"] for clause in document.optional_clauses}
    if set(choices) != codes:
        raise Invalid(
            "clause choices",
            errors={"clause_choices": [f"choose yes or no for each clause: {sorted(codes)}"]},
        )
    return dict(choices)


def _consent_for(
    session: Session, participant: Participant, document: ConsentDocument
) -> Consent | None:
    return session.scalars(
        select(Consent).where(
            Consent.participant_id == participant.id, Consent.document_id == document.id
        )
    ).first()


def _check_order(consent: Consent | None, role: SignerRole, required: set[SignerRole]) -> None:
    signed = {SignerRole(s.signer_role) for s in consent.signatures} if consent else set()
    if role not in required:
        raise Conflict(f"this consent does not take a {role.value} signature")
    if consent is not None and consent.status == ConsentStatus.WITHDRAWN:
        raise Conflict("this consent was withdrawn")
    if role in signed:
        raise Conflict(f"this consent already has its {role.value} signature")
    if role in FIRST_SIGNERS:
        return
    first = next(r for r in FIRST_SIGNERS if r in required)
    if first not in signed:
        raise Conflict(f"the {first.value} signs first")
    if role == SignerRole.INVESTIGATOR and (required - {role}) - signed:
        missing = ", ".join(sorted(r.value for r in (required - {role}) - signed))
        raise Conflict(f"the investigator countersigns last; still missing: {missing}")


def sign(
    session: Session,
    actor: Actor,
    document_id: uuid.UUID,
    request: SignatureRequest,
    client: ClientInfo,
    policy: AuthPolicy | None = None,
) -> ConsentSignature:
    _signer_may_act(actor, request.role)
    participant = get_visible(
        session, visible_participants(actor), request.participant_id, "participant"
    )
    document = get_visible(session, visible_documents(actor), document_id, "consent document")
    if participant.status == ParticipantStatus.WITHDRAWN:
        raise Conflict("this participant has withdrawn from the study")
    policy = policy or AuthPolicy()
    signer = _reauthenticate(session, actor, policy, request.password, participant, client)
    credential = credentials.signing_check(signer, hold=policy.signature_hold, now=utcnow())
    if credential.refused:
        audit.record_change(
            session,
            actor,
            "consent.signature_held",
            document,
            subject=participant_subject(participant),
            after={"password_set_via": signer.password_set_via, "signer_role": request.role.value},
        )
        raise RefusedAttempt(credential.refused)
    _check_document(session, document, participant, request.document_sha256)
    discussion = discussions.latest(session, participant)
    if discussion is None:
        raise Conflict(
            "no consent discussion is recorded: the study team records it "
            "(POST /participants/{id}/consent-discussions) before anyone signs"
        )
    consent = _consent_for(session, participant, document)
    _check_order(consent, request.role, required_roles(document, discussion))
    if request.role in FIRST_SIGNERS:
        _check_quiz(session, actor, document, request.quiz_answers, participant)
    if not _same_name(
        request.full_name, _name_on_file(request.role, participant, signer, discussion)
    ):
        raise Invalid(
            "printed name",
            errors={"full_name": ["type the full name exactly as on file for this signer"]},
        )
    choices = None
    if request.role in FIRST_SIGNERS:
        choices = _clause_choices(document, request.clause_choices)
        consent = _open_consent(session, participant, document, choices)
    # _check_order refuses every signer but the first while there is no consent yet.
    consent = cast(Consent, consent)
    signature = ConsentSignature(
        id=uuid.uuid4(),
        consent_id=consent.id,
        participant_id=participant.id,
        document_id=document.id,
        document_version=document.version,
        document_sha256=document.content_sha256,
        signer_role=request.role.value,
        signer_user_id=signer.id,
        printed_name=" ".join(request.full_name.split()),
        meaning=MEANINGS[request.role],
        signed_at=dt.datetime.now(dt.UTC),
        client_address=client.address,
        user_agent=(client.user_agent or "")[:500] or None,
        clause_choices=choices,
        signature_image=request.signature_image,
        credential_note=credential.note,
    )
    signature.binding = signature_binding(signature)
    session.add(signature)
    session.flush()
    session.refresh(consent, ["signatures"])
    audit.record_change(
        session,
        actor,
        "consent.sign",
        consent,
        subject=participant_subject(participant),
        after={
            "signature_id": str(signature.id),
            "signer_role": signature.signer_role,
            "meaning": signature.meaning,
            "document_version": signature.document_version,
            "document_sha256": signature.document_sha256,
            "clause_choices": choices,
        },
    )
    if {SignerRole(s.signer_role) for s in consent.signatures} >= required_roles(
        document, discussion
    ):
        _complete(session, actor, consent, participant)
    return signature


def _open_consent(
    session: Session,
    participant: Participant,
    document: ConsentDocument,
    choices: dict[str, bool],
) -> Consent:
    consent = Consent(
        id=uuid.uuid4(),
        participant_id=participant.id,
        document_id=document.id,
        status=ConsentStatus.PENDING_COUNTERSIGN.value,
        clause_choices=choices,
        withdrawn_clauses={},
    )
    session.add(consent)
    if participant.consent_state == ConsentState.NONE:
        participant.consent_state = ConsentState.PENDING.value
    session.flush()
    return consent


def _complete(session: Session, actor: Actor, consent: Consent, participant: Participant) -> None:
    """Every required signature is in: the consent is complete and current, earlier
    ones are superseded, and a screened participant becomes consented."""
    consent.status = ConsentStatus.COMPLETE.value
    consent.completed_at = dt.datetime.now(dt.UTC)
    earlier = session.scalars(
        select(Consent).where(
            Consent.participant_id == participant.id,
            Consent.id != consent.id,
            Consent.status.in_(
                [
                    ConsentStatus.COMPLETE.value,
                    ConsentStatus.REQUIRES_RECONSENT.value,
                    ConsentStatus.PENDING_COUNTERSIGN.value,
                ]
            ),
        )
    ).all()
    for old in earlier:
        old.status = ConsentStatus.SUPERSEDED.value
    before = {"status": participant.status, "consent_state": participant.consent_state}
    participant.consent_state = ConsentState.COMPLETE.value
    if participant.status == ParticipantStatus.SCREENING:
        participant.status = ParticipantStatus.CONSENTED.value
    session.flush()
    audit.record_change(
        session,
        actor,
        "consent.complete",
        consent,
        subject=participant_subject(participant),
        before=before,
        after={
            "status": participant.status,
            "consent_state": participant.consent_state,
            "superseded_consents": [str(old.id) for old in earlier],
        },
    )
