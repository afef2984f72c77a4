"""Consent document versions: drafted, approved by an ethics committee, superseded.

An approved version is frozen. The version a participant signs is the current one
for their language: approved and effective today. When a newer version becomes
effective it supersedes the older ones, and if it is marked `requires_reconsent`
every participant whose consent rests on an older version must sign again before
any new study procedure.

A little over the usual size: drafting, approval and supersession are one state
machine over the same frozen fields.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, cast

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from consent.models import (
    Consent,
    ConsentDocument,
    ConsentStatus,
    DocumentStatus,
    SignerRole,
)
from services.access import get_visible, require_role, visible_studies, visible_study_versions
from services.actor import Actor, Role
from services.audit import chain as audit
from services.clock import today_in
from services.errors import Conflict, Invalid
from services.models import ConsentState, Participant, Study
from services.people.participants import participant_subject
from services.validation import language_code, text_problem

FROZEN = "an approved consent document is frozen; draft a new version instead"


@dataclass(frozen=True)
class DraftContent:
    language: str
    title: str
    body_markdown: str
    signer_roles: list[str]
    optional_clauses: list[dict[str, str]] = field(default_factory=list)
    quiz: list[dict[str, Any]] = field(default_factory=list)
    quiz_pass_mark: int | None = None


DRAFT_FIELDS = tuple(item.name for item in fields(DraftContent))


@dataclass(frozen=True)
class Approval:
    ethics_reference: str
    approved_on: dt.date
    effective_from: dt.date
    requires_reconsent: bool = False


def content_sha256(document: ConsentDocument) -> str:
    """SHA-256 of what a signer is shown: the canonical JSON of language, version,
    title, body and optional clauses (keys sorted, no spaces, UTF-8)."""
    shown = {
        "language": document.language,
        "version": document.version,
        "title": document.title,
        "body_markdown": document.body_markdown,
        "optional_clauses": document.optional_clauses,
    }
    canonical = json.dumps(shown, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _validate(study: Study, content: DraftContent) -> None:
    errors: dict[str, list[str]] = {}
    language = language_code(content.language, field="language")
    if language not in study.languages:
        errors["language"] = [f"this study runs in {', '.join(study.languages)}"]
    roles = set(content.signer_roles)
    known = {role.value for role in SignerRole}
    if not roles <= known or len(roles) != len(content.signer_roles):
        errors["signer_roles"] = [f"list each role once, from: {', '.join(sorted(known))}"]
    elif SignerRole.PARTICIPANT not in roles or SignerRole.INVESTIGATOR not in roles:
        errors["signer_roles"] = ["the participant signs and the investigator countersigns"]
    codes = [clause.get("code") for clause in content.optional_clauses]
    if len(set(codes)) != len(codes) or not all(codes):
        errors["optional_clauses"] = ["each clause needs a unique code"]
    for index, question in enumerate(content.quiz):
        if question.get("answer") not in question.get("options", []):
            errors[f"quiz.{index}.answer"] = ["the answer must be one of the options"]
    if content.quiz and not 1 <= (content.quiz_pass_mark or 0) <= len(content.quiz):
        errors["quiz_pass_mark"] = [f"how many correct answers pass: 1 to {len(content.quiz)}"]
    if not content.quiz and content.quiz_pass_mark is not None:
        errors["quiz_pass_mark"] = ["a pass mark needs a quiz"]
    for name, text, multiline in _shown_text(content):
        problem = text_problem(text, multiline=multiline) if isinstance(text, str) else None
        if problem:
            errors[name] = [problem]
    if errors:
        raise Invalid("the consent document is not valid", errors=errors)


def _shown_text(content: DraftContent) -> Iterator[tuple[str, Any, bool]]:
    """Each text a signer reads, by field path, and whether it may span lines: none may
    hold control characters or bidirectional overrides (see `validation.text_problem`)."""
    yield "title", content.title, False
    yield "body_markdown", content.body_markdown, True
    for index, clause in enumerate(content.optional_clauses):
        yield f"optional_clauses.{index}.text", clause.get("text"), True
    for index, question in enumerate(content.quiz):
        yield f"quiz.{index}.question", question.get("question"), True
        for option, text in enumerate(question.get("options", [])):
            yield f"quiz.{index}.options.{option}", text, False


# What an event keeps of the row before and after a change.
DOCUMENT_FIELDS = (
    "language",
    "version",
    "status",
    "content_sha256",
    "ethics_reference",
    "effective_from",
    "requires_reconsent",
)


def _subject(document: ConsentDocument) -> audit.Subject:
    return audit.Subject(study_id=document.study_id)


def create_draft(
    session: Session, actor: Actor, study_id: uuid.UUID, content: DraftContent
) -> ConsentDocument:
    require_role(actor, Role.COORDINATOR, Role.ADMIN)
    study = get_visible(session, visible_studies(actor), study_id, "study")
    _validate(study, content)
    language = content.language.lower()
    latest = session.scalar(
        select(func.max(ConsentDocument.version)).where(
            ConsentDocument.study_id == study.id, ConsentDocument.language == language
        )
    )
    document = ConsentDocument(
        id=uuid.uuid4(),
        study_id=study.id,
        language=language,
        version=(latest or 0) + 1,
        title=content.title,
        body_markdown=content.body_markdown,
        signer_roles=list(content.signer_roles),
        optional_clauses=[dict(clause) for clause in content.optional_clauses],
        quiz=[dict(question) for question in content.quiz],
        quiz_pass_mark=content.quiz_pass_mark,
        created_by=actor.user_id,
    )
    document.content_sha256 = content_sha256(document)
    session.add(document)
    session.flush()
    audit.record_change(
        session,
        actor,
        "consent_document.draft",
        document,
        subject=_subject(document),
        after=audit.snapshot(document, DOCUMENT_FIELDS),
    )
    return document


def study_documents(
    session: Session,
    actor: Actor,
    study_id: uuid.UUID,
    *,
    language: str | None = None,
    status: str | None = None,
) -> Select[ConsentDocument]:
    """Every version of a study's consent the actor may see, by language then newest
    first; 404 for a study they cannot see."""
    get_visible(session, visible_studies(actor), study_id, "study")
    query = visible_documents(actor).where(ConsentDocument.study_id == study_id)
    if language is not None:
        query = query.where(ConsentDocument.language == language.lower())
    if status is not None:
        query = query.where(ConsentDocument.status == status)
    return query.order_by(ConsentDocument.language, ConsentDocument.version.desc())


def change_draft(
    session: Session, actor: Actor, document_id: uuid.UUID, changes: Mapping[str, Any]
) -> ConsentDocument:
    """A PATCH of a draft: the fields not given keep their values."""
    require_role(actor, Role.COORDINATOR, Role.ADMIN)
    document = get_visible(session, visible_documents(actor), document_id, "consent document")
    current = {name: getattr(document, name) for name in DRAFT_FIELDS}
    return update_draft(session, actor, document_id, DraftContent(**{**current, **changes}))


def update_draft(
    session: Session, actor: Actor, document_id: uuid.UUID, content: DraftContent
) -> ConsentDocument:
    require_role(actor, Role.COORDINATOR, Role.ADMIN)
    document = get_visible(session, visible_documents(actor), document_id, "consent document")
    if document.status != DocumentStatus.DRAFT:
        raise Conflict(FROZEN)
    if content.language.lower() != document.language:
        raise Invalid("language", errors={"language": ["a version keeps its language"]})
    study = session.get_one(Study, document.study_id)
    _validate(study, content)
    before = audit.snapshot(document, DOCUMENT_FIELDS)
    document.title = content.title
    document.body_markdown = content.body_markdown
    document.signer_roles = list(content.signer_roles)
    document.optional_clauses = [dict(clause) for clause in content.optional_clauses]
    document.quiz = [dict(question) for question in content.quiz]
    document.quiz_pass_mark = content.quiz_pass_mark
    document.content_sha256 = content_sha256(document)
    session.flush()
    audit.record_change(
        session,
        actor,
        "consent_document.update",
        document,
        subject=_subject(document),
        before=before,
        after=audit.snapshot(document, DOCUMENT_FIELDS),
    )
    return document


def approve(
    session: Session,
    actor: Actor,
    document_id: uuid.UUID,
    approval: Approval,
    today: dt.date | None = None,
) -> ConsentDocument:
    require_role(actor, Role.ADMIN)
    document = get_visible(session, visible_documents(actor), document_id, "consent document")
    if document.status != DocumentStatus.DRAFT:
        raise Conflict(FROZEN)
    if approval.effective_from < approval.approved_on:
        raise Invalid("dates", errors={"effective_from": ["cannot be before the approval date"]})
    _require_every_language(session, document)
    before = audit.snapshot(document, DOCUMENT_FIELDS)
    document.status = DocumentStatus.APPROVED.value
    document.ethics_reference = approval.ethics_reference
    document.approved_on = approval.approved_on
    document.effective_from = approval.effective_from
    document.requires_reconsent = approval.requires_reconsent
    document.approved_by = actor.user_id
    session.flush()
    audit.record_change(
        session,
        actor,
        "consent_document.approve",
        document,
        subject=_subject(document),
        before=before,
        after=audit.snapshot(document, DOCUMENT_FIELDS),
    )
    apply_effective_versions(session, actor, today)
    return document


def _require_every_language(session: Session, document: ConsentDocument) -> None:
    """An approval is of a set that covers the study: every study language must have a
    consent document, approved or at least drafted for the committee, or its speakers
    could never consent. Versions are numbered per language and superseded per
    language (a correction of one translation is a version of that language alone, and
    a language added later starts at 1), so the rule asks for a document of each
    language, not for the same version number in each."""
    study = session.get_one(Study, document.study_id)
    present = set(
        session.scalars(
            select(ConsentDocument.language).where(ConsentDocument.study_id == study.id)
        )
    )
    missing = [language for language in study.languages if language not in present]
    if missing:
        listed = ", ".join(missing)
        raise Invalid(
            f"the study runs in {', '.join(study.languages)} but has no consent document in "
            f"{listed}: draft one in {listed} before approving any version",
            errors={"language": [f"no consent document in {listed}"]},
        )


def apply_effective_versions(session: Session, actor: Actor, today: dt.date | None = None) -> int:
    """Supersede every approved version that a newer effective one replaces, and flag
    re-consent. Runs on approval and hourly (a version may become effective later).
    "Today" is the study's calendar day unless a test or back-fill passes one."""
    superseded = 0
    approved = (
        select(ConsentDocument, Study.default_timezone)
        .join(Study, Study.id == ConsentDocument.study_id)
        .where(ConsentDocument.status == DocumentStatus.APPROVED.value)
        .order_by(ConsentDocument.version)
    )
    effective = [
        document
        for document, zone in session.execute(approved).all()
        # Approval sets effective_from, and only approved documents are read here.
        if cast(dt.date, document.effective_from) <= (today or today_in(zone))
    ]
    for newer in effective:
        older = session.scalars(
            select(ConsentDocument).where(
                ConsentDocument.study_id == newer.study_id,
                ConsentDocument.language == newer.language,
                ConsentDocument.status == DocumentStatus.APPROVED.value,
                ConsentDocument.version < newer.version,
            )
        ).all()
        for document in older:
            document.status = DocumentStatus.SUPERSEDED.value
            superseded += 1
            audit.record_change(
                session,
                actor,
                "consent_document.supersede",
                document,
                subject=_subject(document),
                after={"superseded_by": str(newer.id), "version": newer.version},
            )
            if newer.requires_reconsent:
                _require_reconsent(session, actor, document, newer)
    session.flush()
    return superseded


def _require_reconsent(
    session: Session, actor: Actor, old: ConsentDocument, new: ConsentDocument
) -> None:
    """What participants did under the old version stays valid; new procedures wait."""
    consents = session.scalars(
        select(Consent).where(
            Consent.document_id == old.id,
            Consent.status.in_(
                [ConsentStatus.COMPLETE.value, ConsentStatus.PENDING_COUNTERSIGN.value]
            ),
        )
    ).all()
    for record in consents:
        participant = session.get_one(Participant, record.participant_id)
        record.status = ConsentStatus.REQUIRES_RECONSENT.value
        if participant.consent_state in (ConsentState.COMPLETE, ConsentState.PENDING):
            participant.consent_state = ConsentState.REQUIRES_RECONSENT.value
        audit.record_change(
            session,
            actor,
            "consent.requires_reconsent",
            record,
            subject=participant_subject(participant),
            after={
                "status": record.status,
                "new_document_id": str(new.id),
                "new_version": new.version,
            },
        )


def visible_documents(actor: Actor) -> Select[ConsentDocument]:
    """Staff see their studies' documents; a patient never a draft."""
    return visible_study_versions(actor, ConsentDocument, DocumentStatus.DRAFT.value)


def current_document(
    session: Session, participant: Participant, today: dt.date | None = None
) -> ConsentDocument:
    """The version this participant must sign: approved, effective (on the study's
    calendar day), in their language."""
    today = today or today_in(participant.study.default_timezone)
    language = participant.user.locale
    document = session.scalars(
        select(ConsentDocument)
        .where(
            ConsentDocument.study_id == participant.study_id,
            ConsentDocument.language == language,
            ConsentDocument.status == DocumentStatus.APPROVED.value,
            ConsentDocument.effective_from <= today,
        )
        .order_by(ConsentDocument.version.desc())
    ).first()
    if document is None:
        raise Conflict(
            f"no consent document is approved and effective in this participant's language "
            f"({language}); the study team must have one approved first"
        )
    return document


def record_opened(session: Session, actor: Actor, document: ConsentDocument) -> None:
    """A participant opening the text is part of the consent record (ICH E6 4.8)."""
    if actor.role != Role.PATIENT:
        return
    participant = session.get_one(Participant, actor.participant_id)
    audit.record_change(
        session,
        actor,
        "consent_document.open",
        document,
        subject=participant_subject(participant),
        after={"version": document.version, "content_sha256": document.content_sha256},
    )


def get_document(session: Session, actor: Actor, document_id: uuid.UUID) -> ConsentDocument:
    """One version; a participant's reading of it is recorded."""
    document = get_visible(session, visible_documents(actor), document_id, "consent document")
    record_opened(session, actor, document)
    return document
