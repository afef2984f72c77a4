"""Enrolment: only a participant with a complete, current consent starts the study."""

from __future__ import annotations

import datetime as dt

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from consent import withdrawal
from consent.models import ConsentDocument
from services.models import Participant, User
from services.people import participants as people
from tests.checks import assert_problem, audit_events
from tests.factories.consent import (
    make_complete_consent,
    make_consent_document,
    record_discussion,
    sign_as,
)
from tests.factories.people import Patient, World, headers_for, user_of

BASELINE = "2026-02-02"


def enroll(client: FlaskClient, user: User, patient: Patient, **body: object) -> TestResponse:
    return client.post(
        f"/api/v1/participants/{patient.participant.id}/enroll",
        json=body or {"baseline_date": BASELINE},
        headers=headers_for(client, user),
    )


def state(db: Session, patient: Patient) -> tuple[str, str, dt.date | None]:
    db.expire_all()
    participant = db.get(Participant, patient.participant.id)
    return participant.status, participant.consent_state, participant.baseline_date


@pytest.fixture
def document(db: Session, world: World) -> ConsentDocument:
    return make_consent_document(db, world.study)


@pytest.fixture
def consented(db: Session, world: World, document: ConsentDocument) -> None:
    make_complete_consent(db, world.patient_a, world.coordinator_a, document)


def test_a_consented_participant_is_enrolled_from_a_baseline_date(client, db, world, consented):
    response = enroll(client, world.coordinator_a, world.patient_a)

    assert response.status_code == 200
    body = response.get_json()
    assert body["id"] == str(world.patient_a.participant.id)
    assert (body["status"], body["consent_state"]) == ("enrolled", "complete")
    assert body["baseline_date"] == BASELINE
    assert state(db, world.patient_a) == ("enrolled", "complete", dt.date(2026, 2, 2))
    (event,) = audit_events(db, "participant.enroll", world.patient_a.participant.id)
    assert event.after == {"status": "enrolled", "baseline_date": BASELINE}


def test_enrolment_without_any_consent_is_refused(client, db, world):
    response = enroll(client, world.coordinator_a, world.patient_a)

    assert "has not signed a consent" in assert_problem(response, 409)["detail"]
    assert state(db, world.patient_a) == ("screening", "none", None)


@pytest.mark.requirement("CONSENT-8", "X-STEP-ORDER")
def test_enrolment_before_the_countersignature_is_refused(client, db, world, document):
    record_discussion(db, world.patient_a, world.coordinator_a)
    sign_as(db, world.patient_a.user, world.patient_a, document, "participant")

    response = enroll(client, world.coordinator_a, world.patient_a)

    assert "not complete" in assert_problem(response, 409)["detail"]
    assert state(db, world.patient_a) == ("screening", "pending", None)


def test_a_participant_is_enrolled_only_once(client, db, world, consented):
    assert enroll(client, world.coordinator_a, world.patient_a).status_code == 200

    response = enroll(client, world.coordinator_a, world.patient_a, baseline_date="2026-03-01")

    assert "this one is enrolled" in assert_problem(response, 409)["detail"]
    assert state(db, world.patient_a) == ("enrolled", "complete", dt.date(2026, 2, 2))
    assert len(audit_events(db, "participant.enroll", world.patient_a.participant.id)) == 1


def test_enrolment_waits_for_re_consent_on_a_new_version(client, db, world, consented):
    make_consent_document(db, world.study, requires_reconsent=True)

    response = enroll(client, world.coordinator_a, world.patient_a)

    assert "re-consent" in assert_problem(response, 409)["detail"]
    assert state(db, world.patient_a) == ("consented", "requires_reconsent", None)


def test_signing_the_new_version_unblocks_enrolment(client, db, world, consented):
    new_version = make_consent_document(db, world.study, requires_reconsent=True)
    sign_as(db, world.patient_a.user, world.patient_a, new_version, "participant")
    sign_as(db, world.coordinator_a, world.patient_a, new_version, "investigator")

    response = enroll(client, world.coordinator_a, world.patient_a)

    assert response.status_code == 200
    assert state(db, world.patient_a) == ("enrolled", "complete", dt.date(2026, 2, 2))


def test_a_withdrawn_participant_cannot_be_enrolled(client, db, world, document):
    consent = make_complete_consent(db, world.patient_a, world.coordinator_a, document)
    actor = people.actor_for(db, world.coordinator_a, "test")
    withdrawal.withdraw(db, actor, consent.id, withdrawal.Withdrawal("all", reason="by phone"))

    response = enroll(client, world.coordinator_a, world.patient_a)

    assert "withdrew" in assert_problem(response, 409)["detail"]
    assert state(db, world.patient_a)[0] == "withdrawn"


@pytest.mark.parametrize("body", [{"baseline_date": "2026-02-30"}, {"baseline": BASELINE}])
def test_enrolment_needs_a_valid_baseline_date(client, db, world, consented, body):
    response = enroll(client, world.coordinator_a, world.patient_a, **body)

    assert "baseline_date" in assert_problem(response, 422)["errors"]
    assert state(db, world.patient_a) == ("consented", "complete", None)


@pytest.mark.parametrize("who", ["nurse_a", "monitor", "admin", "patient"])
def test_only_coordinators_enrol(client, db, world, consented, who):
    response = enroll(client, user_of(world, who), world.patient_a)

    assert_problem(response, 403)
    assert state(db, world.patient_a) == ("consented", "complete", None)


def test_a_coordinator_of_another_site_cannot_enrol(client, db, world, consented):
    response = enroll(client, world.coordinator_b, world.patient_a)

    assert_problem(response, 404)
    assert state(db, world.patient_a) == ("consented", "complete", None)
