"""What a questionnaire definition may hold: its items, texts in every language of the
study, and its schedule as data.

The whole definition is checked here rather than by the API schema, so the author gets
every problem at once, keyed by its path (`items.2.options`, `schedule.window.closes`),
and the CLI or a data load gets the same rules as the HTTP API.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, TypeGuard

from sqlalchemy import select
from sqlalchemy.orm import Session

from services import validation
from services.epro import answers as epro_answers
from services.models import (
    Study,
    VisitDefinition,
)
from services.validation import Errors

MIN_DAY, MAX_DAY = -30, 3650

Item = dict[str, Any]


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


MAX_OPTIONS = 50


MAX_TEXT = 2000


MAX_TEXT_ANSWER = 10000


MAX_CLOSE_AFTER_DAYS = 30


ALL_LANGUAGES = "all"


_CODE = re.compile(r"[A-Za-z0-9_.-]{1,32}")


_LINK_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


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


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return _is_int(value) or (isinstance(value, float) and math.isfinite(value))


def _check_texts(errors: Errors, path: str, texts: Any, languages: frozenset[str] | None) -> None:
    """A {language: text} map; `languages` is the title's set every map must repeat
    (None while the title itself is unusable, to report its problem once)."""
    if not isinstance(texts, dict) or not texts:
        errors.add(path, 'a non-empty {language: text} map such as {"en": "..."}')
        return
    bad = sorted(
        language
        for language, text in texts.items()
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT
    )
    if bad:
        errors.add(path, f"texts are 1 to {MAX_TEXT} characters; not so for {', '.join(bad)}")
    if languages is not None and set(texts) != languages:
        errors.add(path, f"give exactly the title's languages: {', '.join(sorted(languages))}")


def _check_title(errors: Errors, title: Any, study: Study) -> frozenset[str] | None:
    _check_texts(errors, "title", title, None)
    if not isinstance(title, dict) or not title:
        return None
    foreign = sorted(set(title) - set(study.languages))
    if foreign:
        errors.add(
            "title",
            f"{', '.join(foreign)}: not a language of this study ({', '.join(study.languages)})",
        )
    return frozenset(title)


def _check_options(
    errors: Errors, path: str, options: Any, languages: frozenset[str] | None
) -> None:
    if not isinstance(options, list) or not 1 <= len(options) <= MAX_OPTIONS:
        errors.add(path, f"a list of 1 to {MAX_OPTIONS} options {{value, text}}")
        return
    seen: set[str] = set()
    for index, option in enumerate(options):
        at = f"{path}.{index}"
        if not isinstance(option, dict):
            errors.add(at, "an object {value, text}")
            continue
        for name in sorted(set(option) - {"value", "text"}, key=str):
            errors.add(f"{at}.{name}", "unknown field; an option has only value and text")
        value = option.get("value")
        if not isinstance(value, str) or not 1 <= len(value) <= 64:
            errors.add(f"{at}.value", "a string of 1 to 64 characters")
        elif value in seen:
            errors.add(f"{at}.value", f"{value!r} is the value of an earlier option")
        else:
            seen.add(value)
        _check_texts(errors, f"{at}.text", option.get("text"), languages)


def _check_bounds(errors: Errors, path: str, item: Item) -> None:
    integer = item["type"] == "integer"
    wanted = "an integer" if integer else "a number"
    usable = True
    for name in ("min", "max"):
        if name not in item:
            errors.add(f"{path}.{name}", f"required for {item['type']} items")
            usable = False
        elif not (_is_int if integer else _is_number)(item[name]):
            errors.add(f"{path}.{name}", wanted)
            usable = False
    if usable and item["min"] >= item["max"]:
        errors.add(f"{path}.max", "must be greater than min")


def _check_max_length(errors: Errors, path: str, item: Item) -> None:
    value = item.get("max_length")
    if not _is_int(value) or not 1 <= value <= MAX_TEXT_ANSWER:
        errors.add(f"{path}.max_length", f"required for text items: 1 to {MAX_TEXT_ANSWER}")


def _check_fields(errors: Errors, path: str, item: Item) -> None:
    kind = item["type"]
    for name in sorted(item, key=str):
        if name not in _ITEM_FIELDS:
            errors.add(f"{path}.{name}", "unknown field")
        elif name in _TYPED_FIELDS and kind not in _TYPED_FIELDS[name]:
            fixed = FIXED_BOUNDS.get(kind) if name in ("min", "max") else None
            note = f" (its answers are fixed to {fixed[0]}..{fixed[1]})" if fixed else ""
            errors.add(f"{path}.{name}", f"{kind} items take no {name}{note}")


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
        errors.add(at, 'an object {"item": <link_id of an earlier item>, "equals": <answer>}')
        return
    source_id = condition["item"]
    if not isinstance(source_id, str) or source_id not in earlier:
        errors.add(f"{at}.item", "must be the link_id of an earlier item")
        return
    source = earlier[source_id]
    if source is None:  # the source has problems of its own, reported at its path
        return
    for problem in _equals_problems(source, condition["equals"]):
        errors.add(f"{at}.equals", f"not a possible answer of {source_id}: {problem}")


def _item_errors(
    path: str, item: Any, languages: frozenset[str] | None, earlier: dict[str, Item | None]
) -> Errors:
    errors = Errors()
    if not isinstance(item, dict):
        errors.add(path, "an object {link_id, type, text, ...}")
        return errors
    link_id = item.get("link_id")
    if not isinstance(link_id, str) or not _LINK_ID.fullmatch(link_id):
        errors.add(f"{path}.link_id", "1 to 64 characters: letters, digits, _ . -")
    elif link_id in earlier:
        errors.add(f"{path}.link_id", f"{link_id} is the link_id of an earlier item")
    if not isinstance(item.get("required", False), bool):
        errors.add(f"{path}.required", "true or false")
    _check_texts(errors, f"{path}.text", item.get("text"), languages)
    if item.get("type") not in ITEM_TYPES:
        errors.add(f"{path}.type", f"one of {', '.join(ITEM_TYPES)}")
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
        errors.add("items", "a non-empty list of items")
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
        errors.add(f"schedule.{name}", f"days from {counted_from}: {MIN_DAY} to {MAX_DAY}")


def _check_days(errors: Errors, schedule: dict[str, Any]) -> None:
    kind = schedule["type"]
    for name in ("start_day", "end_day"):
        if name in _SCHEDULE_FIELDS[kind]:
            _check_day(errors, schedule, name, "the baseline (day 0)")
    ranged = kind in ("daily", "weekly")
    usable = not errors.keys() & {"schedule.start_day", "schedule.end_day"}
    if ranged and usable and schedule["start_day"] > schedule["end_day"]:
        errors.add("schedule.end_day", "must not be before start_day")


def _check_weekdays(errors: Errors, weekdays: Any) -> None:
    if (
        not isinstance(weekdays, list)
        or not weekdays
        or not all(_is_int(day) and 0 <= day <= 6 for day in weekdays)
        or len(set(weekdays)) != len(weekdays)
    ):
        errors.add("schedule.weekdays", "a non-empty list of distinct days 0..6 (0 = Monday)")


def _check_visit(errors: Errors, schedule: dict[str, Any], visit_codes: set[str]) -> None:
    code = schedule.get("visit_code")
    if not isinstance(code, str) or code not in visit_codes:
        known = ", ".join(sorted(visit_codes)) or "none defined yet"
        errors.add("schedule.visit_code", f"a visit code of this study's schedule ({known})")
    if "offset_days" in schedule:
        _check_day(errors, schedule, "offset_days", "the visit's day")


def _check_same_day(errors: Errors, window: dict[str, Any]) -> None:
    if window["closes"] <= window["opens"]:  # "HH:MM" strings sort as times do
        errors.add("schedule.window.closes", "closes must be after opens; use close_after_days")


def _checked_window(errors: Errors, window: object) -> dict[str, Any]:
    at = "schedule.window"
    if not isinstance(window, dict):
        errors.add(at, 'an object {"opens": "HH:MM", "closes": "HH:MM", "close_after_days"}')
        return {}
    window = {"close_after_days": 0, **window}
    for name in sorted(set(window) - _WINDOW_FIELDS, key=str):
        errors.add(f"{at}.{name}", "unknown field")
    for name in ("opens", "closes"):
        if not validation.is_clock_time(window.get(name)):
            errors.add(f"{at}.{name}", 'a local time "HH:MM" (00:00 to 23:59)')
    days = window["close_after_days"]
    if not _is_int(days) or not 0 <= days <= MAX_CLOSE_AFTER_DAYS:
        errors.add(f"{at}.close_after_days", f"an integer from 0 to {MAX_CLOSE_AFTER_DAYS}")
    elif days == 0 and not errors.keys() & {f"{at}.opens", f"{at}.closes"}:
        _check_same_day(errors, window)
    return window


def _checked_schedule(errors: Errors, schedule: Any, visit_codes: set[str]) -> dict[str, Any]:
    """The schedule with its defaults (offset_days, close_after_days) spelled out."""
    if not isinstance(schedule, dict):
        errors.add("schedule", "an object with a type: once, daily, weekly or visit")
        return {}
    kind = schedule.get("type")
    if kind not in SCHEDULE_TYPES:
        errors.add("schedule.type", f"one of {', '.join(SCHEDULE_TYPES)}")
        return schedule
    for name in sorted(set(schedule) - {"type", "window", *_SCHEDULE_FIELDS[kind]}, key=str):
        errors.add(f"schedule.{name}", f"a {kind} schedule takes no {name}")
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
        errors.add("code", "1 to 32 characters: letters, digits, _ . -")
    version = content.version
    if not isinstance(version, str) or not 1 <= len(version) <= 16 or version != version.strip():
        errors.add("version", "1 to 16 characters, without surrounding spaces")


def validated(session: Session, study: Study, content: Content) -> Content:
    """The definition with defaults spelled out, or Invalid listing every problem."""
    errors = Errors()
    _check_identity(errors, content)
    languages = _check_title(errors, content.title, study)
    items = _checked_items(errors, content.items, languages)
    visit_codes = set(
        session.scalars(select(VisitDefinition.code).where(VisitDefinition.study_id == study.id))
    )
    schedule = _checked_schedule(errors, content.schedule, visit_codes)
    errors.refuse("the questionnaire definition is not valid")
    return Content(content.code, content.version, content.title, items, schedule)
