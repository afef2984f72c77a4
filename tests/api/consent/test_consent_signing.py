"""Consent discussions, Part 11 signatures and the consent records, through HTTP.

Every refusal is problem+json and leaves no consent or signature behind; a wrong
password leaves only its audit event.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid

import pytest
from flask.testing import FlaskClient
from sqlalchemy import TextClause, Uuid, bindparam, select, text
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from consent.models import Consent, ConsentDiscussion, ConsentDocument, ConsentSignature
from services.actor import Role
from services.models import AuditEvent, Participant, User
from tests.checks import assert_problem, audit_events, count
from tests.factories.consent import (
    make_complete_consent,
    make_consent_document,
    record_discussion,
    sign_as,
)
from tests.factories.people import (
    PASSWORD,
    Patient,
    World,
    headers_for,
    make_participant,
    make_site,
    make_staff,
    user_of,
)

FIRST_SIGNERS = ("participant", "legally_authorised_representative")
TINY_PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64).decode()


def stored(db: Session) -> tuple[int, int]:
    return count(db, Consent), count(db, ConsentSignature)


def sign(
    client: FlaskClient,
    signer: User,
    document: ConsentDocument,
    patient: Patient,
    role: str = "participant",
    **changes: object,
) -> TestResponse:
    body = {
        "participant_id": str(patient.participant.id),
        "role": role,
        "full_name": signer.full_name,
        "password": PASSWORD,
        "document_sha256": document.content_sha256,
        "clause_choices": (
            {c["code"]: True for c in document.optional_clauses} if role in FIRST_SIGNERS else {}
        ),
        "quiz_answers": [q["answer"] for q in document.quiz],
        **changes,
    }
    return client.post(
        f"/api/v1/consent-documents/{document.id}/signatures",
        json=body,
        headers=headers_for(client, signer),
    )


def discuss(client: FlaskClient, coordinator: User, patient: Patient, **changes) -> TestResponse:
    """Held now (after the participant's registration) unless `held_at` says otherwise."""
    body = {"mode": "in_person", "held_at": dt.datetime.now(dt.UTC).isoformat(), **changes}
    return client.post(
        f"/api/v1/participants/{patient.participant.id}/consent-discussions",
        json=body,
        headers=headers_for(client, coordinator),
    )


def consents_of(client: FlaskClient, reader: User, patient: Patient) -> TestResponse:
    return client.get(
        f"/api/v1/participants/{patient.participant.id}/consents",
        headers=headers_for(client, reader),
    )


def by_id(statement: str) -> TextClause:
    """Plain SQL on one row, with the id bound as each database stores it."""
    return text(statement).bindparams(bindparam("id", type_=Uuid()))


def participant_row(db: Session, patient: Patient) -> Participant:
    db.expire_all()
    return db.get(Participant, patient.participant.id)


@pytest.fixture
def document(db: Session, world: World) -> ConsentDocument:
    return make_consent_document(db, world.study)


@pytest.fixture
def discussed(db: Session, world: World) -> None:
    record_discussion(db, world.patient_a, world.coordinator_a)


# --- consent discussions -------------------------------------------------------------


def registered_at(db: Session, patient: Patient) -> dt.datetime:
    return participant_row(db, patient).created_at


@pytest.mark.requirement("CONSENT-3")
def test_coordinator_records_the_consent_discussion(client, db, world):
    held = (registered_at(db, world.patient_a) + dt.timedelta(minutes=1)).replace(microsecond=0)
    response = discuss(
        client,
        world.coordinator_a,
        world.patient_a,
        held_at=held.astimezone(dt.timezone(dt.timedelta(hours=1))).isoformat(),
        notes="Questions answered",
    )

    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["participant_id"] == str(world.patient_a.participant.id)
    assert body["mode"] == "in_person"
    assert body["held_at"] == held.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert body["notes"] == "Questions answered"
    assert body["participant_can_read"] is True
    assert (body["with_lar"], body["with_witness"]) == (False, False)
    assert body["recorded_by"] == str(world.coordinator_a.id)
    assert body["created_at"].endswith("Z")
    (event,) = audit_events(db, "consent.discussion", body["id"])
    assert event.after["mode"] == "in_person"
    assert "Questions" not in str(event.after)


@pytest.mark.requirement("CONSENT-3")
def test_a_phone_discussion_is_refused_at_a_belgian_site(client, db, world):
    response = discuss(client, world.coordinator_a, world.patient_a, mode="phone")

    assert "by phone" in assert_problem(response, 409)["detail"]
    assert count(db, ConsentDiscussion) == 0


def test_a_phone_discussion_is_allowed_at_a_dutch_site(client, db, world, document):
    dutch_site = make_site(db, world.study, country="NL")
    coordinator = make_staff(db, Role.COORDINATOR, sites=[dutch_site])
    patient = make_participant(db, dutch_site, coordinator=coordinator)

    assert discuss(client, coordinator, patient, mode="phone").status_code == 201
    assert sign(client, patient.user, document, patient).status_code == 201


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"held_at": "2026-01-15T10:00:00"}, "held_at"),
        ({"held_at": "2999-01-01T10:00:00Z"}, "held_at"),
        ({"mode": "letter"}, "mode"),
        ({"participant_can_read": False}, "witness_name"),
        ({"lar_name": "   "}, "lar_name"),
    ],
)
def test_an_invalid_discussion_is_422_and_not_stored(client, db, world, change, field):
    response = discuss(client, world.coordinator_a, world.patient_a, **change)

    assert field in assert_problem(response, 422)["errors"]
    assert count(db, ConsentDiscussion) == 0


@pytest.mark.parametrize(
    "when",
    [
        lambda registered: dt.datetime(1990, 1, 15, 10, tzinfo=dt.UTC),
        lambda registered: registered - dt.timedelta(minutes=1),
    ],
    ids=["1990", "a minute before registration"],
)
def test_a_discussion_before_the_participants_registration_is_422(client, db, world, when):
    held = when(registered_at(db, world.patient_a))

    response = discuss(client, world.coordinator_a, world.patient_a, held_at=held.isoformat())

    (message,) = assert_problem(response, 422)["errors"]["held_at"]
    assert "before the participant's registration" in message
    assert count(db, ConsentDiscussion) == 0
    assert count_events(db, "consent.discussion") == 0


def test_a_discussion_in_the_future_is_422(client, db, world):
    """The server's clock with a few minutes' tolerance for the coordinator's."""
    ahead = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=6)

    response = discuss(client, world.coordinator_a, world.patient_a, held_at=ahead.isoformat())

    (message,) = assert_problem(response, 422)["errors"]["held_at"]
    assert "future" in message
    assert count(db, ConsentDiscussion) == 0


@pytest.mark.parametrize(
    "when",
    [
        lambda registered: registered,
        lambda registered: registered + dt.timedelta(minutes=1),
        lambda registered: dt.datetime.now(dt.UTC) + dt.timedelta(minutes=4),
    ],
    ids=["at registration", "a minute after registration", "a clock 4 minutes ahead"],
)
def test_a_discussion_between_registration_and_now_is_recorded(client, db, world, when):
    held = when(registered_at(db, world.patient_a))

    response = discuss(client, world.coordinator_a, world.patient_a, held_at=held.isoformat())

    assert response.status_code == 201, response.get_json()
    assert dt.datetime.fromisoformat(response.get_json()["held_at"]) == held
    assert count_events(db, "consent.discussion") == 1


def count_events(db: Session, action: str) -> int:
    return len(db.scalars(select(AuditEvent.id).where(AuditEvent.action == action)).all())


@pytest.mark.parametrize("who", ["nurse_a", "monitor", "admin", "patient"])
def test_only_coordinators_record_discussions(client, db, world, who):
    response = discuss(client, user_of(world, who), world.patient_a)

    assert_problem(response, 403)
    assert count(db, ConsentDiscussion) == 0


def test_a_coordinator_of_another_site_cannot_record_a_discussion(client, db, world):
    response = discuss(client, world.coordinator_b, world.patient_a)

    assert_problem(response, 404)
    assert count(db, ConsentDiscussion) == 0


# --- the participant's signature -----------------------------------------------------


@pytest.mark.requirement("CONSENT-1", "CONSENT-5")
def test_participant_signature_stores_the_full_manifestation(
    client, db, world, document, discussed
):
    patient = world.patient_a
    response = client.post(
        f"/api/v1/consent-documents/{document.id}/signatures",
        json={
            "participant_id": str(patient.participant.id),
            "role": "participant",
            "full_name": f"  {patient.user.full_name.upper()} ",
            "password": PASSWORD,
            "document_sha256": document.content_sha256,
            "clause_choices": {"future_research": False},
        },
        headers={**headers_for(client, patient.user), "User-Agent": "DCT-App/2.1 (Android 15)"},
    )

    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert "password" not in body
    assert body["printed_name"] == patient.user.full_name.upper()
    assert body["signer_role"] == "participant"
    assert body["meaning"] == "I consent to take part in this study"
    assert body["signed_at"].endswith("Z")
    assert dt.datetime.fromisoformat(body["signed_at"]).utcoffset() == dt.timedelta(0)
    assert body["document_id"] == str(document.id)
    assert body["document_version"] == document.version == 1
    assert body["document_sha256"] == document.content_sha256
    assert body["participant_id"] == str(patient.participant.id)
    assert body["clause_choices"] == {"future_research": False}
    assert body["consent_status"] == "pending_countersign"

    signature = db.get(ConsentSignature, uuid.UUID(body["id"]))
    assert str(signature.consent_id) == body["consent_id"]
    assert signature.client_address == "127.0.0.1"
    assert signature.user_agent == "DCT-App/2.1 (Android 15)"
    raw_address, raw_name = db.execute(
        by_id("SELECT client_address, printed_name FROM consent_signatures WHERE id = :id"),
        {"id": signature.id},
    ).one()
    assert "127.0.0.1" not in raw_address
    assert patient.user.full_name.upper() not in raw_name
    assert participant_row(db, patient).consent_state == "pending"
    (event,) = audit_events(db, "consent.sign", body["consent_id"])
    assert event.after["signer_role"] == "participant"
    assert event.after["document_sha256"] == document.content_sha256


@pytest.mark.requirement("CONSENT-1")
def test_a_draft_cannot_be_signed(client, db, world, discussed):
    draft = make_consent_document(db, world.study, approved=False)
    before = stored(db)

    body = assert_problem(
        sign(client, world.coordinator_a, draft, world.patient_a, "investigator"), 409
    )
    assert "draft" in body["detail"]
    # Patients do not see drafts at all.
    assert_problem(sign(client, world.patient_a.user, draft, world.patient_a), 404)
    assert stored(db) == before


@pytest.mark.requirement("CONSENT-1")
def test_a_superseded_version_cannot_be_signed(client, db, world, discussed):
    first = make_consent_document(db, world.study)
    make_consent_document(db, world.study)
    before = stored(db)

    response = sign(client, world.patient_a.user, first, world.patient_a)

    assert "superseded" in assert_problem(response, 409)["detail"]
    assert stored(db) == before


@pytest.mark.parametrize(
    "other",
    [
        {"language": "fr"},
        {"effective_from": dt.date.today() + dt.timedelta(days=7)},
    ],
)
@pytest.mark.requirement("CONSENT-2")
def test_only_the_current_version_in_the_participants_language_can_be_signed(
    client, db, world, document, discussed, other
):
    not_current = make_consent_document(db, world.study, **other)
    before = stored(db)

    response = sign(client, world.patient_a.user, not_current, world.patient_a)

    assert "not the current version" in assert_problem(response, 409)["detail"]
    assert stored(db) == before


@pytest.mark.requirement("CONSENT-7")
def test_a_wrong_password_is_401_and_leaves_only_an_audit_event(
    client, db, world, document, discussed
):
    patient = world.patient_a
    before = stored(db)

    response = sign(client, patient.user, document, patient, password="not my password at all")

    assert_problem(response, 401)
    assert stored(db) == before
    assert participant_row(db, patient).consent_state == "none"
    (event,) = audit_events(db, "consent.signature_reauth_failed", patient.participant.id)
    assert event.actor_id == patient.user.id
    assert audit_events(db, "consent.sign", patient.participant.id) == []


def test_a_hash_mismatch_is_refused(client, db, world, document, discussed):
    before = stored(db)

    response = sign(
        client, world.patient_a.user, document, world.patient_a, document_sha256="0" * 64
    )

    assert "document_sha256" in assert_problem(response, 409)["detail"]
    assert stored(db) == before


def test_a_malformed_hash_is_422(client, db, world, document, discussed):
    response = sign(client, world.patient_a.user, document, world.patient_a, document_sha256="abc")

    assert "document_sha256" in assert_problem(response, 422)["errors"]
    assert stored(db) == (0, 0)


def test_a_second_participant_signature_on_the_same_consent_is_refused(
    client, db, world, document, discussed
):
    assert sign(client, world.patient_a.user, document, world.patient_a).status_code == 201
    before = stored(db)

    response = sign(client, world.patient_a.user, document, world.patient_a)

    assert "already has its participant signature" in assert_problem(response, 409)["detail"]
    assert stored(db) == before


@pytest.mark.requirement("CONSENT-4")
def test_a_patient_cannot_sign_for_another_participant(client, db, world, document):
    record_discussion(db, world.patient_b, world.coordinator_b)

    response = sign(client, world.patient_a.user, document, world.patient_b)

    assert_problem(response, 404)
    assert stored(db) == (0, 0)


@pytest.mark.requirement("CONSENT-4")
def test_a_printed_name_that_does_not_match_is_422(client, db, world, document, discussed):
    response = sign(client, world.patient_a.user, document, world.patient_a, full_name="J. Doe")

    assert "full_name" in assert_problem(response, 422)["errors"]
    assert stored(db) == (0, 0)


@pytest.mark.parametrize("choices", [{}, {"future_research": True, "genetics": True}])
def test_each_optional_clause_needs_exactly_one_choice(
    client, db, world, document, discussed, choices
):
    response = sign(client, world.patient_a.user, document, world.patient_a, clause_choices=choices)

    assert "clause_choices" in assert_problem(response, 422)["errors"]
    assert stored(db) == (0, 0)


def test_a_failed_quiz_refuses_the_signature_and_is_recorded(client, db, world, discussed):
    document = make_consent_document(db, world.study, quiz=True)

    response = sign(client, world.patient_a.user, document, world.patient_a, quiz_answers=["no"])

    assert "quiz was not passed" in assert_problem(response, 409)["detail"]
    assert stored(db) == (0, 0)
    (event,) = audit_events(db, "consent.quiz_failed", document.id)
    assert event.after == {"correct": 0, "pass_mark": 1}


def test_a_passed_quiz_lets_the_participant_sign(client, db, world, discussed):
    document = make_consent_document(db, world.study, quiz=True)

    response = sign(client, world.patient_a.user, document, world.patient_a, quiz_answers=["yes"])

    assert response.status_code == 201
    assert stored(db) == (1, 1)


@pytest.mark.requirement("CONSENT-3")
def test_nobody_signs_before_the_discussion_is_recorded(client, db, world, document):
    response = sign(client, world.patient_a.user, document, world.patient_a)

    assert "no consent discussion" in assert_problem(response, 409)["detail"]
    assert stored(db) == (0, 0)


@pytest.mark.parametrize("who", ["nurse_a", "monitor", "admin"])
@pytest.mark.parametrize("role", ["participant", "investigator"])
def test_nurses_monitors_and_admins_cannot_sign(client, db, world, document, discussed, who, role):
    response = sign(client, user_of(world, who), document, world.patient_a, role)

    assert_problem(response, 403)
    assert stored(db) == (0, 0)


@pytest.mark.parametrize("role", ["investigator", "impartial_witness"])
def test_a_patient_signs_only_as_participant(client, db, world, document, discussed, role):
    response = sign(client, world.patient_a.user, document, world.patient_a, role)

    assert_problem(response, 403)
    assert stored(db) == (0, 0)


def test_signing_needs_a_token(client, db, world, document):
    response = client.post(f"/api/v1/consent-documents/{document.id}/signatures", json={})
    assert_problem(response, 401)


def test_a_signature_image_is_kept_with_the_signature(client, db, world, document, discussed):
    response = sign(
        client, world.patient_a.user, document, world.patient_a, signature_image=TINY_PNG
    )

    assert response.status_code == 201
    assert "signature_image" not in response.get_json()
    assert (
        db.get(ConsentSignature, uuid.UUID(response.get_json()["id"])).signature_image == TINY_PNG
    )


@pytest.mark.parametrize(
    "image",
    [
        "not base64!",
        base64.b64encode(b"GIF89a" + b"\x00" * 64).decode(),
        base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * (200 * 1024)).decode(),
    ],
)
def test_a_signature_image_must_be_a_small_png(client, db, world, document, discussed, image):
    response = sign(client, world.patient_a.user, document, world.patient_a, signature_image=image)

    assert "signature_image" in assert_problem(response, 422)["errors"]
    assert stored(db) == (0, 0)


# --- countersignature, witness, representative -----------------------------------------


def test_the_investigator_cannot_sign_before_the_participant(
    client, db, world, document, discussed
):
    response = sign(client, world.coordinator_a, document, world.patient_a, "investigator")

    assert "signs first" in assert_problem(response, 409)["detail"]
    assert stored(db) == (0, 0)


def test_a_coordinator_of_another_site_cannot_countersign(client, db, world, document, discussed):
    sign_as(db, world.patient_a.user, world.patient_a, document, "participant")
    before = stored(db)

    response = sign(client, world.coordinator_b, document, world.patient_a, "investigator")

    assert_problem(response, 404)
    assert stored(db) == before


@pytest.mark.requirement("CONSENT-8")
def test_the_countersignature_completes_the_consent(client, db, world, document, discussed):
    patient = world.patient_a
    first = sign(client, patient.user, document, patient)

    response = sign(client, world.coordinator_a, document, patient, "investigator")

    assert response.status_code == 201
    body = response.get_json()
    assert body["consent_id"] == first.get_json()["consent_id"]
    assert body["consent_status"] == "complete"
    assert body["meaning"].startswith("Countersigned as investigator")
    assert body["printed_name"] == world.coordinator_a.full_name
    assert body["clause_choices"] is None
    participant = participant_row(db, patient)
    assert (participant.status, participant.consent_state) == ("consented", "complete")
    assert db.get(Consent, uuid.UUID(body["consent_id"])).completed_at is not None
    (event,) = audit_events(db, "consent.complete", body["consent_id"])
    assert event.after["status"] == "consented"


@pytest.mark.requirement("CONSENT-8")
def test_a_participant_who_cannot_read_needs_a_witness_before_the_countersignature(
    client, db, world, document
):
    patient, coordinator = world.patient_a, world.coordinator_a
    discussed = discuss(
        client, coordinator, patient, participant_can_read=False, witness_name="Jan  Getuige"
    )
    assert discussed.get_json()["with_witness"] is True
    assert sign(client, patient.user, document, patient).status_code == 201

    early = sign(client, coordinator, document, patient, "investigator")
    assert "still missing: impartial_witness" in assert_problem(early, 409)["detail"]
    wrong_name = sign(client, coordinator, document, patient, "impartial_witness")
    assert_problem(wrong_name, 422)
    assert stored(db) == (1, 1)

    witness = sign(
        client, coordinator, document, patient, "impartial_witness", full_name="Jan Getuige"
    )
    assert witness.status_code == 201
    assert witness.get_json()["printed_name"] == "Jan Getuige"
    assert witness.get_json()["meaning"].startswith("Signed as impartial witness")
    assert witness.get_json()["consent_status"] == "pending_countersign"

    final = sign(client, coordinator, document, patient, "investigator")
    assert final.get_json()["consent_status"] == "complete"
    assert participant_row(db, patient).status == "consented"


@pytest.mark.requirement("CONSENT-9")
def test_a_representative_signs_instead_of_the_participant(client, db, world, document):
    patient, coordinator = world.patient_a, world.coordinator_a
    assert discuss(client, coordinator, patient, lar_name="Anna Peeters").status_code == 201

    refused = sign(client, patient.user, document, patient)
    assert "does not take a participant signature" in assert_problem(refused, 409)["detail"]
    lar_role = "legally_authorised_representative"
    representative = sign(
        client, coordinator, document, patient, lar_role, full_name="Anna Peeters"
    )
    assert representative.status_code == 201
    assert representative.get_json()["meaning"].startswith("I consent on behalf")
    assert representative.get_json()["clause_choices"] == {"future_research": True}

    final = sign(client, coordinator, document, patient, "investigator")
    assert final.get_json()["consent_status"] == "complete"
    assert participant_row(db, patient).consent_state == "complete"


# --- consent records -----------------------------------------------------------------


@pytest.fixture
def complete(db: Session, world: World, document: ConsentDocument) -> Consent:
    return make_complete_consent(db, world.patient_a, world.coordinator_a, document)


@pytest.mark.requirement("CONSENT-5")
def test_the_coordinator_reads_consent_records_with_signatures(client, world, document, complete):
    response = consents_of(client, world.coordinator_a, world.patient_a)

    assert response.status_code == 200
    assert "X-Pagination" in response.headers
    (record,) = response.get_json()
    assert record["id"] == str(complete.id)
    assert record["document_id"] == str(document.id)
    assert (record["document_version"], record["document_language"]) == (1, "nl")
    assert record["status"] == "complete"
    assert record["clause_choices"] == {"future_research": True}
    assert record["withdrawn_clauses"] == {}
    assert record["completed_at"].endswith("Z")
    assert record["withdrawn_at"] is None and record["contact_withdrawn_at"] is None
    roles = [s["signer_role"] for s in record["signatures"]]
    assert roles == ["participant", "investigator"]
    participant_signature, _ = record["signatures"]
    assert participant_signature["printed_name"] == world.patient_a.user.full_name
    assert participant_signature["document_sha256"] == document.content_sha256
    assert participant_signature["signed_at"].endswith("Z")
    assert all(s["intact"] is True for s in record["signatures"])
    assert all("signature_image" not in s for s in record["signatures"])


@pytest.mark.requirement("X-BLINDED")
def test_monitors_read_consent_records_without_printed_names(client, world, complete):
    response = consents_of(client, world.monitor, world.patient_a)

    assert response.status_code == 200
    (record,) = response.get_json()
    assert len(record["signatures"]) == 2
    for signature in record["signatures"]:
        assert "printed_name" not in signature
        assert "signature_image" not in signature
        assert signature["meaning"]
    assert world.patient_a.user.full_name not in response.get_data(as_text=True)


def test_a_patient_reads_their_own_consents_only(client, world, complete):
    own = consents_of(client, world.patient_a.user, world.patient_a)
    assert own.status_code == 200
    assert own.get_json()[0]["signatures"][0]["printed_name"] == world.patient_a.user.full_name

    assert_problem(consents_of(client, world.patient_b.user, world.patient_a), 404)


@pytest.mark.parametrize("who", ["coordinator_b", "other_monitor"])
def test_staff_outside_the_participants_scope_get_404(client, world, complete, who):
    assert_problem(consents_of(client, user_of(world, who), world.patient_a), 404)


@pytest.mark.parametrize("who", ["nurse_a", "admin"])
def test_nurses_and_admins_may_not_read_consent_records(client, world, complete, who):
    assert_problem(consents_of(client, user_of(world, who), world.patient_a), 403)


def test_a_tampered_signature_shows_as_not_intact(client, db, world, complete, dialect):
    if dialect == "postgresql":
        db.execute(
            text("ALTER TABLE consent_signatures DISABLE TRIGGER consent_signatures_append_only")
        )
    signature = db.scalars(
        select(ConsentSignature).where(ConsentSignature.signer_role == "participant")
    ).one()
    db.execute(
        by_id("UPDATE consent_signatures SET meaning = 'I do not consent' WHERE id = :id"),
        {"id": signature.id},
    )

    (record,) = consents_of(client, world.coordinator_a, world.patient_a).get_json()

    intact = {s["signer_role"]: s["intact"] for s in record["signatures"]}
    assert intact == {"participant": False, "investigator": True}


@pytest.mark.requirement("CONSENT-7")
def test_wrong_signing_passwords_lock_the_account_like_failed_log_ins(
    client, db, world, document, discussed
):
    """A stolen access token must not become a way to guess the password."""
    patient = world.patient_a
    headers = headers_for(client, patient.user)
    body = {
        "participant_id": str(patient.participant.id),
        "role": "participant",
        "full_name": patient.user.full_name,
        "password": "a wrong guess",
        "document_sha256": document.content_sha256,
        "clause_choices": {c["code"]: True for c in document.optional_clauses},
    }
    url = f"/api/v1/consent-documents/{document.id}/signatures"
    for _ in range(5):
        assert_problem(client.post(url, json=body, headers=headers), 401)

    locked = client.post(url, json={**body, "password": PASSWORD}, headers=headers)

    assert_problem(locked, 429)
    assert locked.headers["Retry-After"]
    assert audit_events(db, "auth.lockout", patient.user.id)
    login = client.post(
        "/api/v1/auth/login", json={"email": patient.user.email, "password": PASSWORD}
    )
    # Log-in from the same address is locked too, silently (answered like a wrong password).
    assert_problem(login, 401)
