"""Consent status views: per participant (filterable, paginated) and per site, in the
caller's scope, by subject code only."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from sqlalchemy.orm import Session

from consent import withdrawal
from consent.models import ConsentDocument
from services.people import participants as people
from tests.checks import assert_problem
from tests.factories.consent import (
    make_complete_consent,
    make_consent_document,
    record_discussion,
    sign_as,
)
from tests.factories.people import Patient, World, headers_for, make_participant, user_of


@dataclass
class Population:
    document: ConsentDocument
    a_complete: Patient
    a_pending: Patient
    a_none: Patient
    a_withdrawn: Patient
    b_complete: Patient


@pytest.fixture
def population(db: Session, world: World) -> Population:
    """Site A: complete, awaiting countersignature, not signed, withdrawn. Site B: complete."""
    document = make_consent_document(db, world.study)
    coordinator = world.coordinator_a
    a_pending, a_none, a_withdrawn = (
        make_participant(db, world.site_a, coordinator=coordinator) for _ in range(3)
    )
    make_complete_consent(db, world.patient_a, coordinator, document)
    record_discussion(db, a_pending, coordinator)
    sign_as(db, a_pending.user, a_pending, document, "participant")
    withdrawn = make_complete_consent(db, a_withdrawn, coordinator, document)
    withdrawal.withdraw(
        db,
        people.actor_for(db, coordinator, "test"),
        withdrawn.id,
        withdrawal.Withdrawal("all", reason="phoned the site"),
    )
    make_complete_consent(db, world.patient_b, world.coordinator_b, document)
    return Population(document, world.patient_a, a_pending, a_none, a_withdrawn, world.patient_b)


def status_url(study) -> str:
    return f"/api/v1/studies/{study.id}/consent-status"


def listed(client, world: World, who: str, **query: object) -> list[dict]:
    response = client.get(
        status_url(world.study),
        query_string=query,
        headers=headers_for(client, user_of(world, who)),
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def codes(rows: list[dict]) -> list[str]:
    return [row["subject_code"] for row in rows]


def code(patient: Patient) -> str:
    return patient.participant.subject_code


def test_coordinator_sees_their_sites_participants_by_subject_code(client, world, population):
    rows = listed(client, world, "coordinator_a")
    p = population
    assert codes(rows) == sorted(
        code(x) for x in (p.a_complete, p.a_pending, p.a_none, p.a_withdrawn)
    )
    by_code = {row["subject_code"]: row for row in rows}
    complete = by_code[code(p.a_complete)]
    assert complete["participant_id"] == str(p.a_complete.participant.id)
    assert complete["site_id"] == str(world.site_a.id)
    assert (complete["participant_status"], complete["consent_state"]) == ("consented", "complete")
    assert (complete["consent_status"], complete["document_version"]) == ("complete", 1)
    assert complete["completed_at"].endswith("Z")
    none = by_code[code(p.a_none)]
    assert (none["consent_state"], none["consent_id"], none["consent_status"]) == (
        "none",
        None,
        None,
    )
    assert all("full_name" not in row and "phone" not in row for row in rows)


def test_filter_pending_countersignature(client, world, population):
    rows = listed(client, world, "coordinator_a", consent_status="pending_countersign")
    assert codes(rows) == [code(population.a_pending)]
    assert rows[0]["consent_state"] == "pending"
    assert rows[0]["completed_at"] is None


def test_filter_withdrawn(client, world, population):
    rows = listed(client, world, "coordinator_a", consent_state="withdrawn")
    assert codes(rows) == [code(population.a_withdrawn)]
    row = rows[0]
    assert (row["participant_status"], row["consent_status"]) == ("withdrawn", "withdrawn")
    assert row["withdrawn_at"].endswith("Z")


def test_filters_take_several_values(client, world, population):
    rows = listed(client, world, "coordinator_a", consent_state=["none", "withdrawn"])
    assert sorted(codes(rows)) == sorted([code(population.a_none), code(population.a_withdrawn)])
    rows = listed(client, world, "coordinator_a", participant_status="screening")
    assert sorted(codes(rows)) == sorted([code(population.a_none), code(population.a_pending)])


@pytest.mark.requirement("CONSENT-11")
def test_requires_reconsent_then_awaiting_countersignature_of_the_new_version(
    client, db, world, population
):
    newer = make_consent_document(db, world.study, requires_reconsent=True)
    rows = listed(client, world, "coordinator_a", consent_state="requires_reconsent")
    flagged = sorted([code(population.a_complete), code(population.a_pending)])
    assert codes(rows) == flagged
    assert {(r["consent_status"], r["document_version"]) for r in rows} == {
        ("requires_reconsent", 1)
    }

    sign_as(db, population.a_complete.user, population.a_complete, newer, "participant")
    rows = listed(client, world, "coordinator_a", consent_status="pending_countersign")
    assert codes(rows) == [code(population.a_complete)]
    assert (rows[0]["consent_state"], rows[0]["document_version"]) == ("requires_reconsent", 2)


def test_monitor_sees_every_site_of_their_study_and_filters_by_site(client, world, population):
    assert len(listed(client, world, "monitor")) == 5
    rows = listed(client, world, "monitor", site_id=str(world.site_b.id))
    assert codes(rows) == [code(population.b_complete)]
    assert set(rows[0]) >= {"subject_code", "consent_state", "consent_status"}
    assert "full_name" not in rows[0]


def test_coordinator_does_not_see_another_sites_participants(client, world, population):
    assert listed(client, world, "coordinator_a", site_id=str(world.site_b.id)) == []
    assert code(population.b_complete) not in codes(listed(client, world, "coordinator_a"))


def test_the_list_is_paginated(client, world, population):
    response = client.get(
        status_url(world.study),
        query_string={"page_size": 3, "page": 2},
        headers=headers_for(client, world.coordinator_a),
    )
    assert len(response.get_json()) == 1
    assert json.loads(response.headers["X-Pagination"])["total"] == 4


@pytest.mark.parametrize(
    "query",
    [
        {"consent_state": "signed"},
        {"consent_status": "pending"},
        {"participant_status": "gone"},
        {"site_id": "site-a"},
    ],
)
def test_unknown_filter_values_are_invalid(client, world, query):
    response = client.get(
        status_url(world.study), query_string=query, headers=headers_for(client, world.monitor)
    )
    assert set(assert_problem(response, 422)["errors"]) == set(query)


# --- summary ----------------------------------------------------------------------------


def summary(client, world: World, who: str) -> dict:
    response = client.get(
        status_url(world.study) + "/summary", headers=headers_for(client, user_of(world, who))
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_summary_counts_per_site_in_the_coordinators_scope(client, world, population):
    body = summary(client, world, "coordinator_a")
    (site,) = body["sites"]
    assert (site["site_id"], site["site_code"]) == (str(world.site_a.id), world.site_a.code)
    assert site["participants"] == 4
    assert site["consent_state"] == {
        "none": 1,
        "pending": 1,
        "complete": 1,
        "requires_reconsent": 0,
        "withdrawn": 1,
    }
    assert site["pending_countersign"] == 1
    assert body["total"] == {
        k: site[k] for k in ("participants", "consent_state", "pending_countersign")
    }


@pytest.mark.parametrize("who", ["monitor", "admin"])
def test_summary_for_the_whole_study(client, world, population, who):
    body = summary(client, world, who)
    sites = {s["site_id"]: s for s in body["sites"]}
    assert set(sites) == {str(world.site_a.id), str(world.site_b.id)}
    assert sites[str(world.site_b.id)]["consent_state"]["complete"] == 1
    assert body["total"]["participants"] == 5
    assert body["total"]["consent_state"]["complete"] == 2


def test_summary_lists_a_site_without_participants(client, db, world):
    body = summary(client, world, "monitor")
    assert [s["participants"] for s in body["sites"]] == [1, 1]  # patient_a, patient_b
    assert body["total"]["consent_state"]["none"] == 2


# --- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["", "/summary"])
@pytest.mark.parametrize("who", ["nurse_a", "patient"])
def test_nurses_and_patients_are_refused(client, world, who, path):
    response = client.get(
        status_url(world.study) + path, headers=headers_for(client, user_of(world, who))
    )
    assert_problem(response, 403)


@pytest.mark.parametrize("path", ["", "/summary"])
@pytest.mark.parametrize("who", ["other_monitor", "coordinator_a"])
def test_another_study_is_not_found(client, world, who, path):
    study = world.study if who == "other_monitor" else world.other_study
    response = client.get(
        status_url(study) + path, headers=headers_for(client, user_of(world, who))
    )
    assert_problem(response, 404)
