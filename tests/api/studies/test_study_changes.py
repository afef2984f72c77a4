"""PATCH /studies/{id} and PATCH /sites/{id}: admins change titles, languages, names and
time zones; codes and countries stay; a language in use stays."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from services.models import AuditEvent, Site, Study, User
from tests.checks import assert_problem, audit_events, count
from tests.factories.consent import make_consent_document
from tests.factories.people import (
    World,
    headers_for,
    make_participant,
    make_site,
    make_study,
    random_id,
    user_of,
)

STUDIES = "/api/v1/studies"
SITES = "/api/v1/sites"
NOT_ADMIN = ["coordinator_a", "nurse_a", "monitor", "other_monitor", "patient"]


def patch_study(client: FlaskClient, caller: User, study: Study, body: object) -> TestResponse:
    return client.patch(f"{STUDIES}/{study.id}", json=body, headers=headers_for(client, caller))


def patch_site(client: FlaskClient, caller: User, site: Site, body: object) -> TestResponse:
    return client.patch(f"{SITES}/{site.id}", json=body, headers=headers_for(client, caller))


def study_state(db: Session, study: Study) -> tuple:
    db.expire_all()
    stored = db.get(Study, study.id)
    return (stored.code, stored.title, list(stored.languages), stored.default_timezone)


def site_state(db: Session, site: Site) -> tuple:
    db.expire_all()
    stored = db.get(Site, site.id)
    return (stored.code, stored.name, stored.country, stored.timezone)


@pytest.fixture
def admin_headers(client: FlaskClient, world: World) -> dict[str, str]:
    return headers_for(client, world.admin)


# --- studies --------------------------------------------------------------------------


def test_admin_changes_title_zone_and_adds_a_language(client, db, world, admin_headers):
    study = world.study  # nl, fr, en
    old_title = study.title
    body = {
        "title": "  Home monitoring, second edition ",
        "default_timezone": "Europe/Amsterdam",
        "languages": ["nl", "fr", "en", "DE"],
    }
    response = client.patch(f"{STUDIES}/{study.id}", json=body, headers=admin_headers)

    assert response.status_code == 200, response.get_json()
    answer = response.get_json()
    assert answer["title"] == "Home monitoring, second edition"
    assert answer["languages"] == ["nl", "fr", "en", "de"]
    assert answer["default_timezone"] == "Europe/Amsterdam"
    assert study_state(db, study)[1:] == (
        "Home monitoring, second edition",
        ["nl", "fr", "en", "de"],
        "Europe/Amsterdam",
    )
    (event,) = audit_events(db, "study.update", study.id)
    assert event.actor_id == world.admin.id
    assert event.before == {
        "title": old_title,
        "languages": ["nl", "fr", "en"],
        "default_timezone": "Europe/Brussels",
    }
    assert event.after["languages"] == ["nl", "fr", "en", "de"]


def test_an_unused_language_may_be_removed(client, db, world, admin_headers):
    # English: no approved consent document, and world's patients speak nl.
    make_consent_document(db, world.study, language="en", approved=False)  # a draft does not count
    body = {"languages": ["nl", "fr"]}
    response = client.patch(f"{STUDIES}/{world.study.id}", json=body, headers=admin_headers)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["languages"] == ["nl", "fr"]
    (event,) = audit_events(db, "study.update", world.study.id)
    assert (event.before, event.after) == (
        {"languages": ["nl", "fr", "en"]},
        {"languages": ["nl", "fr"]},
    )


def test_a_language_with_an_approved_consent_document_stays(client, db, world, admin_headers):
    make_consent_document(db, world.study, language="fr")
    before, events = study_state(db, world.study), count(db, AuditEvent)
    body = {"languages": ["nl", "en"], "title": "Renamed"}
    response = client.patch(f"{STUDIES}/{world.study.id}", json=body, headers=admin_headers)
    problem = assert_problem(response, 409)
    assert "fr is used by 1 approved consent document" in problem["detail"]
    assert (study_state(db, world.study), count(db, AuditEvent)) == (before, events)


def test_a_language_of_participants_stays(client, db, world, admin_headers):
    before, events = study_state(db, world.study), count(db, AuditEvent)
    response = client.patch(
        f"{STUDIES}/{world.study.id}", json={"languages": ["fr", "en"]}, headers=admin_headers
    )
    problem = assert_problem(response, 409)
    assert "nl is used by 2 participant(s) whose language it is" in problem["detail"]
    assert (study_state(db, world.study), count(db, AuditEvent)) == (before, events)


def test_every_language_in_use_is_named(client, db, world, admin_headers):
    make_consent_document(db, world.study, language="nl")
    response = client.patch(
        f"{STUDIES}/{world.study.id}", json={"languages": ["en"]}, headers=admin_headers
    )
    detail = assert_problem(response, 409)["detail"]
    assert "nl is used by 1 approved consent document(s) and 2 participant(s)" in detail
    assert "fr" not in detail  # unused: it could go


def test_another_studys_use_of_a_language_does_not_count(client, db, world, admin_headers):
    other = make_study(db, languages=("nl", "de"))
    make_participant(db, make_site(db, other))  # speaks nl in the other study
    response = client.patch(
        f"{STUDIES}/{other.id}", json={"languages": ["de"]}, headers=admin_headers
    )
    assert_problem(response, 409)
    response = client.patch(
        f"{STUDIES}/{world.other_study.id}", json={"languages": ["fr"]}, headers=admin_headers
    )
    assert response.status_code == 200


def test_the_same_values_change_and_audit_nothing(client, db, world, admin_headers):
    body = {"title": world.study.title, "languages": list(world.study.languages)}
    response = client.patch(f"{STUDIES}/{world.study.id}", json=body, headers=admin_headers)
    assert response.status_code == 200
    assert audit_events(db, "study.update", world.study.id) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"code": "NEW"}, "code"),
        ({"code": "NEW", "title": "x"}, "code"),
        ({"sponsor": "ACME"}, "sponsor"),
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 301}, "title"),
        ({"title": None}, "title"),
        ({"languages": []}, "languages"),
        ({"languages": ["english"]}, "languages"),
        ({"languages": ["nl", "NL", "fr", "en"]}, "languages"),
        ({"languages": "nl"}, "languages"),
        ({"default_timezone": "CEST+2"}, "default_timezone"),
        ({}, "_schema"),
    ],
)
def test_bad_study_changes_are_refused_and_nothing_is_stored(
    client, db, world, admin_headers, body, field
):
    before, events = study_state(db, world.study), count(db, AuditEvent)
    response = client.patch(f"{STUDIES}/{world.study.id}", json=body, headers=admin_headers)
    problem = assert_problem(response, 422)
    assert field in problem["errors"]
    assert (study_state(db, world.study), count(db, AuditEvent)) == (before, events)


def test_the_code_refusal_says_why(client, world, admin_headers):
    response = client.patch(
        f"{STUDIES}/{world.study.id}", json={"code": "NEW"}, headers=admin_headers
    )
    assert "never changes" in assert_problem(response, 422)["errors"]["code"][0]


@pytest.mark.parametrize("who", NOT_ADMIN)
def test_only_admins_change_a_study(client, db, world, who):
    before = study_state(db, world.study)
    assert_problem(patch_study(client, user_of(world, who), world.study, {"title": "Mine"}), 403)
    assert study_state(db, world.study) == before


def test_unknown_study_is_not_found(client, world, admin_headers):
    response = client.patch(f"{STUDIES}/{random_id()}", json={"title": "x"}, headers=admin_headers)
    assert_problem(response, 404)


# --- sites ----------------------------------------------------------------------------


def test_admin_renames_a_site_and_changes_its_zone(client, db, world, admin_headers):
    site = world.site_a
    old_name = site.name
    body = {"name": "UZ Brussel (campus Jette)", "timezone": "Europe/Luxembourg"}
    response = client.patch(f"{SITES}/{site.id}", json=body, headers=admin_headers)

    assert response.status_code == 200, response.get_json()
    answer = response.get_json()
    assert (answer["name"], answer["timezone"], answer["code"]) == (
        "UZ Brussel (campus Jette)",
        "Europe/Luxembourg",
        site.code,
    )
    (event,) = audit_events(db, "site.update", site.id)
    assert event.actor_id == world.admin.id
    assert event.before == {"name": old_name, "timezone": "Europe/Brussels"}
    assert event.after == body
    assert event.site_id == site.id


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"code": "X"}, {"code"}),
        ({"country": "NL", "name": "x"}, {"country"}),
        ({"code": "X", "country": "NL"}, {"code", "country"}),
        ({"study_id": random_id()}, {"study_id"}),
        ({"name": ""}, {"name"}),
        ({"name": "  "}, {"name"}),
        ({"timezone": "Mars/Olympus"}, {"timezone"}),
        ({}, {"_schema"}),
    ],
)
def test_bad_site_changes_are_refused_and_nothing_is_stored(
    client, db, world, admin_headers, body, fields
):
    before, events = site_state(db, world.site_a), count(db, AuditEvent)
    response = client.patch(f"{SITES}/{world.site_a.id}", json=body, headers=admin_headers)
    problem = assert_problem(response, 422)
    assert fields <= set(problem["errors"])
    assert (site_state(db, world.site_a), count(db, AuditEvent)) == (before, events)


def test_code_and_country_refusals_say_why(client, world, admin_headers):
    response = client.patch(
        f"{SITES}/{world.site_a.id}", json={"code": "X", "country": "NL"}, headers=admin_headers
    )
    errors = assert_problem(response, 422)["errors"]
    assert "subject codes" in errors["code"][0]
    assert "phones" in errors["country"][0]


@pytest.mark.parametrize("who", NOT_ADMIN)
def test_only_admins_change_a_site(client, db, world, who):
    before = site_state(db, world.site_a)
    assert_problem(patch_site(client, user_of(world, who), world.site_a, {"name": "Mine"}), 403)
    assert site_state(db, world.site_a) == before


def test_unknown_site_is_not_found(client, world, admin_headers):
    response = client.patch(f"{SITES}/{random_id()}", json={"name": "x"}, headers=admin_headers)
    assert_problem(response, 404)


def test_staff_read_a_site_in_their_scope(client, world):
    coordinator = headers_for(client, world.coordinator_a)
    response = client.get(f"{SITES}/{world.site_a.id}", headers=coordinator)
    assert response.status_code == 200
    assert response.get_json()["code"] == world.site_a.code
    assert_problem(client.get(f"{SITES}/{world.site_b.id}", headers=coordinator), 404)
    other = headers_for(client, world.other_monitor)
    assert_problem(client.get(f"{SITES}/{world.site_a.id}", headers=other), 404)
    patient = headers_for(client, world.patient_a.user)
    assert_problem(client.get(f"{SITES}/{world.site_a.id}", headers=patient), 403)


def test_changes_need_a_token(client, world):
    assert_problem(client.patch(f"{STUDIES}/{world.study.id}", json={"title": "x"}), 401)
    assert_problem(client.patch(f"{SITES}/{world.site_a.id}", json={"name": "x"}), 401)


@pytest.mark.parametrize("path", ["/api/v1/studies/{study_id}", "/api/v1/sites/{site_id}"])
def test_the_operations_are_documented(app, path):
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    operation = spec["paths"][path]["patch"]
    assert operation["security"] == [{"bearerAuth": []}]
    assert {"401", "403", "404", "422"} <= set(operation["responses"])
    assert operation["summary"] and "requestBody" in operation
