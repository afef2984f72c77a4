"""ePRO questionnaire definitions over HTTP: coordinators draft, replace and publish
versions (frozen from then on, superseding the previous one of the code); staff and
the study's patients read them in one language; staff export them as FHIR R4."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import pytest
from fhir.resources.R4B.questionnaire import Questionnaire as FhirQuestionnaire
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.actor import Role
from services.models import AuditEvent, EproInstance, Questionnaire, VisitDefinition
from services.people import participants as people
from tests.checks import assert_problem, audit_events, count
from tests.factories.epro import DAILY_EVENING, ITEMS, definition, option, texts
from tests.factories.people import (
    headers_for,
    make_participant,
    make_site,
    make_staff,
    random_id,
    user_of,
)
from tests.factories.visits import DEFAULT_SCHEDULE, define_schedule, enrolled_with_visits

Body = dict[str, Any]
Mutation = Callable[[Body], None]


def questionnaires_url(study) -> str:
    return f"/api/v1/studies/{study.id}/questionnaires"


def questionnaire_url(questionnaire: Body | str, action: str = "") -> str:
    questionnaire_id = questionnaire["id"] if isinstance(questionnaire, dict) else questionnaire
    return f"/api/v1/questionnaires/{questionnaire_id}{action}"


def draft(client, headers, study, **changes: Any) -> Body:
    response = client.post(questionnaires_url(study), json=definition(**changes), headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def published(client, headers, study, **changes: Any) -> Body:
    created = draft(client, headers, study, **changes)
    response = client.post(questionnaire_url(created, "/publish"), headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def canonical_sha256(body: Body) -> str:
    content = {name: body[name] for name in ("code", "version", "title", "items", "schedule")}
    return hashlib.sha256(
        json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def stored_status(db: Session, questionnaire: Body) -> str:
    db.expire_all()
    return db.get(Questionnaire, uuid.UUID(questionnaire["id"])).status


@pytest.fixture
def coordinator(client, world) -> dict[str, str]:
    return headers_for(client, world.coordinator_a)


@pytest.fixture
def outsider(client, db, world) -> dict[str, str]:
    """A coordinator of another study."""
    site = make_site(db, world.other_study)
    return headers_for(client, make_staff(db, Role.COORDINATOR, sites=[site]))


@pytest.fixture
def patient(client, world) -> dict[str, str]:
    return headers_for(client, world.patient_a.user)


# --- validation: one rule per case, each answered at its path --------------------------


def item(index: int, **fields: Any) -> Mutation:
    def mutate(body: Body) -> None:
        body["items"][index].update(fields)

    return mutate


def without(index: int, name: str) -> Mutation:
    def mutate(body: Body) -> None:
        del body["items"][index][name]

    return mutate


def option_of(index: int, number: int, **fields: Any) -> Mutation:
    def mutate(body: Body) -> None:
        body["items"][index]["options"][number].update(fields)

    return mutate


def top(**fields: Any) -> Mutation:
    def mutate(body: Body) -> None:
        body.update(fields)

    return mutate


def schedule(**fields: Any) -> Mutation:
    """The daily evening schedule with these fields changed (None removes one)."""

    def mutate(body: Body) -> None:
        body["schedule"].update(fields)
        for name in [name for name, value in fields.items() if value is None]:
            del body["schedule"][name]

    return mutate


def window(**fields: Any) -> Mutation:
    def mutate(body: Body) -> None:
        body["schedule"]["window"].update(fields)

    return mutate


def when(index: int, condition: Any) -> Mutation:
    return item(index, enable_when=condition)


WEEKLY = {"type": "weekly", "start_day": 1, "end_day": 28}
DAY_WINDOW = {"opens": "08:00", "closes": "20:00"}
INVALID = [
    ("code-pattern", top(code="bad code!"), "code"),
    ("code-length", top(code="X" * 33), "code"),
    ("version-empty", top(version=""), "version"),
    ("version-length", top(version="1" * 17), "version"),
    ("version-spaces", top(version=" 1.0"), "version"),
    ("title-empty", top(title={}), "title"),
    ("title-blank-text", top(title={**texts("Diary"), "en": " "}), "title"),
    ("title-foreign-language", top(title=texts("Diary", ("nl", "fr", "de"))), "title"),
    ("items-empty", top(items=[]), "items"),
    ("item-text-languages", item(0, text=texts("Breathless?", ("nl", "fr"))), "items.0.text"),
    ("item-text-missing", without(0, "text"), "items.0.text"),
    ("option-text-languages", option_of(0, 1, text={"nl": "wat"}), "items.0.options.1.text"),
    ("link-id-pattern", item(0, link_id="q 1"), "items.0.link_id"),
    ("link-id-length", item(0, link_id="q" * 65), "items.0.link_id"),
    ("link-id-duplicate", item(1, link_id="q1"), "items.1.link_id"),
    ("type-unknown", item(0, type="slider"), "items.0.type"),
    ("required-not-bool", item(0, required="yes"), "items.0.required"),
    ("unknown-field", item(0, colour="red"), "items.0.colour"),
    ("choice-without-options", without(0, "options"), "items.0.options"),
    ("choice-no-options", item(0, options=[]), "items.0.options"),
    (
        "choice-too-many-options",
        item(0, options=[option(f"o{n}") for n in range(51)]),
        "items.0.options",
    ),
    ("option-duplicate-value", option_of(0, 1, value="none"), "items.0.options.1.value"),
    ("option-value-empty", option_of(1, 0, value=""), "items.1.options.0.value"),
    ("option-value-length", option_of(1, 0, value="v" * 65), "items.1.options.0.value"),
    ("option-value-not-string", option_of(1, 0, value=1), "items.1.options.0.value"),
    ("option-unknown-field", option_of(0, 0, score=1), "items.0.options.0.score"),
    ("options-on-integer", item(2, options=[option("a")]), "items.2.options"),
    ("integer-without-min", without(2, "min"), "items.2.min"),
    ("integer-without-max", without(2, "max"), "items.2.max"),
    ("integer-fraction-min", item(2, min=0.5), "items.2.min"),
    ("integer-min-not-below-max", item(2, min=20, max=20), "items.2.max"),
    ("decimal-min-string", item(3, min="30"), "items.3.min"),
    ("decimal-max-bool", item(3, max=True), "items.3.max"),
    ("decimal-min-above-max", item(3, min=251.0), "items.3.max"),
    ("nrs-min", item(4, min=1), "items.4.min"),
    ("vas-max", item(5, max=50), "items.5.max"),
    ("text-without-max-length", without(8, "max_length"), "items.8.max_length"),
    ("text-max-length-zero", item(8, max_length=0), "items.8.max_length"),
    ("text-max-length-too-long", item(8, max_length=10001), "items.8.max_length"),
    ("max-length-on-boolean", item(6, max_length=10), "items.6.max_length"),
    ("enable-when-shape", when(8, {"item": "q7"}), "items.8.enable_when"),
    ("enable-when-later-item", when(0, {"item": "q7", "equals": True}), "items.0.enable_when.item"),
    ("enable-when-itself", when(6, {"item": "q7", "equals": True}), "items.6.enable_when.item"),
    ("enable-when-unknown", when(8, {"item": "q99", "equals": 1}), "items.8.enable_when.item"),
    ("equals-boolean", when(8, {"item": "q7", "equals": "yes"}), "items.8.enable_when.equals"),
    ("equals-choice", when(8, {"item": "q1", "equals": "maybe"}), "items.8.enable_when.equals"),
    ("equals-multiple", when(8, {"item": "q2", "equals": ["cough"]}), "items.8.enable_when.equals"),
    ("equals-bounds", when(8, {"item": "q3", "equals": 21}), "items.8.enable_when.equals"),
    ("equals-nrs-fraction", when(8, {"item": "q5", "equals": 2.5}), "items.8.enable_when.equals"),
    ("equals-date", when(8, {"item": "q8", "equals": "2026-02-30"}), "items.8.enable_when.equals"),
    ("equals-null", when(8, {"item": "q7", "equals": None}), "items.8.enable_when.equals"),
    ("schedule-type", schedule(type="monthly"), "schedule.type"),
    ("once-with-end-day", schedule(type="once"), "schedule.end_day"),
    ("daily-without-end-day", schedule(end_day=None), "schedule.end_day"),
    ("daily-without-start-day", schedule(start_day=None), "schedule.start_day"),
    ("daily-end-before-start", schedule(start_day=8), "schedule.end_day"),
    ("start-day-too-early", schedule(start_day=-31), "schedule.start_day"),
    ("end-day-too-late", schedule(end_day=3651), "schedule.end_day"),
    ("start-day-not-int", schedule(start_day="1"), "schedule.start_day"),
    ("daily-with-weekdays", schedule(weekdays=[0]), "schedule.weekdays"),
    ("weekly-without-weekdays", schedule(**WEEKLY), "schedule.weekdays"),
    ("weekly-no-weekdays", schedule(**WEEKLY, weekdays=[]), "schedule.weekdays"),
    ("weekly-repeated-weekday", schedule(**WEEKLY, weekdays=[0, 0]), "schedule.weekdays"),
    ("weekly-weekday-7", schedule(**WEEKLY, weekdays=[7]), "schedule.weekdays"),
    (
        "visit-code-unknown",
        schedule(type="visit", visit_code="V9", start_day=None, end_day=None),
        "schedule.visit_code",
    ),
    (
        "visit-offset-not-int",
        schedule(type="visit", visit_code="D14", offset_days="1", start_day=None, end_day=None),
        "schedule.offset_days",
    ),
    ("visit-with-start-day", schedule(type="visit", visit_code="D14"), "schedule.start_day"),
    ("window-missing", schedule(window=None), "schedule.window"),
    ("window-opens", window(opens="25:00"), "schedule.window.opens"),
    ("window-closes-format", window(closes="8:00"), "schedule.window.closes"),
    ("window-closes-before-opens", window(opens="20:00", closes="08:00"), "schedule.window.closes"),
    ("window-closes-at-opens", window(opens="20:00", closes="20:00"), "schedule.window.closes"),
    ("window-close-after-days", window(close_after_days=31), "schedule.window.close_after_days"),
    ("window-negative-days", window(close_after_days=-1), "schedule.window.close_after_days"),
    ("window-unknown-field", window(timezone="UTC"), "schedule.window.timezone"),
]


@pytest.mark.parametrize(("mutate", "key"), [pytest.param(m, k, id=name) for name, m, k in INVALID])
def test_each_rule_is_reported_at_its_path_and_nothing_is_stored(
    client, db, world, coordinator, mutate, key
):
    define_schedule(db, world.study, world.coordinator_a)  # V1, D14, D28
    events = count(db, AuditEvent)
    body = copy.deepcopy(definition())
    mutate(body)

    response = client.post(questionnaires_url(world.study), json=body, headers=coordinator)

    problem = assert_problem(response, 422)
    assert key in problem["errors"], problem["errors"]
    assert (count(db, Questionnaire), count(db, AuditEvent)) == (0, events)


def test_a_window_that_does_not_close_after_it_opens_says_what_to_use(client, world, coordinator):
    body = copy.deepcopy(definition())
    window(opens="22:00", closes="06:00")(body)

    problem = assert_problem(
        client.post(questionnaires_url(world.study), json=body, headers=coordinator), 422
    )

    assert problem["errors"]["schedule.window.closes"] == [
        "closes must be after opens; use close_after_days"
    ]


def test_every_problem_comes_back_at_once(client, world, coordinator):
    body = copy.deepcopy(definition(code="bad code!"))
    item(2, min=30)(body)
    window(opens="noon")(body)

    problem = assert_problem(
        client.post(questionnaires_url(world.study), json=body, headers=coordinator), 422
    )

    assert problem["errors"].keys() >= {"code", "items.2.max", "schedule.window.opens"}


def test_a_visit_schedule_needs_a_visit_of_the_study(client, world, coordinator):
    body = definition(schedule={"type": "visit", "visit_code": "D14", "window": DAY_WINDOW})

    problem = assert_problem(
        client.post(questionnaires_url(world.study), json=body, headers=coordinator), 422
    )

    assert problem["errors"]["schedule.visit_code"] == [
        "a visit code of this study's schedule (none defined yet)"
    ]


ONE_LANGUAGE_ITEMS = [
    {"link_id": "fell", "type": "boolean", "text": {"en": "Did you fall?"}},
    {
        "link_id": "count",
        "type": "integer",
        "min": 1,
        "max": 10,
        "text": {"en": "How often?"},
        "enable_when": {"item": "fell", "equals": True},
    },
]
VALID = [
    ("once", {"schedule": {"type": "once", "start_day": -30, "window": DAY_WINDOW}}),
    (
        "weekly",
        {"schedule": {**WEEKLY, "weekdays": [0, 3], "window": DAY_WINDOW}},
    ),
    (
        "visit",
        {
            "schedule": {
                "type": "visit",
                "visit_code": "D14",
                "offset_days": 1,
                "window": DAY_WINDOW,
            }
        },
    ),
    (
        "overnight",
        {
            "schedule": {
                "type": "daily",
                "start_day": 0,
                "end_day": 3650,
                "window": {"opens": "22:00", "closes": "06:00", "close_after_days": 1},
            }
        },
    ),
    ("one-language", {"title": {"en": "Falls"}, "items": ONE_LANGUAGE_ITEMS}),
]


@pytest.mark.parametrize(("changes"), [pytest.param(c, id=name) for name, c in VALID])
def test_valid_definitions_are_drafted(client, db, world, coordinator, changes):
    define_schedule(db, world.study, world.coordinator_a)

    response = client.post(
        questionnaires_url(world.study), json=definition(**changes), headers=coordinator
    )

    assert response.status_code == 201, response.get_json()


@pytest.mark.parametrize(
    ("source", "equals"),
    [
        ("q1", "severe"),
        ("q2", "swelling"),
        ("q3", 0),
        ("q4", 30),
        ("q5", 10),
        ("q6", 55.5),
        ("q7", False),
        ("q8", "2026-02-28"),
    ],
)
def test_a_condition_may_rest_on_any_earlier_item_type(client, world, coordinator, source, equals):
    body = copy.deepcopy(definition())
    when(8, {"item": source, "equals": equals})(body)

    response = client.post(questionnaires_url(world.study), json=body, headers=coordinator)

    assert response.status_code == 201, response.get_json()


# --- drafting ---------------------------------------------------------------------------


def test_a_coordinator_drafts_a_version_with_defaults_spelled_out(client, db, world, coordinator):
    response = client.post(questionnaires_url(world.study), json=definition(), headers=coordinator)

    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["status"] == "draft"
    assert body["study_id"] == str(world.study.id)
    assert (body["code"], body["version"]) == ("HFDIARY", "1.0")
    assert body["content_sha256"] is None
    assert body["published_at"] is None
    assert body["created_by"] == str(world.coordinator_a.id)
    assert body["created_at"].endswith("Z")
    assert body["language"] is None
    assert body["languages"] == ["en", "fr", "nl"]
    assert body["title"] == texts("Heart failure diary")
    assert body["items"] == ITEMS
    assert body["schedule"]["window"]["close_after_days"] == 0
    stored = db.get(Questionnaire, uuid.UUID(body["id"]))
    assert stored.items == ITEMS and stored.status == "draft"
    [event] = audit_events(db, "questionnaire.draft", body["id"])
    assert event.study_id == world.study.id
    assert event.after["items"] == ITEMS and event.after["status"] == "draft"


def test_required_defaults_to_false(client, world, coordinator):
    body = copy.deepcopy(definition())
    del body["items"][1]["required"]

    created = client.post(questionnaires_url(world.study), json=body, headers=coordinator)

    assert created.get_json()["items"][1]["required"] is False


def test_a_code_and_version_exist_once_per_study(client, db, world, coordinator, outsider):
    draft(client, coordinator, world.study)

    again = client.post(questionnaires_url(world.study), json=definition(), headers=coordinator)

    assert "exists already" in assert_problem(again, 409)["detail"]
    assert count(db, Questionnaire) == 1
    draft(client, coordinator, world.study, version="1.1")
    draft(client, outsider, world.other_study)
    assert count(db, Questionnaire) == 3


def test_a_coordinator_of_the_other_site_drafts_for_the_study(client, world):
    headers = headers_for(client, world.coordinator_b)

    assert draft(client, headers, world.study)["status"] == "draft"


@pytest.mark.parametrize("who", ["patient", "nurse_a", "monitor", "admin"])
def test_only_coordinators_draft(client, db, world, who):
    response = client.post(
        questionnaires_url(world.study),
        json=definition(),
        headers=headers_for(client, user_of(world, who)),
    )

    assert_problem(response, 403)
    assert count(db, Questionnaire) == 0


def test_a_coordinator_of_another_study_cannot_draft_here(client, db, world, outsider):
    assert_problem(
        client.post(questionnaires_url(world.study), json=definition(), headers=outsider), 404
    )
    unknown = f"/api/v1/studies/{random_id()}/questionnaires"
    assert_problem(client.post(unknown, json=definition(), headers=outsider), 404)
    assert count(db, Questionnaire) == 0


def test_unknown_top_level_fields_are_refused(client, db, world, coordinator):
    response = client.post(
        questionnaires_url(world.study),
        json={**definition(), "status": "published"},
        headers=coordinator,
    )

    assert "status" in assert_problem(response, 422)["errors"]
    assert count(db, Questionnaire) == 0


# --- listing ----------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["coordinator_a", "coordinator_b", "nurse_a", "monitor", "admin"])
def test_staff_of_the_study_list_every_version(client, world, coordinator, who):
    published(client, coordinator, world.study)
    draft(client, coordinator, world.study, version="1.1")
    draft(client, coordinator, world.study, code="KCCQ12")

    response = client.get(
        questionnaires_url(world.study), headers=headers_for(client, user_of(world, who))
    )

    assert response.status_code == 200, response.get_json()
    listed = [(q["code"], q["version"], q["status"]) for q in response.get_json()]
    assert listed == [
        ("HFDIARY", "1.1", "draft"),
        ("HFDIARY", "1.0", "published"),
        ("KCCQ12", "1.0", "draft"),
    ]
    assert response.get_json()[0]["title"] == texts("Heart failure diary")
    assert json.loads(response.headers["X-Pagination"])["total"] == 3


def test_the_list_filters_by_code_and_status(client, world, coordinator):
    published(client, coordinator, world.study)
    draft(client, coordinator, world.study, version="1.1")
    draft(client, coordinator, world.study, code="KCCQ12")
    url = questionnaires_url(world.study)

    by_code = client.get(url, query_string={"code": "HFDIARY"}, headers=coordinator)
    drafts = client.get(url, query_string={"status": "draft"}, headers=coordinator)
    both = client.get(
        url, query_string={"code": "HFDIARY", "status": "published"}, headers=coordinator
    )

    assert [q["version"] for q in by_code.get_json()] == ["1.1", "1.0"]
    assert [q["code"] for q in drafts.get_json()] == ["HFDIARY", "KCCQ12"]
    assert [q["version"] for q in both.get_json()] == ["1.0"]
    bad = client.get(url, query_string={"status": "frozen"}, headers=coordinator)
    assert "status" in assert_problem(bad, 422)["errors"]


def test_patients_do_not_list_and_other_studies_do_not_see(client, world, coordinator, patient):
    draft(client, coordinator, world.study)

    assert_problem(client.get(questionnaires_url(world.study), headers=patient), 403)
    other = headers_for(client, world.other_monitor)
    assert_problem(client.get(questionnaires_url(world.study), headers=other), 404)


# --- reading in one language ------------------------------------------------------------


def test_staff_read_a_version_in_their_language(client, world, coordinator):
    created = draft(client, coordinator, world.study)

    response = client.get(questionnaire_url(created), headers=coordinator)

    assert response.status_code == 200
    body = response.get_json()
    assert body["language"] == "en"  # the coordinator's locale
    assert body["languages"] == ["en", "fr", "nl"]
    assert body["title"] == "Heart failure diary (en)"
    assert body["items"][0]["text"] == "Breathless? (en)"
    assert body["items"][0]["options"][1] == {"value": "some", "text": "some (en)"}
    assert body["items"][8]["enable_when"] == {"item": "q7", "equals": True}
    assert body["schedule"] == DAILY_EVENING


@pytest.mark.parametrize("who", ["coordinator_b", "nurse_a", "monitor", "admin"])
def test_every_staff_member_of_the_study_reads_it(client, world, coordinator, who):
    created = draft(client, coordinator, world.study)

    response = client.get(
        questionnaire_url(created), headers=headers_for(client, user_of(world, who))
    )

    assert response.status_code == 200


def test_a_patient_reads_published_versions_in_their_language(client, world, coordinator, patient):
    created = published(client, coordinator, world.study)

    body = client.get(questionnaire_url(created), headers=patient).get_json()

    assert body["language"] == "nl"
    assert body["title"] == "Heart failure diary (nl)"
    assert [item["text"] for item in body["items"]][:2] == ["Breathless? (nl)", "Symptoms (nl)"]
    assert "created_by" not in body and "published_by" not in body
    assert body["content_sha256"] == created["content_sha256"]


def test_lang_chooses_the_language(client, world, coordinator, patient):
    created = published(client, coordinator, world.study)

    body = client.get(questionnaire_url(created), query_string={"lang": "FR"}, headers=patient)

    assert body.get_json()["language"] == "fr"
    assert body.get_json()["items"][4]["text"] == "Pain 0-10 (fr)"


@pytest.mark.parametrize("lang", ["de", "xyz", "n"])
def test_a_language_the_version_does_not_have_is_refused(client, world, coordinator, lang):
    created = draft(client, coordinator, world.study)

    response = client.get(
        questionnaire_url(created), query_string={"lang": lang}, headers=coordinator
    )

    assert "lang" in assert_problem(response, 422)["errors"]


def test_a_draft_may_lack_a_language_but_publishing_it_is_refused_naming_them(
    client, db, world, coordinator
):
    languages = ("fr", "en")  # the study runs in nl, fr, en
    only = {
        **definition(title=texts("Diary", languages)),
        "items": [{"link_id": "q1", "type": "boolean", "text": texts("Fell?", languages)}],
    }
    response = client.post(questionnaires_url(world.study), json=only, headers=coordinator)
    assert response.status_code == 201, response.get_json()  # translated step by step
    created = response.get_json()

    refused = client.post(questionnaire_url(created, "/publish"), headers=coordinator)

    problem = assert_problem(refused, 422)
    assert "no texts in nl" in problem["detail"]
    assert problem["errors"] == {"title": ["missing the study's languages: nl"]}
    assert stored_status(db, created) == "draft"
    assert audit_events(db, "questionnaire.publish", uuid.UUID(created["id"])) == []


def test_a_patient_whose_language_a_version_lacks_gets_a_409_never_another_language(
    client, db, world, coordinator, patient
):
    created = published(client, coordinator, world.study)  # nl, fr, en
    world.study.languages = [*world.study.languages, "de"]  # the study adds German later
    db.flush()
    people.update_participant(
        db,
        people.actor_for(db, world.coordinator_a, "t"),
        world.patient_a.participant.id,
        {"locale": "de"},
    )

    response = client.get(questionnaire_url(created), headers=patient)

    problem = assert_problem(response, 409)
    assert "language (de)" in problem["detail"] and "en, fr, nl" in problem["detail"]
    chosen = client.get(questionnaire_url(created), query_string={"lang": "fr"}, headers=patient)
    assert chosen.get_json()["language"] == "fr"  # asked for, so not silent
    for query in ({}, {"lang": "all"}):
        staff = client.get(questionnaire_url(created), query_string=query, headers=coordinator)
        assert staff.status_code == 200, staff.get_json()


def test_staff_get_every_language_with_lang_all(client, world, coordinator, patient):
    created = published(client, coordinator, world.study)

    body = client.get(
        questionnaire_url(created), query_string={"lang": "all"}, headers=coordinator
    ).get_json()

    assert body["language"] is None
    assert body["title"] == texts("Heart failure diary")
    assert body["items"] == ITEMS
    assert canonical_sha256(body) == body["content_sha256"]
    refused = client.get(questionnaire_url(created), query_string={"lang": "all"}, headers=patient)
    assert_problem(refused, 403)


def test_patients_never_see_drafts_nor_other_studies(client, db, world, coordinator, outsider):
    created = draft(client, coordinator, world.study)
    foreign = published(client, outsider, world.other_study)
    stranger = make_participant(db, make_site(db, world.other_study))

    mine = headers_for(client, world.patient_a.user)
    assert_problem(client.get(questionnaire_url(created), headers=mine), 404)
    assert_problem(client.get(questionnaire_url(foreign), headers=mine), 404)
    theirs = headers_for(client, stranger.user)
    assert client.get(questionnaire_url(foreign), headers=theirs).status_code == 200
    assert_problem(client.get(questionnaire_url(created), headers=theirs), 404)
    assert_problem(client.get(questionnaire_url(created), headers=outsider), 404)
    assert_problem(client.get(questionnaire_url(random_id()), headers=coordinator), 404)


# --- replacing a draft ------------------------------------------------------------------


def test_a_draft_is_replaced_as_a_whole(client, db, world, coordinator):
    created = draft(client, coordinator, world.study)
    changed = definition(version="1.0-rc2", items=ITEMS[:2], title=texts("Diary"))

    response = client.put(questionnaire_url(created), json=changed, headers=coordinator)

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["id"], body["version"], body["status"]) == (created["id"], "1.0-rc2", "draft")
    assert body["items"] == ITEMS[:2]
    assert count(db, Questionnaire) == 1
    [event] = audit_events(db, "questionnaire.replace", created["id"])
    assert event.before["version"] == "1.0" and len(event.before["items"]) == 9
    assert event.after["version"] == "1.0-rc2" and len(event.after["items"]) == 2


def test_an_invalid_replacement_changes_nothing(client, db, world, coordinator):
    created = draft(client, coordinator, world.study)

    response = client.put(
        questionnaire_url(created), json=definition(items=[]), headers=coordinator
    )

    assert "items" in assert_problem(response, 422)["errors"]
    db.expire_all()
    assert len(db.get(Questionnaire, uuid.UUID(created["id"])).items) == 9
    assert audit_events(db, "questionnaire.replace", created["id"]) == []


def test_a_replacement_cannot_take_an_existing_version(client, world, coordinator):
    draft(client, coordinator, world.study, version="2.0")
    created = draft(client, coordinator, world.study)

    response = client.put(
        questionnaire_url(created), json=definition(version="2.0"), headers=coordinator
    )

    assert_problem(response, 409)


@pytest.mark.parametrize("who", ["patient", "nurse_a", "monitor", "admin"])
def test_only_coordinators_replace_drafts(client, world, coordinator, who):
    created = draft(client, coordinator, world.study)

    response = client.put(
        questionnaire_url(created),
        json=definition(),
        headers=headers_for(client, user_of(world, who)),
    )

    assert_problem(response, 403)


def test_a_coordinator_of_another_study_cannot_replace(client, world, coordinator, outsider):
    created = draft(client, coordinator, world.study)

    assert_problem(client.put(questionnaire_url(created), json=definition(), headers=outsider), 404)


# --- publishing -------------------------------------------------------------------------


def test_publishing_freezes_the_version_with_its_hash(client, db, world, coordinator):
    created = draft(client, coordinator, world.study)

    response = client.post(questionnaire_url(created, "/publish"), headers=coordinator)

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "published"
    assert body["published_by"] == str(world.coordinator_a.id)
    assert body["published_at"].endswith("Z")
    assert body["content_sha256"] == canonical_sha256(body)
    [event] = audit_events(db, "questionnaire.publish", created["id"])
    assert event.before["status"] == "draft"
    assert event.after == {
        "code": "HFDIARY",
        "version": "1.0",
        "status": "published",
        "content_sha256": body["content_sha256"],
    }


def test_a_published_version_is_frozen(client, db, world, coordinator):
    created = published(client, coordinator, world.study)

    replaced = client.put(questionnaire_url(created), json=definition(), headers=coordinator)
    again = client.post(questionnaire_url(created, "/publish"), headers=coordinator)

    for response in (replaced, again):
        detail = assert_problem(response, 409)["detail"]
        assert "published versions are frozen; create version 1.1" in detail
    assert len(audit_events(db, "questionnaire.publish", created["id"])) == 1


def test_a_new_version_supersedes_the_published_one(client, db, world, coordinator, patient):
    first = published(client, coordinator, world.study)
    other_code = published(client, coordinator, world.study, code="KCCQ12")

    second = published(client, coordinator, world.study, version="1.1")

    assert stored_status(db, first) == "superseded"
    assert stored_status(db, second) == "published"
    assert stored_status(db, other_code) == "published"
    [event] = audit_events(db, "questionnaire.supersede", first["id"])
    assert event.after["superseded_by"] == second["id"]
    assert event.after["status"] == "superseded"
    old = client.get(questionnaire_url(first), headers=patient)
    assert old.get_json()["status"] == "superseded"  # what they answered stays readable
    frozen = client.put(questionnaire_url(first), json=definition(), headers=coordinator)
    assert "create version 1.2" in assert_problem(frozen, 409)["detail"]  # 1.1 is taken


@pytest.mark.parametrize("who", ["patient", "nurse_a", "monitor", "admin"])
def test_only_coordinators_publish(client, db, world, coordinator, who):
    created = draft(client, coordinator, world.study)

    response = client.post(
        questionnaire_url(created, "/publish"), headers=headers_for(client, user_of(world, who))
    )

    assert_problem(response, 403)
    assert stored_status(db, created) == "draft"


def test_a_coordinator_of_another_study_cannot_publish(client, db, world, coordinator, outsider):
    created = draft(client, coordinator, world.study)

    assert_problem(client.post(questionnaire_url(created, "/publish"), headers=outsider), 404)
    assert stored_status(db, created) == "draft"


def at_visit(code: str) -> Body:
    return {"type": "visit", "visit_code": code, "window": DAY_WINDOW}


def test_publishing_checks_the_draft_against_the_current_schedule(client, db, world, coordinator):
    define_schedule(db, world.study, world.coordinator_a)
    created = draft(client, coordinator, world.study, schedule=at_visit("D28"))
    define_schedule(
        db, world.study, world.coordinator_a, [d for d in DEFAULT_SCHEDULE if d.code != "D28"]
    )

    response = client.post(questionnaire_url(created, "/publish"), headers=coordinator)

    assert "schedule.visit_code" in assert_problem(response, 422)["errors"]
    assert stored_status(db, created) == "draft"


def test_a_visit_a_published_questionnaire_is_scheduled_at_cannot_be_removed(
    client, db, world, coordinator
):
    define_schedule(db, world.study, world.coordinator_a)  # V1, D14, D28
    published(client, coordinator, world.study, code="ATD28", schedule=at_visit("D28"))
    draft(client, coordinator, world.study, code="ATD14", schedule=at_visit("D14"))
    url = f"/api/v1/studies/{world.study.id}/visit-definitions"
    only_v1 = [asdict(d) for d in DEFAULT_SCHEDULE if d.code == "V1"]

    refused = client.put(url, json=only_v1, headers=coordinator)

    assert assert_problem(refused, 409)["detail"] == (
        "D28 cannot be removed: published questionnaire ATD28 1.0 is scheduled at it"
    )
    db.expire_all()
    codes = select(VisitDefinition.code).where(VisitDefinition.study_id == world.study.id)
    assert set(db.scalars(codes)) == {"V1", "D14", "D28"}
    without_d14 = [asdict(d) for d in DEFAULT_SCHEDULE if d.code != "D14"]  # only a draft's
    assert client.put(url, json=without_d14, headers=coordinator).status_code == 200


def test_publishing_plans_the_version_for_enrolled_participants(client, db, world, coordinator):
    tomorrow = dt.date.today() + dt.timedelta(days=1)
    enrolled_with_visits(db, world, baseline=tomorrow)

    created = published(client, coordinator, world.study)

    db.expire_all()
    planned = db.scalars(
        select(EproInstance).where(EproInstance.questionnaire_id == uuid.UUID(created["id"]))
    ).all()
    assert len(planned) == 7  # days 1 to 7 after the baseline, all still ahead
    assert {i.participant_id for i in planned} == {world.patient_a.participant.id}
    assert {i.status for i in planned} == {"scheduled"}
    assert audit_events(db, "epro.plan", created["id"])


# --- FHIR -------------------------------------------------------------------------------


def fhir(client, headers, questionnaire: Body, **query: str):
    return client.get(
        questionnaire_url(questionnaire, "/fhir"), query_string=query, headers=headers
    )


def test_the_fhir_export_is_a_valid_r4_questionnaire(client, world, coordinator):
    created = published(client, coordinator, world.study)

    response = fhir(client, coordinator, created)

    assert response.status_code == 200
    assert response.mimetype == "application/fhir+json"
    body = response.get_json()
    FhirQuestionnaire.model_validate(body)
    assert body["resourceType"] == "Questionnaire"
    assert body["id"] == created["id"]
    assert body["url"] == f"urn:uuid:{created['id']}"
    assert body["identifier"] == [{"value": "HFDIARY"}]
    assert (body["version"], body["status"], body["language"]) == ("1.0", "active", "en")
    assert body["title"] == "Heart failure diary (en)"
    assert body["date"].endswith("Z")
    items = {entry["linkId"]: entry for entry in body["item"]}
    assert [(i["type"], i["required"]) for i in items.values()] == [
        ("choice", True),
        ("choice", False),
        ("integer", False),
        ("decimal", False),
        ("integer", True),
        ("decimal", False),
        ("boolean", True),
        ("date", False),
        ("text", True),
    ]
    assert "repeats" not in items["q1"] and items["q2"]["repeats"] is True
    assert items["q1"]["answerOption"][0]["valueCoding"] == {
        "code": "none",
        "display": "none (en)",
        "_display": translations({"nl": "none (nl)", "fr": "none (fr)"}),
    }
    assert items["q9"]["maxLength"] == 200
    assert items["q9"]["enableWhen"] == [{"question": "q7", "operator": "=", "answerBoolean": True}]
    assert bounds(items["q3"]) == {"valueInteger": (0, 20)}
    assert bounds(items["q4"]) == {"valueDecimal": (30.0, 250.0)}
    assert bounds(items["q5"]) == {"valueInteger": (0, 10)}
    assert bounds(items["q6"]) == {"valueDecimal": (0, 100)}
    assert "extension" not in items["q7"]


def translations(by_language: dict[str, str]) -> dict[str, Any]:
    return {
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/translation",
                "extension": [
                    {"url": "lang", "valueCode": language},
                    {"url": "content", "valueString": text},
                ],
            }
            for language, text in sorted(by_language.items())
        ]
    }


def bounds(entry: Body) -> dict[str, tuple[Any, Any]]:
    """{value key: (min, max)} from the minValue and maxValue extensions."""
    found = {ext["url"].rsplit("/", 1)[1]: ext for ext in entry["extension"]}
    key = next(k for k in found["minValue"] if k.startswith("value"))
    return {key: (found["minValue"][key], found["maxValue"][key])}


def test_the_fhir_export_carries_every_language(client, world, coordinator):
    created = published(client, coordinator, world.study)

    body = fhir(client, coordinator, created, lang="nl").get_json()

    FhirQuestionnaire.model_validate(body)
    assert body["language"] == "nl"
    assert body["title"] == "Heart failure diary (nl)"
    assert body["_title"] == translations(
        {"en": "Heart failure diary (en)", "fr": "Heart failure diary (fr)"}
    )
    assert body["item"][0]["text"] == "Breathless? (nl)"
    assert "_text" in body["item"][0]


@pytest.mark.parametrize(
    ("source", "equals", "answer"),
    [
        ("q1", "severe", {"answerCoding": {"code": "severe", "display": "severe (en)"}}),
        ("q2", "cough", {"answerCoding": {"code": "cough", "display": "cough (en)"}}),
        ("q3", 3, {"answerInteger": 3}),
        ("q4", 80.5, {"answerDecimal": 80.5}),
        ("q5", 7, {"answerInteger": 7}),
        ("q6", 50, {"answerDecimal": 50}),
        ("q8", "2026-01-31", {"answerDate": "2026-01-31"}),
    ],
)
def test_fhir_conditions_answer_in_the_source_items_type(
    client, world, coordinator, source, equals, answer
):
    body = copy.deepcopy(definition())
    when(8, {"item": source, "equals": equals})(body)
    created = client.post(questionnaires_url(world.study), json=body, headers=coordinator)

    exported = fhir(client, coordinator, created.get_json()).get_json()

    FhirQuestionnaire.model_validate(exported)
    assert exported["item"][8]["enableWhen"] == [{"question": source, "operator": "=", **answer}]


def test_a_text_condition_answers_a_string(client, world, coordinator):
    items = [
        {"link_id": "why", "type": "text", "max_length": 20, "text": texts("Why?")},
        {
            "link_id": "more",
            "type": "boolean",
            "text": texts("More?"),
            "enable_when": {"item": "why", "equals": "pain"},
        },
    ]
    created = draft(client, coordinator, world.study, items=items)

    exported = fhir(client, coordinator, created).get_json()

    FhirQuestionnaire.model_validate(exported)
    assert exported["item"][1]["enableWhen"][0]["answerString"] == "pain"


def test_the_fhir_status_follows_the_life_cycle(client, world, coordinator):
    first = draft(client, coordinator, world.study)
    assert fhir(client, coordinator, first).get_json()["status"] == "draft"
    assert "date" not in fhir(client, coordinator, first).get_json()

    client.post(questionnaire_url(first, "/publish"), headers=coordinator)
    published(client, coordinator, world.study, version="1.1")

    assert fhir(client, coordinator, first).get_json()["status"] == "retired"


def test_the_fhir_export_is_for_staff_of_the_study(client, world, coordinator, patient):
    created = published(client, coordinator, world.study)

    assert fhir(client, headers_for(client, world.monitor), created).status_code == 200
    assert_problem(fhir(client, patient, created), 403)
    assert_problem(fhir(client, headers_for(client, world.other_monitor), created), 404)
    assert_problem(fhir(client, coordinator, created, lang="de"), 422)
