"""eConsent test data: document versions, discussions, signatures and withdrawal,
built through the consent services like real consents."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from consent import discussions, documents, signing, withdrawal
from consent.models import Consent, ConsentDocument, ConsentSignature, SignerRole
from services.models import Study, User
from services.people import participants as people
from tests.factories.people import ADMIN, PASSWORD, Patient, serial

CONSENT_BODY = "## Why this study\n\nWe study home monitoring.\n\n## Risks\n\nFew."


def _consent_content(
    language: str,
    *,
    title: str | None = None,
    signer_roles: tuple[str, ...] = ("participant", "investigator"),
    clauses: tuple[str, ...] = ("future_research",),
    quiz: bool = False,
) -> documents.DraftContent:
    return documents.DraftContent(
        language=language,
        title=title or f"Informed consent ({language})",
        body_markdown=CONSENT_BODY,
        signer_roles=list(signer_roles),
        optional_clauses=[{"code": c, "text": f"I agree to {c}"} for c in clauses],
        quiz=[{"question": "Can you stop at any time?", "options": ["yes", "no"], "answer": "yes"}]
        if quiz
        else [],
        quiz_pass_mark=1 if quiz else None,
    )


def _set_draft_title(language: str) -> str:
    return f"Informed consent ({language}), drafted with the set"


def draft_the_set(db: Session, study: Study) -> None:
    """A draft in each study language that has no consent document yet: approval needs
    a document in every language (the rest of the set, before the committee)."""
    present = set(
        db.scalars(select(ConsentDocument.language).where(ConsentDocument.study_id == study.id))
    )
    for language in study.languages:
        if language not in present:
            content = _consent_content(language, title=_set_draft_title(language))
            documents.create_draft(db, ADMIN, study.id, content)


def make_consent_document(
    db: Session,
    study: Study,
    *,
    language: str = "nl",
    approved: bool = True,
    signer_roles: tuple[str, ...] = ("participant", "investigator"),
    clauses: tuple[str, ...] = ("future_research",),
    quiz: bool = False,
    requires_reconsent: bool = False,
    effective_from: dt.date | None = None,
) -> ConsentDocument:
    """A consent document through the service, approved (effective today) by default.

    Before approving, the study's other languages without a document get a draft
    (`draft_the_set`); asked later for a document in such a language, the factory
    takes that draft over, so versions are numbered as if each were drafted on its own."""
    content = _consent_content(language, signer_roles=signer_roles, clauses=clauses, quiz=quiz)
    set_draft = db.scalars(
        select(ConsentDocument).where(
            ConsentDocument.study_id == study.id,
            ConsentDocument.language == language,
            ConsentDocument.status == "draft",
            ConsentDocument.title == _set_draft_title(language),
        )
    ).first()
    if set_draft is not None:
        document = documents.update_draft(db, ADMIN, set_draft.id, content)
    else:
        document = documents.create_draft(db, ADMIN, study.id, content)
    if approved:
        draft_the_set(db, study)
        today = dt.date.today()
        documents.approve(
            db,
            ADMIN,
            document.id,
            documents.Approval(
                ethics_reference=f"EC-{serial()}",
                approved_on=today,
                effective_from=effective_from or today,
                requires_reconsent=requires_reconsent,
            ),
            today,
        )
    return document


def record_discussion(db: Session, patient: Patient, coordinator: User, **extra: object) -> None:
    discussions.record(
        db,
        people.actor_for(db, coordinator, "factory"),
        patient.participant.id,
        discussions.Discussion(
            mode="in_person",
            held_at=dt.datetime.now(dt.UTC),
            **extra,  # type: ignore[arg-type]
        ),
    )


def sign_as(
    db: Session,
    signer: User,
    patient: Patient,
    document: ConsentDocument,
    role: str,
    *,
    full_name: str | None = None,
) -> ConsentSignature:
    """Sign through the service, re-authenticating with the factory password."""
    return signing.sign(
        db,
        people.actor_for(db, signer, "factory"),
        document.id,
        signing.SignatureRequest(
            participant_id=patient.participant.id,
            role=SignerRole(role),
            full_name=full_name or signer.full_name,
            password=PASSWORD,
            document_sha256=document.content_sha256,
            clause_choices={c["code"]: True for c in document.optional_clauses}
            if role in ("participant", "legally_authorised_representative")
            else {},
            quiz_answers=[q["answer"] for q in document.quiz],
        ),
        signing.ClientInfo(address="127.0.0.1", user_agent="factory"),
    )


def make_complete_consent(
    db: Session, patient: Patient, coordinator: User, document: ConsentDocument
) -> Consent:
    """Discussion, participant signature, investigator countersignature: complete."""
    record_discussion(db, patient, coordinator)
    sign_as(db, patient.user, patient, document, "participant")
    signature = sign_as(db, coordinator, patient, document, "investigator")
    consent = db.get(Consent, signature.consent_id)
    assert consent is not None and consent.status == "complete"
    return consent


def withdraw_from_study(db: Session, patient: Patient, coordinator: User) -> Consent:
    """The coordinator records the patient's withdrawal of their (only) consent."""
    consent = db.scalars(
        select(Consent).where(Consent.participant_id == patient.participant.id)
    ).one()
    return withdrawal.withdraw(
        db,
        people.actor_for(db, coordinator, "factory"),
        consent.id,
        withdrawal.Withdrawal("all", reason="told the site by phone"),
    )
