"""A questionnaire read in one language: the participant's (their locale, else the
study's first), or staff's with every language's texts side by side."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from services.actor import Actor, Role
from services.epro.checks import Item
from services.errors import Conflict, Invalid
from services.models import (
    Questionnaire,
    Study,
    User,
)
from services.validation import language_code


@dataclass(frozen=True)
class Rendering:
    """A questionnaire's texts in one language, or every language's maps (`language`
    None), with the languages it is available in."""

    questionnaire: Questionnaire
    language: str | None
    title: str | dict[str, str]
    items: list[Item]
    languages: list[str]


def languages_of(questionnaire: Questionnaire) -> list[str]:
    """Every text map repeats the title's languages (a validation rule)."""
    return sorted(questionnaire.title)


def participant_language(questionnaire: Questionnaire, locale: str | None) -> str:
    """A participant reads and answers in their own language, never silently in
    another: the answers would be recorded as given to wording they were not shown in
    their language. A version without it (the study added the language later, say) is
    a Conflict naming the languages it has."""
    available = languages_of(questionnaire)
    if locale not in available:
        raise Conflict(
            f"{questionnaire.code} {questionnaire.version} has no texts in the participant's "
            f"language ({locale}); it has {', '.join(available)}. The study team must publish "
            f"a version with {locale}, or change the participant's language"
        )
    return locale


def _staff_language(session: Session, questionnaire: Questionnaire, locale: str | None) -> str:
    """Staff only read: their locale when the version has it, else the study's first
    language that it has (the rendering names the language it is in)."""
    available = languages_of(questionnaire)
    if locale in available:
        return locale
    study = session.get_one(Study, questionnaire.study_id)
    return next((lang for lang in study.languages if lang in available), available[0])


def language_for(
    session: Session, actor: Actor, questionnaire: Questionnaire, requested: str | None
) -> str:
    """The language asked for, else the caller's: exactly theirs for a participant
    (`participant_language`), as `_staff_language` chooses for staff."""
    if requested is None:
        user = session.get(User, actor.user_id) if actor.user_id else None
        locale = user.locale if user else None
        if actor.role == Role.PATIENT:
            return participant_language(questionnaire, locale)
        return _staff_language(session, questionnaire, locale)
    available = languages_of(questionnaire)
    language = language_code(requested, field="lang")
    if language not in available:
        raise Invalid("language", errors={"lang": [f"this version is in {', '.join(available)}"]})
    return language


def participant_title(questionnaire: Questionnaire, locale: str | None) -> str:
    """The title a participant with this locale sees in their due list: in their own
    language, or a Conflict as for the questionnaire itself."""
    title: str = questionnaire.title[participant_language(questionnaire, locale)]
    return title


def _item_in(item: Item, language: str) -> Item:
    shown = {**item, "text": item["text"][language]}
    if "options" in item:
        shown["options"] = [
            {**option, "text": option["text"][language]} for option in item["options"]
        ]
    return shown


def render(questionnaire: Questionnaire, language: str | None) -> Rendering:
    """Texts in `language`, or (None) the stored {language: text} maps."""
    languages = languages_of(questionnaire)
    if language is None:
        return Rendering(questionnaire, None, questionnaire.title, questionnaire.items, languages)
    items = [_item_in(item, language) for item in questionnaire.items]
    return Rendering(questionnaire, language, questionnaire.title[language], items, languages)
