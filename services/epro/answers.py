"""Checks a submission's answers against the exact questionnaire version it answers.

The items are a published definition (validated by `services.epro.definitions`), so
every `enable_when` names an earlier item. The answers come straight from a phone, so
nothing about them is trusted: each message says what to send instead, because the
reader is the developer of the app that built the payload.

Errors are keyed `answers.<link_id>` for a problem with an item's answer, and
`answers.<index>` for an entry that cannot be tied to an item (malformed, unknown or
repeated). An item whose visibility hangs on an invalid answer is neither required nor
refused: the source's own error says what to fix first, and guessing would add noise.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, cast

from services.validation import Errors

NRS_MIN, NRS_MAX = 0, 10
VAS_MIN, VAS_MAX = 0, 100
MAX_LISTED_OPTIONS = 10  # longer option lists are not spelled out in messages
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_LINK_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_ENTRY_KEYS = frozenset({"item", "value"})

Item = dict[str, Any]


def _show(value: Any, limit: int = 40) -> str:
    """JSON spelling (true, null, "text"), as the app developer wrote it; shortened
    so that a pasted essay does not end up in the message."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _name(link_id: str) -> str:
    """A link_id as is when it looks like one; quoted when it holds anything odd."""
    return link_id if _LINK_ID.fullmatch(link_id) else _show(link_id)


# --- values, one check per item type -------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _between(value: float, low: float, high: float) -> list[str]:
    if low <= value <= high:
        return []
    return [f"must be between {low} and {high}, got {_show(value)}"]


def _integer_in(value: Any, low: int, high: int) -> list[str]:
    # 3.0 is refused too: the scale has no decimals, so a float betrays a wrong widget.
    if not _is_int(value):
        return [f"must be an integer between {low} and {high}, got {_show(value)}"]
    return _between(value, low, high)


def _number_in(value: Any, low: float, high: float) -> list[str]:
    if not _is_number(value):
        return [f"must be a number between {low} and {high}, got {_show(value)}"]
    if isinstance(value, float) and not math.isfinite(value):  # Python's JSON reads NaN
        return [f"must be a finite number between {low} and {high}, got {_show(value)}"]
    return _between(value, low, high)


def _option_values(item: Item) -> list[str]:
    return [option["value"] for option in item["options"]]


def _use_one_of(item: Item) -> str:
    values = _option_values(item)
    if len(values) <= MAX_LISTED_OPTIONS:
        return "use one of " + ", ".join(_show(value) for value in values)
    return f"use one of the {len(values)} option values of this item"


def _check_single_choice(item: Item, value: Any) -> list[str]:
    if isinstance(value, str) and value in _option_values(item):
        return []
    return [f"{_show(value)} is not an option value; {_use_one_of(item)}"]


def _check_multiple_choice(item: Item, value: Any) -> list[str]:
    if not isinstance(value, list):
        return [f"must be a list of option values, got {_show(value)}; {_use_one_of(item)}"]
    if not value:
        return ["must list at least one option value; leave the item out when none applies"]
    allowed = _option_values(item)
    problems = [
        f"{_show(entry)} is not an option value; {_use_one_of(item)}"
        for entry in value
        if not (isinstance(entry, str) and entry in allowed)
    ]
    repeated = [entry for entry in allowed if value.count(entry) > 1]
    problems += [f"{_show(entry)} is listed more than once" for entry in repeated]
    return problems


def _check_integer(item: Item, value: Any) -> list[str]:
    return _integer_in(value, item["min"], item["max"])


def _check_decimal(item: Item, value: Any) -> list[str]:
    return _number_in(value, item["min"], item["max"])


def _check_nrs(item: Item, value: Any) -> list[str]:
    return _integer_in(value, NRS_MIN, NRS_MAX)


def _check_vas(item: Item, value: Any) -> list[str]:
    return _number_in(value, VAS_MIN, VAS_MAX)


def _check_boolean(item: Item, value: Any) -> list[str]:
    return [] if isinstance(value, bool) else [f"must be true or false, got {_show(value)}"]


def _check_date(item: Item, value: Any) -> list[str]:
    # fromisoformat alone would also take "20260301" and week dates such as "2026-W10".
    if not (isinstance(value, str) and _DATE.fullmatch(value)):
        return [f'must be a date as "YYYY-MM-DD", got {_show(value)}']
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return [f"{value} is not a calendar date"]
    return []


def _check_text(item: Item, value: Any) -> list[str]:
    if not isinstance(value, str):
        return [f"must be a string, got {_show(value)}"]
    if not value.strip():
        return ["must not be blank; leave the item out to skip it"]
    if len(value) > item["max_length"]:
        return [f"must be at most {item['max_length']} characters, got {len(value)}"]
    return []


_CHECKS: dict[str, Callable[[Item, Any], list[str]]] = {
    "single_choice": _check_single_choice,
    "multiple_choice": _check_multiple_choice,
    "integer": _check_integer,
    "decimal": _check_decimal,
    "nrs": _check_nrs,
    "vas": _check_vas,
    "boolean": _check_boolean,
    "date": _check_date,
    "text": _check_text,
}


def _check_value(item: Item, value: Any) -> list[str]:
    if value is None:
        if item.get("required", False):
            return ["null is not an answer, and this item is required: give a value"]
        return ["null is not an answer; leave the item out to skip it"]
    return _CHECKS[item["type"]](item, value)


# --- entries: the shape of the answers list ------------------------------------------


@dataclass
class _Entries:
    """The answers list read into first values per item, and what was wrong with it."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: Errors = field(default_factory=Errors)
    garbled: set[str] = field(default_factory=set)  # known items named by a malformed entry


def _shape_problem(entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return f'must be an object {{"item": <link_id>, "value": ...}}, got {_show(entry)}'
    extra = sorted(set(entry) - _ENTRY_KEYS, key=str)
    if extra:
        names = ", ".join(_show(key) for key in extra)
        return f'unexpected key {names}: an answer has only "item" and "value"'
    missing = sorted(_ENTRY_KEYS - set(entry))
    if missing:
        return f'missing "{missing[0]}": an answer has exactly "item" and "value"'
    if not isinstance(entry["item"], str):
        return f'"item" must be a link_id string, got {_show(entry["item"])}'
    return None


def _read_entries(items: list[Item], answers: list[Any]) -> _Entries:
    known = {item["link_id"] for item in items}
    read = _Entries()
    first_at: dict[str, int] = {}
    for index, entry in enumerate(answers):
        key = f"answers.{index}"
        link_id = entry.get("item") if isinstance(entry, dict) else None
        problem = _shape_problem(entry)
        if problem:
            read.errors.add(key, problem)
            if isinstance(link_id, str) and link_id in known:
                read.garbled.add(link_id)
            continue
        # No shape problem: the entry is an object whose "item" is a string.
        link_id = cast(str, link_id)
        if link_id not in known:
            read.errors.add(key, f"no item {_name(link_id)} in this questionnaire version")
        elif link_id in first_at:
            first = first_at[link_id]
            read.errors.add(key, f"{link_id} is answered more than once (first at answers.{first})")
        else:
            first_at[link_id] = index
            read.values[link_id] = entry["value"]
    return read


# --- skip logic ------------------------------------------------------------------------


class _Seen(Enum):
    SHOWN = "shown"
    HIDDEN = "hidden"
    UNKNOWN = "unknown"  # hangs on an invalid answer


@dataclass(frozen=True)
class _Visibility:
    seen: _Seen
    why: str = ""  # the condition that shows or hides the item, for messages


def _matches(source: Item, value: Any, equals: Any) -> bool:
    """Strict, so that unvalidated answers cannot match by accident (1 == true in Python,
    and `in` on a string would find substrings)."""
    if source["type"] == "multiple_choice":
        return isinstance(value, list) and equals in value
    return isinstance(value, bool) == isinstance(equals, bool) and value == equals


def _visibility_of(
    item: Item,
    by_id: dict[str, Item],
    answered: dict[str, Any],
    unsure: set[str],
    found: dict[str, _Visibility],
) -> _Visibility:
    condition = item.get("enable_when")
    if condition is None:
        return _Visibility(_Seen.SHOWN)
    source = by_id[condition["item"]]
    source_id, equals = source["link_id"], condition["equals"]
    verb = "includes" if source["type"] == "multiple_choice" else "is"
    wanted = f"{source_id} {verb} {_show(equals)}"
    hidden = f"{item['link_id']} is shown only when {wanted}, and {source_id}"
    if found[source_id].seen is _Seen.HIDDEN:
        return _Visibility(_Seen.HIDDEN, f"{hidden} is not shown")
    if found[source_id].seen is _Seen.UNKNOWN or source_id in unsure:
        return _Visibility(_Seen.UNKNOWN)
    if source_id not in answered:
        return _Visibility(_Seen.HIDDEN, f"{hidden} is unanswered")
    if _matches(source, answered[source_id], equals):
        return _Visibility(_Seen.SHOWN, wanted)
    return _Visibility(_Seen.HIDDEN, f"{hidden} is {_show(answered[source_id])}")


def _visibilities(
    items: list[Item], answered: dict[str, Any], unsure: set[str]
) -> dict[str, _Visibility]:
    """`unsure` holds the items whose answer is invalid: what depends on them is unknown."""
    by_id = {item["link_id"]: item for item in items}
    found: dict[str, _Visibility] = {}
    for item in items:  # sources come first, so `found` already holds them
        found[item["link_id"]] = _visibility_of(item, by_id, answered, unsure, found)
    return found


# --- the two entry points --------------------------------------------------------------


def shown_items(items: list[Item], answers: list[dict[str, Any]]) -> set[str]:
    """The link_ids a respondent giving these answers was shown. Malformed, unknown and
    repeated entries are ignored here; `validate_answers` is where they are refused."""
    answered = _read_entries(items, answers).values
    return {
        link_id
        for link_id, visibility in _visibilities(items, answered, set()).items()
        if visibility.seen is _Seen.SHOWN
    }


def _item_errors(
    item: Item, visibility: _Visibility, read: _Entries, problems: list[str]
) -> list[str]:
    link_id = item["link_id"]
    answered = link_id in read.values
    if visibility.seen is _Seen.HIDDEN:
        return [f"not shown: {visibility.why}; leave {link_id} out"] if answered else []
    if problems:
        return problems
    if (
        visibility.seen is _Seen.SHOWN
        and item.get("required", False)
        and not answered
        and link_id not in read.garbled
    ):
        because = f" (shown because {visibility.why})" if visibility.why else ""
        return [f"required{because}: answer {link_id}"]
    return []


def validate_answers(items: list[Item], answers: list[dict[str, Any]]) -> Errors:
    """Every problem at once, so that one round trip is enough to fix a payload; empty
    Errors mean the answers are valid."""
    if not isinstance(answers, list):
        errors = Errors()
        errors.add(
            "answers", f'must be a list of {{"item", "value"}} objects, got {_show(answers)}'
        )
        return errors
    read = _read_entries(items, answers)
    by_id = {item["link_id"]: item for item in items}
    problems = {link_id: _check_value(by_id[link_id], v) for link_id, v in read.values.items()}
    unsure = read.garbled | {link_id for link_id, found in problems.items() if found}
    answered = {link_id: v for link_id, v in read.values.items() if link_id not in unsure}
    visibilities = _visibilities(items, answered, unsure)
    errors = Errors(read.errors)
    for item in items:
        link_id = item["link_id"]
        found = _item_errors(item, visibilities[link_id], read, problems.get(link_id, []))
        if found:
            errors[f"answers.{link_id}"] = found
    return errors
