"""ePRO demo data for `make run`: two published questionnaires, so that enrolling the
demo participant plans their instances. A daily evening symptom diary, and a one-off
quality-of-life questionnaire open all of the first week, so that the patient's due
list has something to answer whatever the hour. Built through the services,
idempotent."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from demo.seed import STUDY_CODE
from services.epro import checks
from services.epro import definitions as epro_definitions
from services.models import Questionnaire, Study, User
from services.people import participants as people

COORDINATOR = "coordinator.brussels@demo.dct.example"


def _texts(nl: str, fr: str, de: str, en: str) -> dict[str, str]:
    """Every language of the demo study: a version is published only when complete."""
    return {"nl": nl, "fr": fr, "de": de, "en": en}


def _choices(*options: tuple[str, str, str, str, str]) -> list[dict[str, Any]]:
    return [{"value": value, "text": _texts(nl, fr, de, en)} for value, nl, fr, de, en in options]


DIARY = checks.Content(
    code="HF-DIARY",
    version="1.0",
    title=_texts("Dagelijks dagboek", "Journal quotidien", "Tägliches Tagebuch", "Daily diary"),
    items=[
        {
            "link_id": "breathless",
            "type": "single_choice",
            "required": True,
            "text": _texts(
                "Was u vandaag kortademig?",
                "Essoufflé aujourd'hui ?",
                "Heute kurzatmig?",
                "Short of breath today?",
            ),
            "options": _choices(
                ("no", "Nee", "Non", "Nein", "No"),
                ("exertion", "Bij inspanning", "À l'effort", "Bei Anstrengung", "On exertion"),
                ("rest", "In rust", "Au repos", "In Ruhe", "At rest"),
            ),
        },
        {
            "link_id": "breathless_score",
            "type": "nrs",
            "required": True,
            "text": _texts(
                "Hoe erg (0-10)?", "À quel point (0-10) ?", "Wie schlimm (0-10)?", "How bad (0-10)?"
            ),
            "enable_when": {"item": "breathless", "equals": "rest"},
        },
        {
            "link_id": "weight",
            "type": "decimal",
            "min": 30,
            "max": 250,
            "required": False,
            "text": _texts("Gewicht (kg)", "Poids (kg)", "Gewicht (kg)", "Weight (kg)"),
        },
        {
            "link_id": "swollen_ankles",
            "type": "boolean",
            "required": True,
            "text": _texts(
                "Gezwollen enkels?",
                "Chevilles gonflées ?",
                "Geschwollene Knöchel?",
                "Swollen ankles?",
            ),
        },
    ],
    schedule={
        "type": "daily",
        "start_day": 1,
        "end_day": 90,
        "window": {"opens": "18:00", "closes": "23:59"},
    },
)

QUALITY_OF_LIFE = checks.Content(
    code="QOL-BASELINE",
    version="1.0",
    title=_texts("Levenskwaliteit", "Qualité de vie", "Lebensqualität", "Quality of life"),
    items=[
        {
            "link_id": "health_today",
            "type": "vas",
            "required": True,
            "text": _texts(
                "Uw gezondheid vandaag (0-100)",
                "Votre santé aujourd'hui (0-100)",
                "Ihre Gesundheit heute (0-100)",
                "Your health today (0-100)",
            ),
        },
        {
            "link_id": "limits",
            "type": "multiple_choice",
            "required": False,
            "text": _texts(
                "Wat lukt moeilijk?",
                "Qu'est-ce qui est difficile ?",
                "Was fällt Ihnen schwer?",
                "What is hard to do?",
            ),
            "options": _choices(
                ("stairs", "Trappen", "Escaliers", "Treppen", "Stairs"),
                ("walking", "Wandelen", "Marcher", "Gehen", "Walking"),
                ("sleep", "Slapen", "Dormir", "Schlafen", "Sleeping"),
            ),
        },
        {
            "link_id": "remarks",
            "type": "text",
            "max_length": 500,
            "required": False,
            "text": _texts("Opmerkingen", "Remarques", "Bemerkungen", "Remarks"),
        },
    ],
    schedule={
        "type": "once",
        "start_day": 0,
        "window": {"opens": "00:00", "closes": "23:59", "close_after_days": 6},
    },
)


def seed_questionnaires(session: Session) -> None:
    """Before enrolment, so that enrolling plans the instances."""
    study = session.scalars(select(Study).where(Study.code == STUDY_CODE)).one()
    coordinator = session.scalars(
        select(User).where(User.email_index == people.email_index(COORDINATOR))
    ).one()
    actor = people.actor_for(session, coordinator, "demo-seed")
    for content in (DIARY, QUALITY_OF_LIFE):
        exists = session.scalars(
            select(Questionnaire.id).where(
                Questionnaire.study_id == study.id, Questionnaire.code == content.code
            )
        ).first()
        if exists is None:
            draft = epro_definitions.create_draft(session, actor, study.id, content)
            epro_definitions.publish(session, actor, draft.id)
