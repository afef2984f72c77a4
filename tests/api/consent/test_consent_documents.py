"""Consent documents over HTTP: coordinators draft versions, admins approve them (frozen
from then on), staff of the study read them, patients read the approved versions of
their own study (the opening is audited) and see what they must sign in /me/consents."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from sqlalchemy.orm import Session

from consent.models import Consent, ConsentDocument
from services.actor import Role
from services.models import AuditEvent
from services.people import participants as people
from tests.checks import assert_problem, audit_events, count
from tests.factories.consent import make_complete_consent, make_consent_document
from tests.factories.people import (
    headers_for,
    make_participant,
    make_site,
    make_staff,
    make_study,
    random_id,
    user_of,
)

TODAY = dt.date.today()
QUIZ = [{"question": "Can you stop at any time?", "options": ["yes", "no"], "answer": "yes"}]


def documents_url(study) -> str:
    return f"/api/v1/studies/{study.id}/consent-documents"


def document_url(document, action: str = "") -> str:
    document_id = document["id"] if isinstance(document, dict) else document.id
    return f"/api/v1/consent-documents/{document_id}{action}"


def new_draft(language: str = "nl", **extra: object) -> dict:
    return {
        "language": language,
        "title": "Informed consent",
        "body_markdown": "## Why this study\n\nWe study home monitoring.",
        "signer_roles": ["participant", "investigator"],
        "optional_clauses": [{"code": "future_research", "text": "Use my data later"}],
        "quiz": QUIZ,
        "quiz_pass_mark": 1,
        **extra,
    }


def approval(**extra: object) -> dict:
    return {
        "ethics_reference": "EC-2026-017",
        "approved_on": TODAY.isoformat(),
        "effective_from": TODAY.isoformat(),
        "requires_reconsent": False,
        **extra,
    }


def stored(db: Session) -> tuple[int, int]:
    return count(db, ConsentDocument), count(db, AuditEvent)


def status_of(db: Session, document: ConsentDocument) -> str:
    db.expire_all()
    return db.get(ConsentDocument, document.id).status


def patient_with_locale(db: Session, site, coordinator, locale: str):
    patient = make_participant(db, site, coordinator=coordinator)
    people.update_participant(
        db, people.actor_for(db, coordinator, "t"), patient.participant.id, {"locale": locale}
    )
    return patient


@pytest.fixture
def coordinator_a(client, world):
    return headers_for(client, world.coordinator_a)


@pytest.fixture
def admin(client, world):
    return headers_for(client, world.admin)


@pytest.fixture
def outsider(client, db, world):
    """A coordinator of another study."""
    site = make_site(db, world.other_study)
    return headers_for(client, make_staff(db, Role.COORDINATOR, sites=[site]))


# --- drafting --------------------------------------------------------------------


def test_versions_are_numbered_by_the_server_per_language(client, db, world, coordinator_a):
    first = client.post(documents_url(world.study), json=new_draft("nl"), headers=coordinator_a)
    second = client.post(documents_url(world.study), json=new_draft("nl"), headers=coordinator_a)
    french = client.post(documents_url(world.study), json=new_draft("fr"), headers=coordinator_a)

    assert [r.status_code for r in (first, second, french)] == [201, 201, 201]
    assert [
        (r.get_json()["language"], r.get_json()["version"]) for r in (first, second, french)
    ] == [
        ("nl", 1),
        ("nl", 2),
        ("fr", 1),
    ]
    body = first.get_json()
    assert body["status"] == "draft"
    assert body["study_id"] == str(world.study.id)
    assert body["content_sha256"] == db.get(ConsentDocument, uuid.UUID(body["id"])).content_sha256
    assert body["quiz"] == QUIZ
    assert len(audit_events(db, "consent_document.draft", body["id"])) == 1


def test_an_admin_drafts_too(client, world, admin):
    response = client.post(documents_url(world.study), json=new_draft(), headers=admin)
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"signer_roles": ["participant", "investigator", "notary"]}, "signer_roles"),
        ({"signer_roles": ["participant"]}, "signer_roles"),
        ({"signer_roles": ["investigator", "impartial_witness"]}, "signer_roles"),
        ({"signer_roles": ["participant", "participant", "investigator"]}, "signer_roles"),
        (
            {
                "optional_clauses": [
                    {"code": "genetics", "text": "a"},
                    {"code": "genetics", "text": "b"},
                ]
            },
            "optional_clauses",
        ),
        ({"optional_clauses": [{"code": "no spaces", "text": "a"}]}, "optional_clauses"),
        ({"quiz": [{**QUIZ[0], "answer": "maybe"}]}, "quiz.0.answer"),
        ({"quiz_pass_mark": 0}, "quiz_pass_mark"),
        ({"quiz_pass_mark": 2}, "quiz_pass_mark"),
        ({"quiz_pass_mark": None}, "quiz_pass_mark"),
        ({"quiz": [], "quiz_pass_mark": 1}, "quiz_pass_mark"),
        ({"language": "de"}, "language"),
        ({"language": "dutch"}, "language"),
        ({"title": ""}, "title"),
        ({"version": 7}, "version"),
    ],
)
def test_an_invalid_draft_is_refused_and_nothing_is_stored(
    client, db, world, coordinator_a, change, field
):
    before = stored(db)
    response = client.post(
        documents_url(world.study), json=new_draft(**change), headers=coordinator_a
    )
    body = assert_problem(response, 422)
    assert field in json.dumps(body["errors"])
    assert stored(db) == before


@pytest.mark.parametrize("who", ["nurse_a", "monitor", "patient"])
def test_only_coordinators_and_admins_draft(client, db, world, who):
    headers = headers_for(client, user_of(world, who))
    before = stored(db)
    response = client.post(documents_url(world.study), json=new_draft(), headers=headers)
    assert_problem(response, 403)
    assert stored(db) == before


def test_a_coordinator_of_another_study_finds_no_study_or_document(client, db, world, outsider):
    document = make_consent_document(db, world.study, approved=False)
    before = stored(db)
    assert_problem(client.post(documents_url(world.study), json=new_draft(), headers=outsider), 404)
    assert_problem(client.get(documents_url(world.study), headers=outsider), 404)
    assert_problem(client.get(document_url(document), headers=outsider), 404)
    patch = client.patch(document_url(document), json={"title": "Mine"}, headers=outsider)
    assert_problem(patch, 404)
    assert stored(db) == before


# --- listing ---------------------------------------------------------------------


def test_the_list_filters_by_language_and_status_and_is_paginated(client, db, world):
    make_consent_document(db, world.study, language="nl")
    make_consent_document(db, world.study, language="nl", approved=False)
    make_consent_document(db, world.study, language="fr", approved=False)
    make_consent_document(db, world.other_study, language="nl", approved=False)
    headers = headers_for(client, world.monitor)

    def listed(**query: object) -> list[tuple[str, int, str]]:
        response = client.get(documents_url(world.study), headers=headers, query_string=query)
        assert response.status_code == 200
        return [(d["language"], d["version"], d["status"]) for d in response.get_json()]

    # en: the draft that approving nl 1 needed (every study language has a document).
    drafts = [("en", 1, "draft"), ("fr", 1, "draft"), ("nl", 2, "draft")]
    assert listed() == [*drafts, ("nl", 1, "approved")]
    assert listed(language="nl") == [("nl", 2, "draft"), ("nl", 1, "approved")]
    assert listed(status="draft") == drafts
    assert listed(language="nl", status="approved") == [("nl", 1, "approved")]

    page = client.get(documents_url(world.study), headers=headers, query_string={"page_size": 2})
    assert len(page.get_json()) == 2
    assert json.loads(page.headers["X-Pagination"])["total"] == 4


def test_an_unknown_status_filter_is_refused(client, world, coordinator_a):
    response = client.get(
        documents_url(world.study), headers=coordinator_a, query_string={"status": "final"}
    )
    assert "status" in assert_problem(response, 422)["errors"]


def test_patients_do_not_list_documents(client, db, world):
    make_consent_document(db, world.study)
    headers = headers_for(client, world.patient_a.user)
    assert_problem(client.get(documents_url(world.study), headers=headers), 403)


# --- reading ---------------------------------------------------------------------


@pytest.mark.parametrize("who", ["coordinator_b", "nurse_a", "monitor", "admin"])
def test_staff_of_the_study_read_a_draft_with_the_quiz_answers(client, db, world, who):
    document = make_consent_document(db, world.study, approved=False, quiz=True)
    response = client.get(document_url(document), headers=headers_for(client, getattr(world, who)))
    assert response.status_code == 200
    body = response.get_json()
    assert body["content_sha256"] == document.content_sha256
    assert body["quiz"][0]["answer"] == "yes"
    assert audit_events(db, "consent_document.open", document.id) == []


@pytest.mark.requirement("CONSENT-10")
def test_a_patient_reads_an_approved_version_without_answers_and_the_opening_is_audited(
    client, db, world
):
    document = make_consent_document(db, world.study, quiz=True)
    response = client.get(document_url(document), headers=headers_for(client, world.patient_a.user))
    assert response.status_code == 200
    body = response.get_json()
    assert body["content_sha256"] == document.content_sha256
    assert body["quiz"] == [{"question": QUIZ[0]["question"], "options": ["yes", "no"]}]
    [opened] = audit_events(db, "consent_document.open", document.id)
    assert opened.participant_id == world.patient_a.participant.id
    assert opened.after == {"version": 1, "content_sha256": document.content_sha256}


def test_a_patient_does_not_see_drafts_or_another_studys_documents(client, db, world):
    draft = make_consent_document(db, world.study, approved=False)
    foreign = make_consent_document(db, world.other_study)
    headers = headers_for(client, world.patient_a.user)
    assert_problem(client.get(document_url(draft), headers=headers), 404)
    assert_problem(client.get(document_url(foreign), headers=headers), 404)
    assert_problem(client.get(document_url({"id": random_id()}), headers=headers), 404)
    assert audit_events(db, "consent_document.open", draft.id) == []


# --- changing a draft ------------------------------------------------------------


def test_a_draft_changes_and_its_hash_follows(client, db, world, coordinator_a):
    document = make_consent_document(db, world.study, approved=False)
    old_hash = document.content_sha256
    response = client.patch(
        document_url(document),
        json={"body_markdown": "## Why this study\n\nRevised."},
        headers=coordinator_a,
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["body_markdown"] == "## Why this study\n\nRevised."
    assert (body["title"], body["version"]) == (document.title, 1)
    assert body["content_sha256"] not in (old_hash, None)
    db.expire_all()
    assert db.get(ConsentDocument, document.id).content_sha256 == body["content_sha256"]
    assert len(audit_events(db, "consent_document.update", document.id)) == 1


@pytest.mark.parametrize("status", ["approved", "superseded"])
def test_an_approved_or_superseded_version_is_frozen(client, db, world, coordinator_a, status):
    document = make_consent_document(db, world.study)
    if status == "superseded":
        make_consent_document(db, world.study)
    assert status_of(db, document) == status
    before = stored(db)
    response = client.patch(
        document_url(document), json={"title": "Changed"}, headers=coordinator_a
    )
    assert "frozen" in assert_problem(response, 409)["detail"]
    db.expire_all()
    unchanged = db.get(ConsentDocument, document.id)
    assert (unchanged.title, unchanged.content_sha256) == (document.title, document.content_sha256)
    assert stored(db) == before


@pytest.mark.parametrize(
    "change",
    [
        {"quiz": [{**QUIZ[0], "answer": "maybe"}], "quiz_pass_mark": 1},
        {"quiz": [{"question": "Incomplete?", "options": ["yes", "no"]}], "quiz_pass_mark": 1},
        {"language": "fr"},
        {"version": 2},
    ],
)
def test_an_invalid_change_leaves_the_draft_as_it_was(client, db, world, coordinator_a, change):
    document = make_consent_document(db, world.study, approved=False)
    before = stored(db)
    response = client.patch(document_url(document), json=change, headers=coordinator_a)
    assert_problem(response, 422)
    db.expire_all()
    assert db.get(ConsentDocument, document.id).content_sha256 == document.content_sha256
    assert stored(db) == before


@pytest.mark.parametrize("who", ["nurse_a", "monitor", "patient"])
def test_only_coordinators_and_admins_change_drafts(client, db, world, who):
    document = make_consent_document(db, world.study, approved=False)
    headers = headers_for(client, user_of(world, who))
    response = client.patch(document_url(document), json={"title": "Changed"}, headers=headers)
    assert_problem(response, 403)
    db.expire_all()
    assert db.get(ConsentDocument, document.id).title == document.title


# --- approval --------------------------------------------------------------------


def test_approval_freezes_and_supersedes_the_previous_version_of_that_language_only(
    client, db, world, admin
):
    dutch_v1 = make_consent_document(db, world.study, language="nl")
    french_v1 = make_consent_document(db, world.study, language="fr")
    dutch_v2 = make_consent_document(db, world.study, language="nl", approved=False)

    response = client.post(document_url(dutch_v2, "/approve"), json=approval(), headers=admin)

    assert response.status_code == 200
    body = response.get_json()
    assert (body["status"], body["ethics_reference"]) == ("approved", "EC-2026-017")
    assert (body["approved_on"], body["effective_from"]) == (TODAY.isoformat(), TODAY.isoformat())
    assert status_of(db, dutch_v1) == "superseded"
    assert status_of(db, french_v1) == "approved"
    assert len(audit_events(db, "consent_document.approve", dutch_v2.id)) == 1
    assert len(audit_events(db, "consent_document.supersede", dutch_v1.id)) == 1


def test_approval_is_refused_while_a_study_language_has_no_document(
    client, db, world, coordinator_a, admin
):
    """The study runs in nl, fr, en: its en speakers could never consent. A draft in a
    language is enough (the committee approves the set), whatever its version."""
    url = documents_url(world.study)
    dutch = client.post(url, json=new_draft("nl"), headers=coordinator_a).get_json()
    client.post(url, json=new_draft("fr"), headers=coordinator_a)
    before = stored(db)

    refused = client.post(document_url(dutch, "/approve"), json=approval(), headers=admin)

    problem = assert_problem(refused, 422)
    assert "no consent document in en" in problem["detail"]
    assert problem["errors"] == {"language": ["no consent document in en"]}
    assert stored(db) == before
    assert db.get(ConsentDocument, uuid.UUID(dutch["id"])).status == "draft"

    client.post(url, json=new_draft("en"), headers=coordinator_a)
    approved = client.post(document_url(dutch, "/approve"), json=approval(), headers=admin)
    assert approved.status_code == 200, approved.get_json()
    assert approved.get_json()["status"] == "approved"


def test_approval_effective_later_supersedes_nothing_yet(client, db, world, admin):
    current = make_consent_document(db, world.study)
    later = make_consent_document(db, world.study, approved=False)
    effective = (TODAY + dt.timedelta(days=30)).isoformat()
    response = client.post(
        document_url(later, "/approve"), json=approval(effective_from=effective), headers=admin
    )
    assert response.status_code == 200
    assert status_of(db, current) == "approved"
    mine = client.get("/api/v1/me/consents", headers=headers_for(client, world.patient_a.user))
    assert mine.get_json()["to_sign"]["id"] == str(current.id)


@pytest.mark.parametrize("who", ["coordinator_a", "monitor", "nurse_a", "patient"])
def test_only_admins_approve(client, db, world, who):
    document = make_consent_document(db, world.study, approved=False)
    headers = headers_for(client, user_of(world, who))
    before = stored(db)
    assert_problem(
        client.post(document_url(document, "/approve"), json=approval(), headers=headers), 403
    )
    assert status_of(db, document) == "draft"
    assert stored(db) == before


def test_an_approved_version_is_not_approved_again(client, db, world, admin):
    document = make_consent_document(db, world.study)
    response = client.post(
        document_url(document, "/approve"), json=approval(ethics_reference="EC-2"), headers=admin
    )
    assert_problem(response, 409)
    db.expire_all()
    assert db.get(ConsentDocument, document.id).ethics_reference != "EC-2"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"effective_from": (TODAY - dt.timedelta(days=1)).isoformat()}, "effective_from"),
        ({"approved_on": "yesterday"}, "approved_on"),
        ({"ethics_reference": ""}, "ethics_reference"),
    ],
)
def test_an_invalid_approval_leaves_a_draft(client, db, world, admin, change, field):
    document = make_consent_document(db, world.study, approved=False)
    before = stored(db)
    response = client.post(
        document_url(document, "/approve"), json=approval(**change), headers=admin
    )
    assert field in json.dumps(assert_problem(response, 422)["errors"])
    assert status_of(db, document) == "draft"
    assert stored(db) == before


def test_approving_an_unknown_document_is_a_404(client, admin):
    response = client.post(
        document_url({"id": random_id()}, "/approve"), json=approval(), headers=admin
    )
    assert_problem(response, 404)


# --- what a patient must sign ----------------------------------------------------


@pytest.fixture
def four_languages(db):
    """A study in nl, fr, de and en with a site and its coordinator."""
    study = make_study(db, languages=("nl", "fr", "de", "en"))
    site = make_site(db, study)
    return study, site, make_staff(db, Role.COORDINATOR, sites=[site])


def test_each_participant_is_offered_the_version_of_their_locale(client, db, four_languages):
    study, site, coordinator = four_languages
    offered = {
        language: make_consent_document(db, study, language=language, quiz=True)
        for language in ("nl", "fr", "de", "en")
    }
    for language, document in offered.items():
        patient = patient_with_locale(db, site, coordinator, language)
        response = client.get("/api/v1/me/consents", headers=headers_for(client, patient.user))
        assert response.status_code == 200
        body = response.get_json()
        assert body["to_sign"]["id"] == str(document.id)
        assert body["to_sign"]["language"] == language
        assert "answer" not in body["to_sign"]["quiz"][0]
        assert (body["to_sign_unavailable"], body["consents"]) == (None, [])


def test_without_an_approved_version_in_their_language_there_is_nothing_to_sign(
    client, db, four_languages
):
    study, site, coordinator = four_languages
    for language in ("nl", "fr", "en"):
        make_consent_document(db, study, language=language)
    make_consent_document(db, study, language="de", approved=False)
    patient = patient_with_locale(db, site, coordinator, "de")

    body = client.get("/api/v1/me/consents", headers=headers_for(client, patient.user)).get_json()

    assert body["to_sign"] is None
    assert "(de)" in body["to_sign_unavailable"]


def test_a_signed_consent_is_listed_and_nothing_is_left_to_sign(client, db, world):
    document = make_consent_document(db, world.study)
    consent = make_complete_consent(db, world.patient_a, world.coordinator_a, document)
    body = client.get(
        "/api/v1/me/consents", headers=headers_for(client, world.patient_a.user)
    ).get_json()
    assert body["to_sign"] is None
    assert body["to_sign_unavailable"] is None
    [record] = body["consents"]
    assert record["id"] == str(consent.id)
    assert (record["status"], record["document_id"], record["document_version"]) == (
        "complete",
        str(document.id),
        1,
    )
    assert record["clause_choices"] == {"future_research": True}
    assert record["withdrawn_clauses"] == {}
    assert record["completed_at"].endswith("Z")


def test_a_patient_sees_only_their_own_consents(client, db, world):
    document = make_consent_document(db, world.study)
    make_complete_consent(db, world.patient_b, world.coordinator_b, document)
    body = client.get(
        "/api/v1/me/consents", headers=headers_for(client, world.patient_a.user)
    ).get_json()
    assert body["consents"] == []
    assert body["to_sign"]["id"] == str(document.id)
    assert count(db, Consent) == 1


@pytest.mark.requirement("CONSENT-11")
def test_a_version_requiring_reconsent_is_offered_again(client, db, world):
    first = make_consent_document(db, world.study)
    make_complete_consent(db, world.patient_a, world.coordinator_a, first)
    second = make_consent_document(db, world.study, requires_reconsent=True)
    body = client.get(
        "/api/v1/me/consents", headers=headers_for(client, world.patient_a.user)
    ).get_json()
    assert body["to_sign"]["id"] == str(second.id)
    assert [c["status"] for c in body["consents"]] == ["requires_reconsent"]


def test_a_version_without_reconsent_leaves_a_complete_consent_standing(client, db, world):
    first = make_consent_document(db, world.study)
    make_complete_consent(db, world.patient_a, world.coordinator_a, first)
    make_consent_document(db, world.study, requires_reconsent=False)
    body = client.get(
        "/api/v1/me/consents", headers=headers_for(client, world.patient_a.user)
    ).get_json()
    assert body["to_sign"] is None
    assert [c["status"] for c in body["consents"]] == ["complete"]


@pytest.mark.parametrize("who", ["coordinator_a", "nurse_a", "monitor", "admin"])
def test_me_consents_is_for_patients(client, world, who):
    response = client.get("/api/v1/me/consents", headers=headers_for(client, getattr(world, who)))
    assert_problem(response, 403)
