"""Withdrawal of consent: by the participant (re-authenticated) or recorded by a
coordinator, wholly, for contact or for one optional clause; nothing collected before
is deleted or changed."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from consent import signing
from consent.models import Consent, ConsentSignature, SignerRole
from services.db import utcnow
from services.errors import Conflict
from services.models import AuditEvent, Participant, SmsMessage, SmsStatus
from services.people import consent_gate, enrolment
from services.people import participants as people
from tests.checks import assert_problem, audit_events, count
from tests.factories.consent import (
    make_complete_consent,
    make_consent_document,
    record_discussion,
    sign_as,
)
from tests.factories.people import PASSWORD, World, headers_for, random_id, user_of

CLAUSES = ("future_research", "genetic_testing")


@pytest.fixture
def consent(db: Session, world: World) -> Consent:
    """patient_a's complete consent: future research agreed, genetic testing declined."""
    document = make_consent_document(db, world.study, clauses=CLAUSES)
    patient = world.patient_a
    record_discussion(db, patient, world.coordinator_a)
    signing.sign(
        db,
        people.actor_for(db, patient.user, "test"),
        document.id,
        signing.SignatureRequest(
            participant_id=patient.participant.id,
            role=SignerRole.PARTICIPANT,
            full_name=patient.user.full_name,
            password=PASSWORD,
            document_sha256=document.content_sha256,
            clause_choices={"future_research": True, "genetic_testing": False},
        ),
        signing.ClientInfo("127.0.0.1", "test"),
    )
    signature = sign_as(db, world.coordinator_a, patient, document, "investigator")
    return db.get(Consent, signature.consent_id)


def withdraw(client, consent: Consent, headers: dict, **body: object):
    return client.post(f"/api/v1/consents/{consent.id}/withdraw", json=body, headers=headers)


def as_patient(client, world: World) -> dict[str, str]:
    return headers_for(client, world.patient_a.user)


def state(db: Session, consent: Consent) -> tuple:
    """What a withdrawal may change, as committed by now."""
    db.expire_all()
    participant = db.get(Participant, consent.participant_id)
    record = db.get(Consent, consent.id)
    return (
        record.status,
        dict(record.withdrawn_clauses),
        record.contact_withdrawn_at,
        record.withdrawn_at,
        participant.status,
        participant.consent_state,
        participant.contact_allowed,
    )


def member(world: World, who: str):
    return world.patient_b.user if who == "patient_b" else user_of(world, who)


def stored(db: Session) -> tuple[int, int]:
    return count(db, Consent), count(db, ConsentSignature)


# --- scopes ---------------------------------------------------------------------------


def test_patient_withdraws_from_the_study_with_their_password(client, db, world, consent):
    response = withdraw(client, consent, as_patient(client, world), scope="all", password=PASSWORD)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["id"] == str(consent.id)
    assert body["status"] == "withdrawn"
    assert body["withdrawn_at"].endswith("Z")
    assert "password" not in body
    participant = db.get(Participant, consent.participant_id)
    db.refresh(participant)
    assert (participant.status, participant.consent_state) == ("withdrawn", "withdrawn")
    (event,) = audit_events(db, "consent.withdraw", consent.id)
    assert event.actor_id == world.patient_a.user.id
    assert event.after["scope"] == "all"
    assert event.before["status"] == "complete"


def test_full_withdrawal_blocks_enrolment_and_procedures(client, db, world, consent):
    headers = headers_for(client, world.coordinator_a)
    response = withdraw(client, consent, headers, scope="all", reason="told the nurse by phone")
    assert response.status_code == 200
    assert response.get_json()["withdrawal_reason"] == "told the nurse by phone"
    db.expire_all()
    participant = db.get(Participant, consent.participant_id)
    with pytest.raises(Conflict, match="withdrew consent"):
        consent_gate.require_current_consent(participant)
    with pytest.raises(Conflict):
        enrolment.enroll(
            db, people.actor_for(db, world.coordinator_a, "t"), participant.id, dt.date.today()
        )
    (event,) = audit_events(db, "consent.withdraw", consent.id)
    assert event.reason == "told the nurse by phone"


@pytest.mark.requirement("CONSENT-12")
def test_full_withdrawal_deletes_and_changes_nothing_collected_before(client, db, world, consent):
    signatures_before = [(s.id, s.signed_at, s.printed_name, s.binding) for s in consent.signatures]
    kept = (consent.clause_choices, consent.completed_at, consent.document_id)
    headers = as_patient(client, world)
    events_before = count(db, AuditEvent)
    sign_events = len(audit_events(db, "consent.sign", consent.id))
    rows_before = stored(db)

    response = withdraw(client, consent, headers, scope="all", password=PASSWORD)
    assert response.status_code == 200

    db.expire_all()
    record = db.get(Consent, consent.id)
    assert stored(db) == rows_before
    assert (record.clause_choices, record.completed_at, record.document_id) == kept
    assert [(s.id, s.signed_at, s.printed_name, s.binding) for s in record.signatures] == (
        signatures_before
    )
    assert all(signing.signature_is_intact(s, record) for s in record.signatures)
    assert len(audit_events(db, "consent.sign", consent.id)) == sign_events
    assert count(db, AuditEvent) == events_before + 1


def test_withdrawing_one_clause_keeps_the_consent_complete(client, db, world, consent):
    response = withdraw(
        client,
        consent,
        as_patient(client, world),
        scope="clause:future_research",
        password=PASSWORD,
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "complete"
    assert list(body["withdrawn_clauses"]) == ["future_research"]
    assert body["clause_choices"] == {"future_research": True, "genetic_testing": False}
    status, clauses, contact_at, withdrawn_at, _, p_consent, contact = state(db, consent)
    assert (status, withdrawn_at, contact_at) == ("complete", None, None)
    assert list(clauses) == ["future_research"]
    assert (p_consent, contact) == ("complete", True)
    consent_gate.require_current_consent(db.get(Participant, consent.participant_id))


def test_withdrawing_contact_stops_contact_only(client, db, world, consent):
    headers = headers_for(client, world.coordinator_a)
    response = withdraw(client, consent, headers, scope="contact", reason="asked at the visit")
    assert response.status_code == 200
    assert response.get_json()["contact_withdrawn_at"].endswith("Z")
    status, clauses, contact_at, _, _, p_consent, contact = state(db, consent)
    assert (status, clauses, p_consent, contact) == ("complete", {}, "complete", False)
    assert contact_at is not None


def planned_sms(db: Session, patient, template: str, status: SmsStatus) -> SmsMessage:
    """An outbox row of the patient's, as planning (or sending) would have left it."""
    due = utcnow() + dt.timedelta(hours=2)
    message = SmsMessage(
        dedupe_key=f"test:{uuid.uuid4()}",
        user_id=patient.user.id,
        participant_id=patient.participant.id,
        study_id=patient.participant.study_id,
        template=template,
        params="{}",
        relevance={"participant_id": str(patient.participant.id)},
        due_at=due,
        next_attempt_at=due,
        status=status.value,
    )
    db.add(message)
    db.flush()
    return message


def outbox_of(db: Session, patient) -> dict[str, tuple[str, str | None]]:
    db.expire_all()
    rows = db.scalars(select(SmsMessage).where(SmsMessage.participant_id == patient.participant.id))
    return {row.template: (row.status, row.status_reason) for row in rows}


@pytest.mark.parametrize(
    ("scope", "reason"), [("all", "consent withdrawn"), ("contact", "contact withdrawn")]
)
@pytest.mark.requirement("CONSENT-12")
def test_withdrawal_cancels_every_pending_sms_of_the_participant_at_once(
    client, db, world, consent, scope, reason
):
    """Not only skipped when each one's time comes: account codes too, since someone
    who withdrew contact gets no SMS from the study; what was sent stays as it was."""
    planned_sms(db, world.patient_a, "epro_open", SmsStatus.PENDING)
    planned_sms(db, world.patient_a, "password_reset", SmsStatus.PENDING)
    planned_sms(db, world.patient_a, "visit_24h", SmsStatus.SENT)
    others_before = outbox_of(db, world.patient_b)
    assert outbox_of(db, world.patient_a)["activation_code"][0] == "pending"

    response = withdraw(client, consent, as_patient(client, world), scope=scope, password=PASSWORD)

    assert response.status_code == 200, response.get_json()
    assert outbox_of(db, world.patient_a) == {
        "activation_code": ("cancelled", reason),
        "epro_open": ("cancelled", reason),
        "password_reset": ("cancelled", reason),
        "visit_24h": ("sent", None),
    }
    assert outbox_of(db, world.patient_b) == others_before
    (event,) = audit_events(db, "consent.withdraw", consent.id)
    assert event.after["sms_cancelled"] == 3


def test_after_leaving_the_study_contact_can_still_be_withdrawn(client, db, world, consent):
    headers = as_patient(client, world)
    assert withdraw(client, consent, headers, scope="all", password=PASSWORD).status_code == 200
    response = withdraw(client, consent, headers, scope="contact", password=PASSWORD)
    assert response.status_code == 200
    assert response.get_json()["status"] == "withdrawn"
    assert state(db, consent)[6] is False


# --- refusals ---------------------------------------------------------------------------


def test_unknown_clause_is_invalid_and_changes_nothing(client, db, world, consent):
    before = state(db, consent)
    response = withdraw(
        client, consent, as_patient(client, world), scope="clause:biobank", password=PASSWORD
    )
    assert "scope" in assert_problem(response, 422)["errors"]
    assert state(db, consent) == before
    assert audit_events(db, "consent.withdraw", consent.id) == []


@pytest.mark.parametrize("scope", ["everything", "clause:", "", "ALL"])
def test_malformed_scope_is_invalid(client, db, world, consent, scope):
    before = state(db, consent)
    response = withdraw(client, consent, as_patient(client, world), scope=scope, password=PASSWORD)
    assert "scope" in assert_problem(response, 422)["errors"]
    assert state(db, consent) == before


def test_a_declined_clause_cannot_be_withdrawn(client, db, world, consent):
    before = state(db, consent)
    response = withdraw(
        client,
        consent,
        as_patient(client, world),
        scope="clause:genetic_testing",
        password=PASSWORD,
    )
    assert "not agreed" in assert_problem(response, 409)["detail"]
    assert state(db, consent) == before


@pytest.mark.parametrize("scope", ["all", "contact", "clause:future_research"])
def test_withdrawing_twice_is_a_conflict(client, db, world, consent, scope):
    headers = as_patient(client, world)
    assert withdraw(client, consent, headers, scope=scope, password=PASSWORD).status_code == 200
    before = state(db, consent)
    response = withdraw(client, consent, headers, scope=scope, password=PASSWORD)
    assert_problem(response, 409)
    assert state(db, consent) == before
    assert len(audit_events(db, "consent.withdraw", consent.id)) == 1


@pytest.mark.parametrize("password", ["not my password", None])
def test_wrong_password_changes_nothing_but_keeps_the_failed_attempt(
    client, db, world, consent, password
):
    before = state(db, consent)
    body = {"scope": "all"} | ({"password": password} if password else {})
    response = withdraw(client, consent, as_patient(client, world), **body)
    assert_problem(response, 401)
    assert state(db, consent) == before
    assert audit_events(db, "consent.withdraw", consent.id) == []
    (failed,) = audit_events(db, "consent.withdraw_reauth_failed", consent.id)
    assert failed.actor_id == world.patient_a.user.id


def test_repeated_wrong_passwords_lock_the_account_like_failed_log_ins(client, db, world, consent):
    """A stolen access token must not become a way to guess the password."""
    headers = as_patient(client, world)
    before = state(db, consent)
    for _ in range(5):
        assert_problem(withdraw(client, consent, headers, scope="all", password="guess"), 401)

    locked = withdraw(client, consent, headers, scope="all", password=PASSWORD)

    assert_problem(locked, 429)
    assert state(db, consent) == before
    assert len(audit_events(db, "consent.withdraw_reauth_failed", consent.id)) == 5
    assert audit_events(db, "auth.lockout", world.patient_a.user.id)


@pytest.mark.parametrize("reason", [None, "   "])
def test_coordinator_must_give_a_reason(client, db, world, consent, reason):
    headers = headers_for(client, world.coordinator_a)
    before = state(db, consent)
    events = count(db, AuditEvent)
    body = {"scope": "all"} | ({"reason": reason} if reason else {})
    response = withdraw(client, consent, headers, **body)
    assert "reason" in assert_problem(response, 422)["errors"]
    assert state(db, consent) == before
    assert count(db, AuditEvent) == events


@pytest.mark.parametrize("who", ["coordinator_b", "patient_b"])
def test_another_sites_coordinator_or_another_patient_finds_nothing(
    client, db, world, consent, who
):
    before = state(db, consent)
    body = {"scope": "all", "reason": "x", "password": PASSWORD}
    response = withdraw(client, consent, headers_for(client, member(world, who)), **body)
    assert_problem(response, 404)
    assert state(db, consent) == before


def test_unknown_consent_is_not_found(client, world):
    headers = headers_for(client, world.coordinator_a)
    response = client.post(
        f"/api/v1/consents/{random_id()}/withdraw",
        json={"scope": "all", "reason": "x"},
        headers=headers,
    )
    assert_problem(response, 404)


@pytest.mark.parametrize("who", ["nurse_a", "monitor", "admin"])
def test_other_roles_may_not_withdraw(client, db, world, consent, who):
    before = state(db, consent)
    body = {"scope": "all", "reason": "x", "password": PASSWORD}
    response = withdraw(client, consent, headers_for(client, member(world, who)), **body)
    assert_problem(response, 403)
    assert state(db, consent) == before


def test_a_superseded_consent_cannot_be_withdrawn(client, db, world, consent):
    newer = make_consent_document(db, world.study, clauses=CLAUSES)
    make_complete_consent(db, world.patient_a, world.coordinator_a, newer)
    before = state(db, consent)
    response = withdraw(client, consent, as_patient(client, world), scope="all", password=PASSWORD)
    assert "superseded" in assert_problem(response, 409)["detail"]
    assert state(db, consent) == before
