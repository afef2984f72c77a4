"""ePRO test data: a questionnaire with one item of every type, and instances with
windows the test chooses (planning itself is tested in test_epro_plan)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy.orm import Session

from services.db import utcnow
from services.models import (
    EproInstance,
    InstanceStatus,
    Participant,
    Questionnaire,
    QuestionnaireStatus,
    Study,
    User,
)


def texts(value: str, languages: tuple[str, ...] = ("nl", "fr", "en")) -> dict[str, str]:
    return {language: f"{value} ({language})" for language in languages}


def option(value: str) -> dict[str, Any]:
    return {"value": value, "text": texts(value)}


# One item of every type; q9 is shown only when q7 is answered true.
ITEMS: list[dict[str, Any]] = [
    {
        "link_id": "q1",
        "type": "single_choice",
        "required": True,
        "text": texts("Breathless?"),
        "options": [option("none"), option("some"), option("severe")],
    },
    {
        "link_id": "q2",
        "type": "multiple_choice",
        "required": False,
        "text": texts("Symptoms"),
        "options": [option("cough"), option("swelling"), option("fatigue")],
    },
    {
        "link_id": "q3",
        "type": "integer",
        "required": False,
        "min": 0,
        "max": 20,
        "text": texts("Pillows"),
    },
    {
        "link_id": "q4",
        "type": "decimal",
        "required": False,
        "min": 30.0,
        "max": 250.0,
        "text": texts("Weight kg"),
    },
    {"link_id": "q5", "type": "nrs", "required": True, "text": texts("Pain 0-10")},
    {"link_id": "q6", "type": "vas", "required": False, "text": texts("Health today 0-100")},
    {"link_id": "q7", "type": "boolean", "required": True, "text": texts("Any fall?")},
    {"link_id": "q8", "type": "date", "required": False, "text": texts("Last hospital stay")},
    {
        "link_id": "q9",
        "type": "text",
        "required": True,
        "max_length": 200,
        "text": texts("Describe the fall"),
        "enable_when": {"item": "q7", "equals": True},
    },
]

DAILY_EVENING: dict[str, Any] = {
    "type": "daily",
    "start_day": 1,
    "end_day": 7,
    "window": {"opens": "18:00", "closes": "23:59", "close_after_days": 0},
}

# Valid answers to ITEMS (q9 not shown, since q7 is false).
ANSWERS: list[dict[str, Any]] = [
    {"item": "q1", "value": "some"},
    {"item": "q2", "value": ["cough", "fatigue"]},
    {"item": "q5", "value": 4},
    {"item": "q7", "value": False},
]


def definition(code: str = "HFDIARY", version: str = "1.0", **changes: Any) -> dict[str, Any]:
    """A POST /studies/{id}/questionnaires body."""
    return {
        "code": code,
        "version": version,
        "title": texts("Heart failure diary"),
        "items": ITEMS,
        "schedule": DAILY_EVENING,
        **changes,
    }


def make_questionnaire(
    db: Session,
    study: Study,
    author: User,
    *,
    published: bool = True,
    **changes: Any,
) -> Questionnaire:
    """Stored directly, as publishing would leave it (definitions are validated by the
    questionnaire tests, not here)."""
    body = definition(**changes)
    questionnaire = Questionnaire(
        id=uuid.uuid4(),
        study_id=study.id,
        code=body["code"],
        version=body["version"],
        title=body["title"],
        items=body["items"],
        schedule=body["schedule"],
        status=(QuestionnaireStatus.PUBLISHED if published else QuestionnaireStatus.DRAFT).value,
        created_by=author.id,
        published_by=author.id if published else None,
        published_at=utcnow() if published else None,
    )
    db.add(questionnaire)
    db.flush()
    return questionnaire


def make_instance(
    db: Session,
    participant: Participant,
    questionnaire: Questionnaire,
    *,
    opens_at: dt.datetime | None = None,
    closes_at: dt.datetime | None = None,
    status: InstanceStatus = InstanceStatus.SCHEDULED,
) -> EproInstance:
    """An instance whose window is open now unless told otherwise."""
    opens_at = opens_at or utcnow() - dt.timedelta(hours=1)
    closes_at = closes_at or opens_at + dt.timedelta(hours=6)
    instance = EproInstance(
        id=uuid.uuid4(),
        participant_id=participant.id,
        study_id=participant.study_id,
        site_id=participant.site_id,
        questionnaire_id=questionnaire.id,
        slot=f"{opens_at.date().isoformat()}-{uuid.uuid4().hex[:8]}",
        local_date=opens_at.date(),
        opens_at=opens_at,
        closes_at=closes_at,
        status=status.value,
    )
    db.add(instance)
    db.flush()
    return instance
