"""Answer validation for ePRO submissions: every item type and bound edge, skip logic,
required items and the shape of the answers list. Pure functions: no app, no database.

Each refusal case changes the valid ANSWERS in one way and expects exactly one error
key, so a case also shows that a mistake does not drag other errors along with it."""

from __future__ import annotations

import math
from typing import Any

import pytest

from services.epro.answers import shown_items, validate_answers
from tests.factories.epro import ANSWERS, ITEMS, option, texts

OMIT = object()  # leave the item out of the answers
FULL_WIDTH_2026 = "\uff12\uff10\uff12\uff16"  # digits to a regex's \d, not to a date

# ITEMS plus a chain: q10 is shown when q2 includes "swelling", q11 when q10 is true.
CHAINED: list[dict[str, Any]] = [
    *ITEMS,
    {
        "link_id": "q10",
        "type": "boolean",
        "required": True,
        "text": texts("Swollen ankles today?"),
        "enable_when": {"item": "q2", "equals": "swelling"},
    },
    {
        "link_id": "q11",
        "type": "integer",
        "required": True,
        "min": 1,
        "max": 5,
        "text": texts("How swollen?"),
        "enable_when": {"item": "q10", "equals": True},
    },
]


def answers(base: list[dict[str, Any]] = ANSWERS, **values: Any) -> list[dict[str, Any]]:
    """`base` with the named items answered (replaced in place, else appended) or OMITted."""
    result = [
        {"item": entry["item"], "value": values.get(entry["item"], entry["value"])}
        for entry in base
        if values.get(entry["item"]) is not OMIT
    ]
    present = {entry["item"] for entry in base}
    result += [
        {"item": link_id, "value": value}
        for link_id, value in values.items()
        if link_id not in present and value is not OMIT
    ]
    return result


def assert_one_error(errors: dict[str, list[str]], key: str, fragment: str) -> None:
    assert set(errors) == {key}, errors
    assert any(fragment in message for message in errors[key]), errors[key]


# --- every type: accepted values, both edges of each bound ----------------------------


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"q1": "none"},
        {"q1": "severe"},
        {"q2": ["swelling"]},
        {"q2": ["fatigue", "swelling", "cough"]},
        {"q2": OMIT},  # optional
        {"q3": 0},  # min
        {"q3": 20},  # max
        {"q4": 30},  # min, an int for a decimal
        {"q4": 30.0},
        {"q4": 250.0},  # max
        {"q4": 72.35},
        {"q5": 0},
        {"q5": 10},
        {"q6": 0},
        {"q6": 100},
        {"q6": 0.0},
        {"q6": 100.0},
        {"q6": 37.5},
        {"q8": "2024-02-29"},  # leap day
        {"q8": "2026-12-31"},
        {"q7": True, "q9": "x"},  # shortest text
        {"q7": True, "q9": "é" * 200},  # max_length, counted in characters
    ],
    ids=repr,
)
def test_valid_answers_pass(change):
    assert validate_answers(ITEMS, answers(**change)) == {}


REFUSED = [
    # single_choice
    (
        {"q1": "moderate"},
        "answers.q1",
        '"moderate" is not an option value; use one of "none", "some"',
    ),
    ({"q1": "None"}, "answers.q1", '"None" is not an option value'),
    ({"q1": 1}, "answers.q1", "1 is not an option value"),
    ({"q1": ["none"]}, "answers.q1", '["none"] is not an option value'),
    # multiple_choice: "equals" is "includes", but the value itself is a list
    ({"q2": []}, "answers.q2", "must list at least one option value"),
    ({"q2": "cough"}, "answers.q2", 'must be a list of option values, got "cough"'),
    ({"q2": ["cough", "cough"]}, "answers.q2", '"cough" is listed more than once'),
    ({"q2": ["cough", "nausea"]}, "answers.q2", '"nausea" is not an option value; use one of'),
    ({"q2": [["cough"], ["cough"]]}, "answers.q2", '["cough"] is not an option value'),
    # integer 0..20
    ({"q3": -1}, "answers.q3", "must be between 0 and 20, got -1"),
    ({"q3": 21}, "answers.q3", "must be between 0 and 20, got 21"),
    ({"q3": 3.0}, "answers.q3", "must be an integer between 0 and 20, got 3.0"),
    ({"q3": 2.5}, "answers.q3", "must be an integer"),
    ({"q3": True}, "answers.q3", "must be an integer between 0 and 20, got true"),
    ({"q3": "3"}, "answers.q3", 'must be an integer between 0 and 20, got "3"'),
    # decimal 30.0..250.0
    ({"q4": 29.999}, "answers.q4", "must be between 30.0 and 250.0, got 29.999"),
    ({"q4": 29}, "answers.q4", "must be between 30.0 and 250.0, got 29"),
    ({"q4": 250.001}, "answers.q4", "must be between 30.0 and 250.0, got 250.001"),
    ({"q4": 10**400}, "answers.q4", "must be between 30.0 and 250.0"),
    ({"q4": math.nan}, "answers.q4", "must be a finite number between 30.0 and 250.0, got NaN"),
    ({"q4": math.inf}, "answers.q4", "must be a finite number"),
    ({"q4": -math.inf}, "answers.q4", "must be a finite number"),
    ({"q4": False}, "answers.q4", "must be a number between 30.0 and 250.0, got false"),
    ({"q4": "72.5"}, "answers.q4", "must be a number"),
    # nrs 0..10
    ({"q5": -1}, "answers.q5", "must be between 0 and 10, got -1"),
    ({"q5": 11}, "answers.q5", "must be between 0 and 10, got 11"),
    ({"q5": 5.0}, "answers.q5", "must be an integer between 0 and 10, got 5.0"),
    ({"q5": 4.5}, "answers.q5", "must be an integer"),
    ({"q5": True}, "answers.q5", "must be an integer"),
    # vas 0..100
    ({"q6": -0.001}, "answers.q6", "must be between 0 and 100, got -0.001"),
    ({"q6": -1}, "answers.q6", "must be between 0 and 100, got -1"),
    ({"q6": 100.001}, "answers.q6", "must be between 0 and 100, got 100.001"),
    ({"q6": 101}, "answers.q6", "must be between 0 and 100, got 101"),
    ({"q6": math.nan}, "answers.q6", "must be a finite number"),
    ({"q6": True}, "answers.q6", "must be a number between 0 and 100, got true"),
    ({"q6": "50"}, "answers.q6", "must be a number"),
    # boolean
    ({"q7": 0}, "answers.q7", "must be true or false, got 0"),
    ({"q7": "false"}, "answers.q7", 'must be true or false, got "false"'),
    # date
    ({"q8": "2026-02-30"}, "answers.q8", "2026-02-30 is not a calendar date"),
    ({"q8": "2025-02-29"}, "answers.q8", "2025-02-29 is not a calendar date"),
    ({"q8": "2026-13-01"}, "answers.q8", "is not a calendar date"),
    ({"q8": "20260301"}, "answers.q8", 'must be a date as "YYYY-MM-DD", got "20260301"'),
    ({"q8": "2026-3-1"}, "answers.q8", 'must be a date as "YYYY-MM-DD"'),
    ({"q8": "2026-03-01T00:00"}, "answers.q8", 'must be a date as "YYYY-MM-DD"'),
    ({"q8": "2026-W10-1"}, "answers.q8", 'must be a date as "YYYY-MM-DD"'),
    ({"q8": "2026-03-01\n"}, "answers.q8", 'must be a date as "YYYY-MM-DD"'),
    (
        {"q8": "\uff12\uff10\uff12\uff16-03-01"},
        "answers.q8",
        'must be a date as "YYYY-',
    ),  # full-width
    ({"q8": 20260301}, "answers.q8", 'must be a date as "YYYY-MM-DD", got 20260301'),
    # text, up to 200 characters (shown because q7 is true)
    ({"q7": True, "q9": ""}, "answers.q9", "must not be blank"),
    ({"q7": True, "q9": "  \n"}, "answers.q9", "must not be blank"),
    ({"q7": True, "q9": "x" * 201}, "answers.q9", "must be at most 200 characters, got 201"),
    ({"q7": True, "q9": 5}, "answers.q9", "must be a string, got 5"),
    # null is never an answer
    ({"q1": None}, "answers.q1", "null is not an answer, and this item is required"),
    ({"q3": None}, "answers.q3", "null is not an answer; leave the item out to skip it"),
    # required shown items
    ({"q1": OMIT}, "answers.q1", "required: answer q1"),
    ({"q5": OMIT}, "answers.q5", "required: answer q5"),
    ({"q7": OMIT}, "answers.q7", "required: answer q7"),  # and q9 is then not shown
    ({"q7": True}, "answers.q9", "required (shown because q7 is true): answer q9"),
    # answers to items that are not shown
    (
        {"q9": "I fell"},
        "answers.q9",
        "not shown: q9 is shown only when q7 is true, and q7 is false; leave q9 out",
    ),
    ({"q9": ""}, "answers.q9", "not shown"),  # not shown comes before the value's own problem
]


@pytest.mark.parametrize(("change", "key", "fragment"), REFUSED, ids=repr)
def test_invalid_answer_is_refused_under_its_item(change, key, fragment):
    assert_one_error(validate_answers(ITEMS, answers(**change)), key, fragment)


def test_every_problem_is_reported_at_once():
    errors = validate_answers(ITEMS, answers(q1=OMIT, q3=21, q8="2026-02-30", q9="x"))

    assert set(errors) == {"answers.q1", "answers.q3", "answers.q8", "answers.q9"}


def test_an_answer_to_an_item_hidden_by_an_unanswered_source_says_so():
    errors = validate_answers(ITEMS, answers(q7=OMIT, q9="I fell"))

    assert errors == {
        "answers.q7": ["required: answer q7"],
        "answers.q9": [
            "not shown: q9 is shown only when q7 is true, and q7 is unanswered; leave q9 out"
        ],
    }


@pytest.mark.parametrize(("count", "listed"), [(10, True), (11, False)])
def test_choices_are_listed_in_the_message_up_to_ten(count, listed):
    values = [f"o{number}" for number in range(count)]
    items = [
        {
            "link_id": "c",
            "type": "single_choice",
            "text": texts("Pick"),
            "options": [option(value) for value in values],
        }
    ]

    message = validate_answers(items, [{"item": "c", "value": "x"}])["answers.c"][0]

    assert ('"o0", "o1"' in message) is listed
    assert (f"use one of the {count} option values of this item" in message) is not listed


def test_a_long_value_is_shortened_in_the_message():
    message = validate_answers(ITEMS, answers(q1="x" * 1000))["answers.q1"][0]

    assert len(message) < 200


# --- the answers list: entries that cannot be tied to an item --------------------------


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ({"item": "q99", "value": 1}, "no item q99 in this questionnaire version"),
        ({"item": " q1", "value": "none"}, 'no item " q1" in this questionnaire version'),
        ({"item": "q1", "value": "none"}, "q1 is answered more than once (first at answers.0)"),
        ("q3", 'must be an object {"item": <link_id>, "value": ...}, got "q3"'),
        (None, "must be an object"),
        (["q3", 3], "must be an object"),
        ({"item": "q3"}, 'missing "value"'),
        ({"value": 3}, 'missing "item"'),
        ({"item": "q3", "value": 3, "note": "x"}, 'unexpected key "note"'),
        ({"item": "q3", "answer": 3}, 'unexpected key "answer"'),
        ({"item": 3, "value": 3}, '"item" must be a link_id string, got 3'),
        ({"item": None, "value": 3}, '"item" must be a link_id string, got null'),
    ],
    ids=repr,
)
def test_bad_entry_is_refused_under_its_index(entry, fragment):
    assert len(ANSWERS) == 4
    assert_one_error(validate_answers(ITEMS, [*ANSWERS, entry]), "answers.4", fragment)


def test_a_duplicate_keeps_the_first_answer():
    errors = validate_answers(ITEMS, [{"item": "q1", "value": "x"}, *ANSWERS])

    assert errors == {
        "answers.q1": ['"x" is not an option value; use one of "none", "some", "severe"'],
        "answers.1": ["q1 is answered more than once (first at answers.0)"],
    }


def test_a_malformed_entry_for_a_required_item_is_not_also_reported_as_missing():
    entries = [*answers(q1=OMIT), {"item": "q1", "value": "some", "extra": 1}]

    assert set(validate_answers(ITEMS, entries)) == {"answers.3"}


def test_answers_must_be_a_list():
    assert validate_answers(ITEMS, {"q1": "none"}) == {  # type: ignore[arg-type]
        "answers": ['must be a list of {"item", "value"} objects, got {"q1": "none"}']
    }


def test_no_answers_at_all_lists_every_required_shown_item():
    assert validate_answers(ITEMS, []) == {
        "answers.q1": ["required: answer q1"],
        "answers.q5": ["required: answer q5"],
        "answers.q7": ["required: answer q7"],
    }


# --- skip logic: chains, multiple_choice "includes", invalid sources ------------------

SWELLING = ["cough", "swelling"]


@pytest.mark.parametrize(
    "change",
    [
        {},  # q2 lacks "swelling": q10 and q11 hidden
        {"q2": OMIT},
        {"q2": SWELLING, "q10": False},  # q11 hidden
        {"q2": ["swelling"], "q10": True, "q11": 1},
        {"q2": SWELLING, "q10": True, "q11": 5},
    ],
    ids=repr,
)
def test_chained_answers_pass(change):
    assert validate_answers(CHAINED, answers(**change)) == {}


CHAINED_REFUSED = [
    (
        {"q2": SWELLING},
        "answers.q10",
        'required (shown because q2 includes "swelling"): answer q10',
    ),
    (
        {"q10": True},
        "answers.q10",
        'not shown: q10 is shown only when q2 includes "swelling", and q2 is ["cough", "fatigue"]',
    ),
    (
        {"q2": OMIT, "q10": False},
        "answers.q10",
        'q10 is shown only when q2 includes "swelling", and q2 is unanswered',
    ),
    ({"q2": SWELLING, "q10": True}, "answers.q11", "required (shown because q10 is true)"),
    (
        {"q2": SWELLING, "q10": False, "q11": 3},
        "answers.q11",
        "not shown: q11 is shown only when q10 is true, and q10 is false",
    ),
    # the chain: q11's source q10 is itself hidden
    (
        {"q11": 3},
        "answers.q11",
        "not shown: q11 is shown only when q10 is true, and q10 is not shown; leave q11 out",
    ),
    ({"q2": SWELLING, "q10": True, "q11": 0}, "answers.q11", "must be between 1 and 5, got 0"),
    ({"q2": SWELLING, "q10": True, "q11": 6}, "answers.q11", "must be between 1 and 5, got 6"),
    # an invalid source leaves its dependents neither required nor refused
    ({"q2": ["swelling", "swelling"]}, "answers.q2", "listed more than once"),
    ({"q2": ["swollen"], "q10": True, "q11": 3}, "answers.q2", '"swollen" is not an option'),
    ({"q2": SWELLING, "q10": "yes"}, "answers.q10", "must be true or false"),
    ({"q2": None, "q10": True}, "answers.q2", "null is not an answer"),
    ({"q7": "yes"}, "answers.q7", "must be true or false"),
    ({"q7": "yes", "q9": "I fell"}, "answers.q7", "must be true or false"),
]


@pytest.mark.parametrize(("change", "key", "fragment"), CHAINED_REFUSED, ids=repr)
def test_chained_answers_are_refused_under_the_right_item(change, key, fragment):
    assert_one_error(validate_answers(CHAINED, answers(**change)), key, fragment)


def test_an_item_behind_an_invalid_source_still_has_its_value_checked():
    errors = validate_answers(CHAINED, answers(q7="yes", q9=""))

    assert set(errors) == {"answers.q7", "answers.q9"}
    assert errors["answers.q9"] == ["must not be blank; leave the item out to skip it"]


@pytest.mark.parametrize(
    ("change", "hidden"),
    [
        ({}, {"q9", "q10", "q11"}),
        ({"q7": True}, {"q10", "q11"}),
        ({"q2": SWELLING}, {"q9", "q11"}),
        ({"q2": SWELLING, "q10": True}, {"q9"}),
        ({"q2": SWELLING, "q10": True, "q7": True}, set()),
        ({"q2": ["cough"], "q10": True}, {"q9", "q10", "q11"}),  # q11 hidden with its source
        ({"q2": OMIT, "q7": OMIT}, {"q9", "q10", "q11"}),
    ],
    ids=repr,
)
def test_shown_items_follow_the_skip_logic(change, hidden):
    every = {item["link_id"] for item in CHAINED}

    assert shown_items(CHAINED, answers(**change)) == every - hidden


@pytest.mark.parametrize(
    "change",
    [
        {"q7": 1},  # 1 == True in Python, but not an answer "true"
        {"q7": "true"},
        {"q2": "swelling"},  # a string, not a list that includes "swelling"
        {"q2": "no swelling"},
    ],
    ids=repr,
)
def test_shown_items_match_conditions_strictly(change):
    shown = shown_items(CHAINED, answers(**change))

    assert not shown & {"q9", "q10"}


def test_shown_items_ignore_bad_entries_and_take_the_first_of_duplicates():
    entries = [
        *ANSWERS,  # q7 false
        {"item": "q7", "value": True},
        {"item": "q99", "value": True},
        "q7",
        {"item": "q2", "value": ["swelling"], "extra": 1},
    ]

    assert shown_items(CHAINED, entries) == {f"q{number}" for number in range(1, 9)}


def test_a_numeric_condition_compares_numbers():
    items = [
        {"link_id": "n", "type": "nrs", "text": texts("Pain")},
        {
            "link_id": "why",
            "type": "text",
            "max_length": 50,
            "text": texts("Why so bad?"),
            "enable_when": {"item": "n", "equals": 10},
        },
    ]

    assert shown_items(items, [{"item": "n", "value": 10}]) == {"n", "why"}
    assert shown_items(items, [{"item": "n", "value": 9}]) == {"n"}
