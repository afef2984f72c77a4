"""eConsent demo data for `make run`: an approved consent in each study language, one
participant fully consented and enrolled, one awaiting countersignature, one who has
had the consent discussion only. Idempotent, and built through the real services."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from consent import discussions, documents, signing
from consent.models import ConsentDocument, SignerRole
from demo.seed import ADMIN_EMAIL, DEMO_PASSWORD, STUDY_CODE
from services.actor import Actor
from services.clock import today_in
from services.models import Participant, Study, User
from services.people import enrolment
from services.people import participants as people

TEXTS = {
    "nl": ("Toestemmingsformulier", "Waarom deze studie", "U mag op elk moment stoppen."),
    "fr": (
        "Formulaire de consentement",
        "Pourquoi cette étude",
        "Vous pouvez arrêter à tout moment.",
    ),
    "de": ("Einwilligungserklärung", "Warum diese Studie", "Sie können jederzeit aufhören."),
    "en": ("Informed consent form", "Why this study", "You may stop at any time."),
}
CLAUSES = [
    {"code": "future_research", "text": "My samples may be used in future research."},
    {"code": "genetic_testing", "text": "My samples may be used for genetic testing."},
]


def _actor(session: Session, email: str) -> Actor:
    user = session.scalars(select(User).where(User.email_index == people.email_index(email))).one()
    return people.actor_for(session, user, "demo-seed")


def _body(title: str, why: str, stop: str) -> str:
    return (
        f"# {title}\n\n## {why}\n\nThis demo study follows heart failure at home: a nurse "
        "visits you, you answer short questionnaires and you measure your blood pressure.\n\n"
        f"## Your rights\n\n{stop} Stopping does not change your care.\n"
    )


def seed(session: Session) -> None:
    study = session.scalars(select(Study).where(Study.code == STUDY_CODE)).one()
    if session.scalars(select(ConsentDocument).where(ConsentDocument.study_id == study.id)).first():
        return
    admin = _actor(session, ADMIN_EMAIL)
    today = today_in(study.default_timezone)
    # The whole set is drafted before any approval: approval needs every study language.
    drafts = {}
    for language, texts in TEXTS.items():
        drafts[language] = documents.create_draft(
            session,
            admin,
            study.id,
            documents.DraftContent(
                language=language,
                title=texts[0],
                body_markdown=_body(*texts),
                signer_roles=[SignerRole.PARTICIPANT.value, SignerRole.INVESTIGATOR.value],
                optional_clauses=CLAUSES,
                quiz=[
                    {
                        "question": "Can you stop taking part at any time?",
                        "options": ["yes", "no"],
                        "answer": "yes",
                    }
                ],
                quiz_pass_mark=1,
            ),
        )
    by_language = {}
    for language, draft in drafts.items():
        by_language[language] = documents.approve(
            session,
            admin,
            draft.id,
            documents.Approval(f"EC-DEMO-{language.upper()}-1", today, today),
            today,
        )
    coordinators = {
        "BRU": _actor(session, "coordinator.brussels@demo.dct.example"),
        "LIE": _actor(session, "coordinator.liege@demo.dct.example"),
    }
    progress = {
        "jan.janssens@demo.dct.example": "enrolled",
        "emma.leroy@demo.dct.example": "signed",
    }
    for participant in session.scalars(select(Participant).where(Participant.study_id == study.id)):
        coordinator = coordinators[participant.site.code]
        discussions.record(
            session,
            coordinator,
            participant.id,
            discussions.Discussion(mode="in_person", held_at=dt.datetime.now(dt.UTC)),
        )
        stage = progress.get(participant.user.email or "")
        if stage is None:
            continue
        document = by_language[participant.user.locale]
        _sign(
            session,
            people.actor_for(session, participant.user, "demo-seed"),
            participant,
            document,
            SignerRole.PARTICIPANT,
            participant.user.full_name,
        )
        if stage == "enrolled":
            investigator = session.get(User, coordinator.user_id)
            _sign(
                session,
                coordinator,
                participant,
                document,
                SignerRole.INVESTIGATOR,
                investigator.full_name,
            )
            enrolment.enroll(session, coordinator, participant.id, today)


def _sign(
    session: Session,
    actor: Actor,
    participant: Participant,
    document: ConsentDocument,
    role: SignerRole,
    name: str,
) -> None:
    signing.sign(
        session,
        actor,
        document.id,
        signing.SignatureRequest(
            participant_id=participant.id,
            role=role,
            full_name=name,
            password=DEMO_PASSWORD,
            document_sha256=document.content_sha256,
            clause_choices={"future_research": True, "genetic_testing": False}
            if role == SignerRole.PARTICIPANT
            else {},
            quiz_answers=["yes"] if role == SignerRole.PARTICIPANT else [],
        ),
        signing.ClientInfo(address=None, user_agent="demo-seed"),
    )
