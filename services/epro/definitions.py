"""ePRO questionnaire definitions: drafted, published (frozen from then on), superseded
by the next published version of the same code. What a definition may hold is checked
by `services.epro.checks`; it is read in one language by `services.epro.rendering`,
and exported as FHIR by `services.epro.fhir`.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.access import get_visible, require_role, visible_studies, visible_study_versions
from services.actor import Actor, Role
from services.audit import chain as audit
from services.db import utcnow
from services.epro import plan as epro_plan
from services.epro.checks import ALL_LANGUAGES, Content, validated
from services.epro.rendering import Rendering, language_for, render
from services.errors import Conflict, Forbidden, Invalid
from services.models import (
    Questionnaire,
    QuestionnaireStatus,
    Study,
)

# --- life cycle ------------------------------------------------------------------------


_TRAILING_NUMBER = re.compile(r"(.*?)([0-9]+)")


def _content_of(questionnaire: Questionnaire) -> Content:
    return Content(
        questionnaire.code,
        questionnaire.version,
        questionnaire.title,
        questionnaire.items,
        questionnaire.schedule,
    )


def content_sha256(questionnaire: Questionnaire) -> str:
    """SHA-256 of the canonical JSON (keys sorted, no spaces, ASCII escapes) of code,
    version, title, items and schedule: anyone can recompute it from GET ?lang=all."""
    canonical = json.dumps(
        asdict(_content_of(questionnaire)), sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _state(questionnaire: Questionnaire) -> dict[str, Any]:
    return {
        "code": questionnaire.code,
        "version": questionnaire.version,
        "status": questionnaire.status,
        "content_sha256": questionnaire.content_sha256,
    }


def _full_state(questionnaire: Questionnaire) -> dict[str, Any]:
    """A draft is replaced as a whole, so its events keep the whole text."""
    return {
        **_state(questionnaire),
        "title": questionnaire.title,
        "items": questionnaire.items,
        "schedule": questionnaire.schedule,
    }


def _record(
    session: Session,
    actor: Actor,
    action: str,
    questionnaire: Questionnaire,
    *,
    before: dict[str, Any] | None,
    after: dict[str, Any],
) -> None:
    audit.record_change(
        session,
        actor,
        f"questionnaire.{action}",
        questionnaire,
        subject=audit.Subject(study_id=questionnaire.study_id),
        before=before,
        after=after,
    )


def _free_version(session: Session, questionnaire: Questionnaire) -> str:
    """The next version number after this one that the code does not use yet."""
    taken = set(
        session.scalars(
            select(Questionnaire.version).where(
                Questionnaire.study_id == questionnaire.study_id,
                Questionnaire.code == questionnaire.code,
            )
        )
    )
    candidate = questionnaire.version
    while candidate in taken:
        match = _TRAILING_NUMBER.fullmatch(candidate)
        candidate = f"{match[1]}{int(match[2]) + 1}" if match else f"{candidate}.1"
    return candidate


def _require_draft(session: Session, questionnaire: Questionnaire) -> None:
    if questionnaire.status != QuestionnaireStatus.DRAFT:
        raise Conflict(
            f"{questionnaire.code} {questionnaire.version} is {questionnaire.status}: published "
            f"versions are frozen; create version {_free_version(session, questionnaire)}"
        )


@contextmanager
def _unique_version(session: Session, content: Content) -> Iterator[None]:
    """The changes made inside go to the database in a savepoint, so that a version
    taken meanwhile is a 409 and the session stays usable."""
    try:
        with session.begin_nested():
            yield
            session.flush()
    except IntegrityError as exc:
        raise Conflict(
            f"{content.code} {content.version} exists already in this study; choose another version"
        ) from exc


def visible_questionnaires(actor: Actor) -> Select[Questionnaire]:
    """Staff see their studies' versions; a patient never a draft."""
    return visible_study_versions(actor, Questionnaire, QuestionnaireStatus.DRAFT.value)


def create_draft(
    session: Session, actor: Actor, study_id: uuid.UUID, content: Content
) -> Questionnaire:
    require_role(actor, Role.COORDINATOR)
    study = get_visible(session, visible_studies(actor), study_id, "study")
    checked = validated(session, study, content)
    questionnaire = Questionnaire(
        id=uuid.uuid4(), study_id=study.id, created_by=actor.user_id, **asdict(checked)
    )
    with _unique_version(session, checked):
        session.add(questionnaire)
    _record(session, actor, "draft", questionnaire, before=None, after=_full_state(questionnaire))
    return questionnaire


def replace_draft(
    session: Session, actor: Actor, questionnaire_id: uuid.UUID, content: Content
) -> Questionnaire:
    require_role(actor, Role.COORDINATOR)
    questionnaire = get_visible(
        session, visible_questionnaires(actor), questionnaire_id, "questionnaire"
    )
    _require_draft(session, questionnaire)
    checked = validated(session, session.get_one(Study, questionnaire.study_id), content)
    before = _full_state(questionnaire)
    with _unique_version(session, checked):
        for name, value in asdict(checked).items():
            setattr(questionnaire, name, value)
    _record(
        session, actor, "replace", questionnaire, before=before, after=_full_state(questionnaire)
    )
    return questionnaire


def _require_every_language(study: Study, questionnaire: Questionnaire) -> None:
    """A draft may be translated step by step, but every participant of the study
    answers a published version in their own language (never silently in another), so
    it must have texts in each of the study's languages."""
    missing = [language for language in study.languages if language not in questionnaire.title]
    if missing:
        listed = ", ".join(missing)
        raise Invalid(
            f"{questionnaire.code} {questionnaire.version} has no texts in {listed}, which "
            f"this study runs in ({', '.join(study.languages)}): add {listed} to the title, "
            "every item and every option of the draft before publishing",
            errors={"title": [f"missing the study's languages: {listed}"]},
        )


def publish(session: Session, actor: Actor, questionnaire_id: uuid.UUID) -> Questionnaire:
    """Freeze the draft, retire the version it replaces and plan it for the enrolled
    participants. The study row lock serialises this with enrolments (which plan from
    the published versions) and with another publication of the same code."""
    require_role(actor, Role.COORDINATOR)
    questionnaire = get_visible(
        session, visible_questionnaires(actor), questionnaire_id, "questionnaire"
    )
    session.execute(select(Study.id).where(Study.id == questionnaire.study_id).with_for_update())
    session.refresh(questionnaire)
    _require_draft(session, questionnaire)
    # The study's languages or visits may have changed since the draft was saved.
    study = session.get_one(Study, questionnaire.study_id)
    validated(session, study, _content_of(questionnaire))
    _require_every_language(study, questionnaire)
    previous = session.scalars(
        select(Questionnaire).where(
            Questionnaire.study_id == questionnaire.study_id,
            Questionnaire.code == questionnaire.code,
            Questionnaire.status == QuestionnaireStatus.PUBLISHED.value,
        )
    ).all()
    before = _state(questionnaire)
    questionnaire.status = QuestionnaireStatus.PUBLISHED.value
    questionnaire.content_sha256 = content_sha256(questionnaire)
    questionnaire.published_by = actor.user_id
    questionnaire.published_at = utcnow()
    _record(session, actor, "publish", questionnaire, before=before, after=_state(questionnaire))
    for older in previous:
        older_before = _state(older)
        older.status = QuestionnaireStatus.SUPERSEDED.value
        after = {**_state(older), "superseded_by": str(questionnaire.id)}
        _record(session, actor, "supersede", older, before=older_before, after=after)
    session.flush()
    epro_plan.plan_published(session, actor, questionnaire)
    return questionnaire


def study_questionnaires(
    session: Session,
    actor: Actor,
    study_id: uuid.UUID,
    code: str | None = None,
    status: str | None = None,
) -> Select[Questionnaire]:
    """Every version of the study's questionnaires, by code then newest first."""
    require_role(actor, Role.ADMIN, Role.COORDINATOR, Role.NURSE, Role.MONITOR)
    study = get_visible(session, visible_studies(actor), study_id, "study")
    query = select(Questionnaire).where(Questionnaire.study_id == study.id)
    if code is not None:
        query = query.where(Questionnaire.code == code)
    if status is not None:
        query = query.where(Questionnaire.status == status)
    return query.order_by(Questionnaire.code, Questionnaire.created_at.desc(), Questionnaire.id)


def get_questionnaire(
    session: Session, actor: Actor, questionnaire_id: uuid.UUID, lang: str | None = None
) -> Rendering:
    """One version in one language; `lang=all` gives staff the maps they edit."""
    questionnaire = get_visible(
        session, visible_questionnaires(actor), questionnaire_id, "questionnaire"
    )
    if lang == ALL_LANGUAGES:
        if actor.role == Role.PATIENT:
            raise Forbidden("lang=all (every language's texts) is for the study staff")
        return render(questionnaire, None)
    return render(questionnaire, language_for(session, actor, questionnaire, lang))


def exportable(
    session: Session, actor: Actor, questionnaire_id: uuid.UUID, lang: str | None = None
) -> tuple[Questionnaire, str]:
    """A version for another system (study staff only) and the language its texts are
    exported in, chosen as for reading it."""
    require_role(actor, Role.ADMIN, Role.COORDINATOR, Role.NURSE, Role.MONITOR)
    questionnaire = get_visible(
        session, visible_questionnaires(actor), questionnaire_id, "questionnaire"
    )
    return questionnaire, language_for(session, actor, questionnaire, lang)
