"""ePRO questionnaire definitions: drafted, published (frozen from then on), superseded
by the next published version of the same code; read in one language (the FHIR export
is built by `services.epro.fhir`).

The whole definition is checked here rather than by the API schema, so the author gets
every problem at once, keyed by its path (`items.2.options`, `schedule.window.closes`),
and the CLI or a data load gets the same rules as the HTTP API.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services import validation
from services.access import get_visible, require_role, visible_studies, visible_study_versions
from services.actor import Actor, Role
from services.audit import chain as audit
from services.db import utcnow
from services.epro import answers as epro_answers
from services.epro import plan as epro_plan
from services.errors import Conflict, Forbidden, Invalid
from services.models import (
    Questionnaire,
    QuestionnaireStatus,
    Study,
    User,
    VisitDefinition,
)
from services.validation import language_code

Item = dict[str, Any]
Errors = dict[str, list[str]]

ITEM_TYPES = (
    "single_choice",
    "multiple_choice",
    "integer",
    "decimal",
    "nrs",
    "vas",
    "boolean",
    "date",
    "text",
)
CHOICE_TYPES = frozenset({"single_choice", "multiple_choice"})
BOUNDED_TYPES = frozenset({"integer", "decimal"})
FIXED_BOUNDS = {
    "nrs": (epro_answers.NRS_MIN, epro_answers.NRS_MAX),
    "vas": (epro_answers.VAS_MIN, epro_answers.VAS_MAX),
}
SCHEDULE_TYPES = ("once", "daily", "weekly", "visit")
MIN_DAY, MAX_DAY = -30, 3650
MAX_OPTIONS = 50
MAX_TEXT = 2000
MAX_TEXT_ANSWER = 10000
MAX_CLOSE_AFTER_DAYS = 30
ALL_LANGUAGES = "all"

_CODE = re.compile(r"[A-Za-z0-9_.-]{1,32}")
_LINK_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_TRAILING_NUMBER = re.compile(r"(.*?)([0-9]+)")
# Fields only some item types take; any other field is unknown.
_TYPED_FIELDS = {
    "options": CHOICE_TYPES,
    "min": BOUNDED_TYPES,
    "max": BOUNDED_TYPES,
    "max_length": frozenset({"text"}),
}
_ITEM_FIELDS = frozenset({"link_id", "type", "required", "text", "enable_when", *_TYPED_FIELDS})
_SCHEDULE_FIELDS = {
    "once": ("start_day",),
    "daily": ("start_day", "end_day"),
    "weekly": ("start_day", "end_day", "weekdays"),
    "visit": ("visit_code", "offset_days"),
}
_WINDOW_FIELDS = frozenset({"opens", "closes", "close_after_days"})


@dataclass(frozen=True)
class Content:
    """A definition as an author sends it: everything a version consists of."""

    code: str
    version: str
    title: dict[str, str]
    items: list[Item]
    schedule: dict[str, Any]


@dataclass(frozen=True)
class Rendering:
    """A questionnaire's texts in one language, or every language's maps (`language`
    None), with the languages it is available in."""

    questionnaire: Questionnaire
    language: str | None
    title: str | dict[str, str]
    items: list[Item]
    languages: list[str]


# --- validation ------------------------------------------------------------------------


def _add(errors: Errors, path: str, message: str) -> None:
    errors.setdefault(path, []).append(message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return _is_int(value) or (isinstance(value, float) and math.isfinite(value))


def _check_texts(errors: Errors, path: str, texts: Any, languages: frozenset[str] | None) -> None:
    """A {language: text} map; `languages` is the title's set every map must repeat
    (None while the title itself is unusable, to report its problem once)."""
    if not isinstance(texts, dict) or not texts:
        _add(errors, path, 'a non-empty {language: text} map such as {"en": "..."}')
        return
    bad = sorted(
        language
        for language, text in texts.items()
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT
    )
    if bad:
        _add(errors, path, f"texts are 1 to {MAX_TEXT} characters; not so for {', '.join(bad)}")
    if languages is not None and set(texts) != languages:
        _add(errors, path, f"give exactly the title's languages: {', '.join(sorted(languages))}")


def _check_title(errors: Errors, title: Any, study: Study) -> frozenset[str] | None:
    _check_texts(errors, "title", title, None)
    if not isinstance(title, dict) or not title:
        return None
    foreign = sorted(set(title) - set(study.languages))
    if foreign:
        _add(
            errors,
            "title",
            f"{', '.join(foreign)}: not a language of this study ({', '.join(study.languages)})",
        )
    return frozenset(title)


def _check_options(
    errors: Errors, path: str, options: Any, languages: frozenset[str] | None
) -> None:
    if not isinstance(options, list) or not 1 <= len(options) <= MAX_OPTIONS:
        _add(errors, path, f"a list of 1 to {MAX_OPTIONS} options {{value, text}}")
        return
    seen: set[str] = set()
    for index, option in enumerate(options):
        at = f"{path}.{index}"
        if not isinstance(option, dict):
            _add(errors, at, "an object {value, text}")
            continue
        for name in sorted(set(option) - {"value", "text"}, key=str):
            _add(errors, f"{at}.{name}", "unknown field; an option has only value and text")
        value = option.get("value")
        if not isinstance(value, str) or not 1 <= len(value) <= 64:
            _add(errors, f"{at}.value", "a string of 1 to 64 characters")
        elif value in seen:
            _add(errors, f"{at}.value", f"{value!r} is the value of an earlier option")
        else:
            seen.add(value)
        _check_texts(errors, f"{at}.text", option.get("text"), languages)


def _check_bounds(errors: Errors, path: str, item: Item) -> None:
    integer = item["type"] == "integer"
    wanted = "an integer" if integer else "a number"
    usable = True
    for name in ("min", "max"):
        if name not in item:
            _add(errors, f"{path}.{name}", f"required for {item['type']} items")
            usable = False
        elif not (_is_int if integer else _is_number)(item[name]):
            _add(errors, f"{path}.{name}", wanted)
            usable = False
    if usable and item["min"] >= item["max"]:
        _add(errors, f"{path}.max", "must be greater than min")


def _check_max_length(errors: Errors, path: str, item: Item) -> None:
    value = item.get("max_length")
    if not _is_int(value) or not 1 <= value <= MAX_TEXT_ANSWER:
        _add(errors, f"{path}.max_length", f"required for text items: 1 to {MAX_TEXT_ANSWER}")


def _check_fields(errors: Errors, path: str, item: Item) -> None:
    kind = item["type"]
    for name in sorted(item, key=str):
        if name not in _ITEM_FIELDS:
            _add(errors, f"{path}.{name}", "unknown field")
        elif name in _TYPED_FIELDS and kind not in _TYPED_FIELDS[name]:
            fixed = FIXED_BOUNDS.get(kind) if name in ("min", "max") else None
            note = f" (its answers are fixed to {fixed[0]}..{fixed[1]})" if fixed else ""
            _add(errors, f"{path}.{name}", f"{kind} items take no {name}{note}")


def _equals_problems(source: Item, equals: Any) -> list[str]:
    """`equals` must be a possible answer of the source item, by the very rules that
    check submissions; for a multiple_choice source it names one option value."""
    if equals is None:
        return ["give the answer of the source item that shows this item"]
    link_id = source["link_id"]
    alone = {key: value for key, value in source.items() if key != "enable_when"}
    value = [equals] if source["type"] == "multiple_choice" else equals
    found = epro_answers.validate_answers([alone], [{"item": link_id, "value": value}])
    return found.get(f"answers.{link_id}", [])


def _check_enable_when(
    errors: Errors, path: str, condition: Any, earlier: dict[str, Item | None]
) -> None:
    """Only an earlier item can be the source, which rules out cycles by construction."""
    at = f"{path}.enable_when"
    if not isinstance(condition, dict) or set(condition) != {"item", "equals"}:
        _add(errors, at, 'an object {"item": <link_id of an earlier item>, "equals": <answer>}')
        return
    source_id = condition["item"]
    if not isinstance(source_id, str) or source_id not in earlier:
        _add(errors, f"{at}.item", "must be the link_id of an earlier item")
        return
    source = earlier[source_id]
    if source is None:  # the source has problems of its own, reported at its path
        return
    for problem in _equals_problems(source, condition["equals"]):
        _add(errors, f"{at}.equals", f"not a possible answer of {source_id}: {problem}")


def _item_errors(
    path: str, item: Any, languages: frozenset[str] | None, earlier: dict[str, Item | None]
) -> Errors:
    errors: Errors = {}
    if not isinstance(item, dict):
        return {path: ["an object {link_id, type, text, ...}"]}
    link_id = item.get("link_id")
    if not isinstance(link_id, str) or not _LINK_ID.fullmatch(link_id):
        _add(errors, f"{path}.link_id", "1 to 64 characters: letters, digits, _ . -")
    elif link_id in earlier:
        _add(errors, f"{path}.link_id", f"{link_id} is the link_id of an earlier item")
    if not isinstance(item.get("required", False), bool):
        _add(errors, f"{path}.required", "true or false")
    _check_texts(errors, f"{path}.text", item.get("text"), languages)
    if item.get("type") not in ITEM_TYPES:
        _add(errors, f"{path}.type", f"one of {', '.join(ITEM_TYPES)}")
        return errors
    _check_fields(errors, path, item)
    if item["type"] in CHOICE_TYPES:
        _check_options(errors, f"{path}.options", item.get("options"), languages)
    elif item["type"] in BOUNDED_TYPES:
        _check_bounds(errors, path, item)
    elif item["type"] == "text":
        _check_max_length(errors, path, item)
    if "enable_when" in item:
        _check_enable_when(errors, path, item["enable_when"], earlier)
    return errors


def _checked_items(errors: Errors, items: Any, languages: frozenset[str] | None) -> list[Item]:
    """The items with `required` spelled out; `earlier` maps each link_id seen so far to
    its item, or to None when that item is invalid (conditions on it are not judged)."""
    if not isinstance(items, list) or not items:
        _add(errors, "items", "a non-empty list of items")
        return []
    earlier: dict[str, Item | None] = {}
    for index, item in enumerate(items):
        found = _item_errors(f"items.{index}", item, languages, earlier)
        errors.update(found)
        link_id = item.get("link_id") if isinstance(item, dict) else None
        if isinstance(link_id, str) and link_id not in earlier:
            earlier[link_id] = None if found else item
    return [
        {**item, "required": item.get("required", False)}
        for item in items
        if isinstance(item, dict)
    ]


def _check_day(errors: Errors, schedule: dict[str, Any], name: str, counted_from: str) -> None:
    value = schedule.get(name)
    if not _is_int(value) or not MIN_DAY <= value <= MAX_DAY:
        _add(errors, f"schedule.{name}", f"days from {counted_from}: {MIN_DAY} to {MAX_DAY}")


def _check_days(errors: Errors, schedule: dict[str, Any]) -> None:
    kind = schedule["type"]
    for name in ("start_day", "end_day"):
        if name in _SCHEDULE_FIELDS[kind]:
            _check_day(errors, schedule, name, "the baseline (day 0)")
    ranged = kind in ("daily", "weekly")
    usable = not errors.keys() & {"schedule.start_day", "schedule.end_day"}
    if ranged and usable and schedule["start_day"] > schedule["end_day"]:
        _add(errors, "schedule.end_day", "must not be before start_day")


def _check_weekdays(errors: Errors, weekdays: Any) -> None:
    if (
        not isinstance(weekdays, list)
        or not weekdays
        or not all(_is_int(day) and 0 <= day <= 6 for day in weekdays)
        or len(set(weekdays)) != len(weekdays)
    ):
        _add(errors, "schedule.weekdays", "a non-empty list of distinct days 0..6 (0 = Monday)")


def _check_visit(errors: Errors, schedule: dict[str, Any], visit_codes: set[str]) -> None:
    code = schedule.get("visit_code")
    if not isinstance(code, str) or code not in visit_codes:
        known = ", ".join(sorted(visit_codes)) or "none defined yet"
        _add(errors, "schedule.visit_code", f"a visit code of this study's schedule ({known})")
    if "offset_days" in schedule:
        _check_day(errors, schedule, "offset_days", "the visit's day")


def _check_same_day(errors: Errors, window: dict[str, Any]) -> None:
    if window["closes"] <= window["opens"]:  # "HH:MM" strings sort as times do
        _add(errors, "schedule.window.closes", "closes must be after opens; use close_after_days")


def _checked_window(errors: Errors, window: Any) -> dict[str, Any]:
    at = "schedule.window"
    if not isinstance(window, dict):
        _add(errors, at, 'an object {"opens": "HH:MM", "closes": "HH:MM", "close_after_days"}')
        return {}
    window = {"close_after_days": 0, **window}
    for name in sorted(set(window) - _WINDOW_FIELDS, key=str):
        _add(errors, f"{at}.{name}", "unknown field")
    for name in ("opens", "closes"):
        if not validation.is_clock_time(window.get(name)):
            _add(errors, f"{at}.{name}", 'a local time "HH:MM" (00:00 to 23:59)')
    days = window["close_after_days"]
    if not _is_int(days) or not 0 <= days <= MAX_CLOSE_AFTER_DAYS:
        _add(errors, f"{at}.close_after_days", f"an integer from 0 to {MAX_CLOSE_AFTER_DAYS}")
    elif days == 0 and not errors.keys() & {f"{at}.opens", f"{at}.closes"}:
        _check_same_day(errors, window)
    return window


def _checked_schedule(errors: Errors, schedule: Any, visit_codes: set[str]) -> dict[str, Any]:
    """The schedule with its defaults (offset_days, close_after_days) spelled out."""
    if not isinstance(schedule, dict):
        _add(errors, "schedule", "an object with a type: once, daily, weekly or visit")
        return {}
    kind = schedule.get("type")
    if kind not in SCHEDULE_TYPES:
        _add(errors, "schedule.type", f"one of {', '.join(SCHEDULE_TYPES)}")
        return schedule
    for name in sorted(set(schedule) - {"type", "window", *_SCHEDULE_FIELDS[kind]}, key=str):
        _add(errors, f"schedule.{name}", f"a {kind} schedule takes no {name}")
    if kind == "visit":
        schedule = {**schedule, "offset_days": schedule.get("offset_days", 0)}
        _check_visit(errors, schedule, visit_codes)
    else:
        _check_days(errors, schedule)
    if kind == "weekly":
        _check_weekdays(errors, schedule.get("weekdays"))
    return {**schedule, "window": _checked_window(errors, schedule.get("window"))}


def _check_identity(errors: Errors, content: Content) -> None:
    if not isinstance(content.code, str) or not _CODE.fullmatch(content.code):
        _add(errors, "code", "1 to 32 characters: letters, digits, _ . -")
    version = content.version
    if not isinstance(version, str) or not 1 <= len(version) <= 16 or version != version.strip():
        _add(errors, "version", "1 to 16 characters, without surrounding spaces")


def validated(session: Session, study: Study, content: Content) -> Content:
    """The definition with defaults spelled out, or Invalid listing every problem."""
    errors: Errors = {}
    _check_identity(errors, content)
    languages = _check_title(errors, content.title, study)
    items = _checked_items(errors, content.items, languages)
    visit_codes = set(
        session.scalars(select(VisitDefinition.code).where(VisitDefinition.study_id == study.id))
    )
    schedule = _checked_schedule(errors, content.schedule, visit_codes)
    if errors:
        raise Invalid("the questionnaire definition is not valid", errors=errors)
    return Content(content.code, content.version, content.title, items, schedule)


# --- life cycle ------------------------------------------------------------------------


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
    audit.record(
        session,
        actor,
        f"questionnaire.{action}",
        entity_type="questionnaire",
        entity_id=questionnaire.id,
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


def visible_questionnaires(actor: Actor) -> Select[tuple[Questionnaire]]:
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
    checked = validated(session, session.get(Study, questionnaire.study_id), content)
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
    study = session.get(Study, questionnaire.study_id)
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
) -> Select[tuple[Questionnaire]]:
    """Every version of the study's questionnaires, by code then newest first."""
    require_role(actor, Role.ADMIN, Role.COORDINATOR, Role.NURSE, Role.MONITOR)
    study = get_visible(session, visible_studies(actor), study_id, "study")
    query = select(Questionnaire).where(Questionnaire.study_id == study.id)
    if code is not None:
        query = query.where(Questionnaire.code == code)
    if status is not None:
        query = query.where(Questionnaire.status == status)
    return query.order_by(Questionnaire.code, Questionnaire.created_at.desc(), Questionnaire.id)


# --- reading in one language -----------------------------------------------------------


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
    study = session.get(Study, questionnaire.study_id)
    return next((lang for lang in study.languages if lang in available), available[0])


def _language(
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
    return questionnaire.title[participant_language(questionnaire, locale)]


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
    return render(questionnaire, _language(session, actor, questionnaire, lang))


def exportable(
    session: Session, actor: Actor, questionnaire_id: uuid.UUID, lang: str | None = None
) -> tuple[Questionnaire, str]:
    """A version for another system (study staff only) and the language its texts are
    exported in, chosen as for reading it."""
    require_role(actor, Role.ADMIN, Role.COORDINATOR, Role.NURSE, Role.MONITOR)
    questionnaire = get_visible(
        session, visible_questionnaires(actor), questionnaire_id, "questionnaire"
    )
    return questionnaire, _language(session, actor, questionnaire, lang)
