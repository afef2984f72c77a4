"""Studies and sites: admins create them; staff read those they work on."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from services.models import AuditEvent, Site, Study
from tests.checks import assert_problem, count
from tests.factories.people import headers_for, random_id

STUDIES = "/api/v1/studies"

NEW_STUDY = {
    "code": "NEWSTUDY",
    "title": "A new study",
    "languages": ["nl", "fr"],
    "default_timezone": "Europe/Brussels",
}
NEW_SITE = {"code": "GENT", "name": "UZ Gent", "country": "BE", "timezone": "Europe/Brussels"}


# --- studies ---------------------------------------------------------------------


def test_admin_creates_a_study_and_it_is_audited(client, db, world):
    response = client.post(STUDIES, json=NEW_STUDY, headers=headers_for(client, world.admin))
    assert response.status_code == 201
    body = response.get_json()
    assert body["code"] == "NEWSTUDY"
    assert body["languages"] == ["nl", "fr"]
    assert body["default_timezone"] == "Europe/Brussels"
    assert body["created_at"].endswith("Z")
    assert db.scalars(select(Study).where(Study.code == "NEWSTUDY")).one()
    event = db.scalars(select(AuditEvent).where(AuditEvent.entity_id == body["id"])).one()
    assert event.action == "study.create"
    assert event.actor_id == world.admin.id


@pytest.mark.parametrize("role", ["coordinator_a", "nurse_a", "monitor"])
def test_staff_other_than_admin_may_not_create_a_study(client, db, world, role):
    before = count(db, Study)
    response = client.post(
        STUDIES, json=NEW_STUDY, headers=headers_for(client, getattr(world, role))
    )
    assert_problem(response, 403)
    assert count(db, Study) == before


def test_patient_may_not_create_a_study(client, db, world):
    before = count(db, Study)
    headers = headers_for(client, world.patient_a.user)
    assert_problem(client.post(STUDIES, json=NEW_STUDY, headers=headers), 403)
    assert count(db, Study) == before


def test_duplicate_study_code_is_a_conflict(client, db, world):
    headers = headers_for(client, world.admin)
    before = count(db, Study)
    response = client.post(STUDIES, json={**NEW_STUDY, "code": world.study.code}, headers=headers)
    assert_problem(response, 409)
    assert count(db, Study) == before


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"default_timezone": "Europe/Atlantis"}, "default_timezone"),
        ({"default_timezone": "CEST+2"}, "default_timezone"),
        ({"languages": ["english"]}, "languages"),
        ({"languages": []}, "languages"),
        ({"languages": ["nl", "NL"]}, "languages"),
        ({"languages": "nl"}, "languages"),
        ({"code": ""}, "code"),
        ({"title": "x" * 301}, "title"),
    ],
)
def test_study_with_bad_field_is_refused_and_not_stored(client, db, world, change, field):
    headers = headers_for(client, world.admin)  # log-in is audited too: count after it
    before, events = count(db, Study), count(db, AuditEvent)
    response = client.post(STUDIES, json={**NEW_STUDY, **change}, headers=headers)
    body = assert_problem(response, 422)
    assert field in body["errors"]
    assert (count(db, Study), count(db, AuditEvent)) == (before, events)


def test_study_missing_fields_are_each_named(client, db, world):
    before = count(db, Study)
    response = client.post(STUDIES, json={}, headers=headers_for(client, world.admin))
    body = assert_problem(response, 422)
    assert set(body["errors"]) == {"code", "title", "languages", "default_timezone"}
    assert count(db, Study) == before


def test_admin_lists_every_study(client, world):
    response = client.get(STUDIES, headers=headers_for(client, world.admin))
    assert response.status_code == 200
    codes = {study["code"] for study in response.get_json()}
    assert {world.study.code, world.other_study.code} <= codes


@pytest.mark.parametrize("role", ["coordinator_a", "nurse_a", "monitor"])
def test_staff_list_only_their_studies(client, world, role):
    response = client.get(STUDIES, headers=headers_for(client, getattr(world, role)))
    assert response.status_code == 200
    assert [study["id"] for study in response.get_json()] == [str(world.study.id)]


def test_monitor_of_another_study_sees_nothing_of_this_one(client, world):
    headers = headers_for(client, world.other_monitor)
    listed = client.get(STUDIES, headers=headers).get_json()
    assert [study["id"] for study in listed] == [str(world.other_study.id)]
    assert_problem(client.get(f"{STUDIES}/{world.study.id}", headers=headers), 404)
    assert_problem(client.get(f"{STUDIES}/{world.study.id}/sites", headers=headers), 404)


def test_patient_may_not_list_studies(client, world):
    headers = headers_for(client, world.patient_a.user)
    assert_problem(client.get(STUDIES, headers=headers), 403)


def test_studies_need_a_token(client, world):
    assert_problem(client.get(STUDIES), 401)


def test_staff_reads_own_study(client, world):
    headers = headers_for(client, world.coordinator_a)
    response = client.get(f"{STUDIES}/{world.study.id}", headers=headers)
    assert response.status_code == 200
    assert response.get_json()["code"] == world.study.code


def test_foreign_or_unknown_study_is_not_found(client, world):
    headers = headers_for(client, world.coordinator_a)
    assert_problem(client.get(f"{STUDIES}/{world.other_study.id}", headers=headers), 404)
    assert_problem(client.get(f"{STUDIES}/{random_id()}", headers=headers), 404)


def test_admin_reading_unknown_study_gets_404(client, world):
    headers = headers_for(client, world.admin)
    assert_problem(client.get(f"{STUDIES}/{random_id()}", headers=headers), 404)


def test_studies_list_is_paginated(client, db, world):
    headers = headers_for(client, world.admin)
    response = client.get(STUDIES, query_string={"page": 1, "page_size": 1}, headers=headers)
    assert response.status_code == 200
    assert len(response.get_json()) == 1
    pagination = json.loads(response.headers["X-Pagination"])
    assert pagination["total"] == count(db, Study) >= 2
    assert pagination["next_page"] == 2


# --- sites -----------------------------------------------------------------------


def sites_url(study) -> str:
    return f"{STUDIES}/{study.id}/sites"


def test_admin_adds_a_site(client, db, world):
    response = client.post(
        sites_url(world.study), json=NEW_SITE, headers=headers_for(client, world.admin)
    )
    assert response.status_code == 201
    body = response.get_json()
    assert body["study_id"] == str(world.study.id)
    assert (body["code"], body["country"], body["timezone"]) == ("GENT", "BE", "Europe/Brussels")
    site = db.scalars(select(Site).where(Site.study_id == world.study.id, Site.code == "GENT"))
    assert site.one().name == "UZ Gent"


def test_site_country_is_upper_cased(client, world):
    response = client.post(
        sites_url(world.study),
        json={**NEW_SITE, "country": "nl"},
        headers=headers_for(client, world.admin),
    )
    assert response.status_code == 201
    assert response.get_json()["country"] == "NL"


@pytest.mark.parametrize("role", ["coordinator_a", "nurse_a", "monitor"])
def test_staff_other_than_admin_may_not_add_a_site(client, db, world, role):
    before = count(db, Site)
    headers = headers_for(client, getattr(world, role))
    assert_problem(client.post(sites_url(world.study), json=NEW_SITE, headers=headers), 403)
    assert count(db, Site) == before


def test_patient_may_not_add_a_site(client, db, world):
    before = count(db, Site)
    headers = headers_for(client, world.patient_a.user)
    assert_problem(client.post(sites_url(world.study), json=NEW_SITE, headers=headers), 403)
    assert count(db, Site) == before


def test_site_for_unknown_study_is_not_found(client, db, world):
    before = count(db, Site)
    response = client.post(
        f"{STUDIES}/{random_id()}/sites", json=NEW_SITE, headers=headers_for(client, world.admin)
    )
    assert_problem(response, 404)
    assert count(db, Site) == before


def test_duplicate_site_code_in_a_study_is_a_conflict(client, db, world):
    headers = headers_for(client, world.admin)
    before = count(db, Site)
    duplicate = {**NEW_SITE, "code": world.site_a.code}
    assert_problem(client.post(sites_url(world.study), json=duplicate, headers=headers), 409)
    assert count(db, Site) == before


def test_same_site_code_in_another_study_is_fine(client, world):
    headers = headers_for(client, world.admin)
    response = client.post(
        sites_url(world.other_study), json={**NEW_SITE, "code": world.site_a.code}, headers=headers
    )
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"country": "XX"}, "country"),
        ({"country": "BEL"}, "country"),
        ({"code": ""}, "code"),
        ({"name": ""}, "name"),
    ],
)
def test_site_with_bad_field_is_refused_and_not_stored(client, db, world, change, field):
    headers = headers_for(client, world.admin)
    before, events = count(db, Site), count(db, AuditEvent)
    response = client.post(sites_url(world.study), json={**NEW_SITE, **change}, headers=headers)
    body = assert_problem(response, 422)
    assert field in body["errors"]
    assert (count(db, Site), count(db, AuditEvent)) == (before, events)


def test_site_missing_fields_are_each_named(client, db, world):
    before = count(db, Site)
    response = client.post(
        sites_url(world.study), json={}, headers=headers_for(client, world.admin)
    )
    body = assert_problem(response, 422)
    assert set(body["errors"]) == {"code", "name", "country", "timezone"}
    assert count(db, Site) == before


def test_admin_and_monitor_list_every_site_of_the_study(client, world):
    expected = {str(world.site_a.id), str(world.site_b.id)}
    for user in (world.admin, world.monitor):
        response = client.get(sites_url(world.study), headers=headers_for(client, user))
        assert response.status_code == 200
        assert {site["id"] for site in response.get_json()} == expected


@pytest.mark.parametrize("role", ["coordinator_a", "nurse_a"])
def test_site_staff_list_only_their_own_site(client, world, role):
    response = client.get(sites_url(world.study), headers=headers_for(client, getattr(world, role)))
    assert response.status_code == 200
    assert [site["id"] for site in response.get_json()] == [str(world.site_a.id)]


def test_coordinator_of_site_b_does_not_see_site_a(client, world):
    response = client.get(sites_url(world.study), headers=headers_for(client, world.coordinator_b))
    assert [site["id"] for site in response.get_json()] == [str(world.site_b.id)]


def test_sites_of_a_foreign_study_are_not_found(client, world):
    headers = headers_for(client, world.coordinator_a)
    assert_problem(client.get(sites_url(world.other_study), headers=headers), 404)


def test_patient_may_not_list_sites(client, world):
    headers = headers_for(client, world.patient_a.user)
    assert_problem(client.get(sites_url(world.study), headers=headers), 403)
