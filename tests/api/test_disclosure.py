"""What each role reads (services.people.disclosure): monitors and admins never receive free
text entered by people, only a marker with its length, nor direct identifiers; those
who care for the participant read what they always read. One rule, every resource."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from flask.testing import FlaskClient
from openapi_schema_validator import OAS31Validator
from sqlalchemy.orm import Session

from services.models import EproInstance, Questionnaire, Visit
from tests.api.diagnostics.test_uploads import PDF, fields_for, upload
from tests.factories.consent import make_complete_consent, withdraw_from_study
from tests.factories.epro import make_instance, make_questionnaire
from tests.factories.people import Headers, World, auth_for
from tests.factories.visits import consent_document_for, enrolled_with_visits, make_nurse_ready

# Free text as people write it: a relative's name and a phone number.
REASON = "daughter Anna phoned, +32 470 12 34 56"
NOTES = "Anna (daughter) says he fell twice; wound on the left shin."
ANSWER = "Fell in the bathroom at Anna's flat"
LOCATION = "Anna's flat, Rue Haute 5"
READERS_WITHHELD = ("monitor", "admin")


def withheld(text: str) -> dict[str, Any]:
    return {"withheld": True, "length": len(text)}


def read(client: FlaskClient, headers: dict[str, str], path: str, **query: Any) -> Any:
    response = client.get(path, headers=headers, query_string=query)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json(force=True)


def assert_documented(client: FlaskClient, schema: str, body: Any) -> None:
    """The body matches its schema in the served OpenAPI document (as schemathesis
    checks): the marker is part of what is documented."""
    spec = client.get("/api/v1/openapi.json").get_json()
    root = {**spec["components"]["schemas"][schema], "components": spec["components"]}
    for item in body if isinstance(body, list) else [body]:
        OAS31Validator(root).validate(item)


@pytest.fixture
def auth(client: FlaskClient, world: World) -> Headers:
    return auth_for(client, world)


@pytest.fixture
def planned(db: Session, world: World) -> list[Visit]:
    """patient_a enrolled on 2026-03-16 with their visits; nurse_a ready to visit."""
    make_nurse_ready(db, world)
    return enrolled_with_visits(db, world)


# --- the audit trail ----------------------------------------------------------------


@pytest.fixture
def cancelled(client: FlaskClient, auth: Headers, planned: list[Visit]) -> Visit:
    """patient_a's second visit, cancelled by the coordinator with a reason naming people."""
    visit = planned[1]
    response = client.post(
        f"/api/v1/visits/{visit.id}/cancel", json={"reason": REASON}, headers=auth("coordinator_a")
    )
    assert response.status_code == 200, response.get_json()
    return visit


@pytest.mark.parametrize("who", READERS_WITHHELD)
@pytest.mark.requirement("X-BLINDED")
def test_monitors_and_admins_read_audit_reasons_withheld(client, auth, cancelled, who):
    found = read(client, auth(who), "/api/v1/audit", entity_id=str(cancelled.id))

    (event,) = [e for e in found if e["action"] == "visit.cancelled"]
    assert event["reason"] == withheld(REASON)
    assert "Anna" not in json.dumps(found)
    assert_documented(client, "AuditEvent", found)


def test_coordinators_read_audit_reasons(client, auth, cancelled):
    found = read(client, auth("coordinator_a"), "/api/v1/audit", entity_id=str(cancelled.id))

    (event,) = [e for e in found if e["action"] == "visit.cancelled"]
    assert event["reason"] == REASON


# --- ePRO responses, in JSON and FHIR -------------------------------------------------


@pytest.fixture
def questionnaire(db: Session, world: World, planned: list[Visit]) -> Questionnaire:
    return make_questionnaire(db, world.study, world.coordinator_a)


@pytest.fixture
def instance(db: Session, world: World, questionnaire: Questionnaire) -> EproInstance:
    return make_instance(db, world.patient_a.participant, questionnaire)


def answers(text: str) -> list[dict[str, Any]]:
    """q7 true shows the free-text item q9."""
    return [
        {"item": "q1", "value": "some"},
        {"item": "q5", "value": 4},
        {"item": "q7", "value": True},
        {"item": "q9", "value": text},
    ]


@pytest.fixture
def answered(client: FlaskClient, auth: Headers, instance: EproInstance) -> dict[str, Any]:
    completed = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30)
    body = {
        "client_id": "5b0f6a3e-4a53-4b8e-9a43-6f1f3b8f1c01",
        "instance_id": str(instance.id),
        "answers": answers(ANSWER),
        "started_at": (completed - dt.timedelta(minutes=2)).isoformat(),
        "completed_at": completed.isoformat(),
    }
    response = client.post("/api/v1/epro/responses", json=body, headers=auth("patient"))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


@pytest.fixture
def corrected(client: FlaskClient, auth: Headers, answered: dict[str, Any]) -> dict[str, Any]:
    """Version 2: the coordinator corrected the free-text answer, with a reason."""
    response = client.post(
        f"/api/v1/epro/responses/{answered['id']}/corrections",
        json={"answers": answers(ANSWER + " (twice)"), "reason": REASON},
        headers=auth("coordinator_a"),
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def values(response: dict[str, Any]) -> dict[str, Any]:
    return {answer["item"]: answer["value"] for answer in response["answers"]}


def test_monitors_read_free_text_answers_and_reasons_withheld(client, world, auth, corrected):
    one = read(client, auth("monitor"), f"/api/v1/epro/responses/{corrected['id']}")
    listed = read(
        client,
        auth("monitor"),
        f"/api/v1/participants/{world.patient_a.participant.id}/epro/responses",
    )

    assert values(one) == {"q1": "some", "q5": 4, "q7": True, "q9": withheld(ANSWER + " (twice)")}
    assert one["reason"] == withheld(REASON)
    assert [values(r)["q9"] for r in listed] == [withheld(ANSWER + " (twice)"), withheld(ANSWER)]
    assert "Anna" not in json.dumps([one, listed])
    assert_documented(client, "EproResponse", [one, *listed])


@pytest.mark.parametrize("who", ["coordinator_a", "patient"])
def test_the_team_and_the_patient_read_free_text_answers(client, auth, corrected, who):
    one = read(client, auth(who), f"/api/v1/epro/responses/{corrected['id']}")

    assert values(one)["q9"] == ANSWER + " (twice)"
    assert one["reason"] == REASON


def test_monitors_read_the_fhir_export_with_free_text_masked(client, auth, answered):
    resource = read(client, auth("monitor"), f"/api/v1/epro/responses/{answered['id']}/fhir")

    QuestionnaireResponse.model_validate(resource)
    found = {item["linkId"]: item["answer"] for item in resource["item"]}
    assert found["q1"] == [{"valueCoding": {"code": "some"}}]
    assert found["q9"] == [
        {
            "_valueString": {
                "extension": [
                    {
                        "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                        "valueCode": "masked",
                    },
                    {
                        "url": "https://dct.example/fhir/StructureDefinition/withheld-length",
                        "valueInteger": len(ANSWER),
                    },
                ]
            }
        }
    ]
    assert "Anna" not in json.dumps(resource)


def test_coordinators_read_the_fhir_export_with_free_text(client, auth, answered):
    resource = read(client, auth("coordinator_a"), f"/api/v1/epro/responses/{answered['id']}/fhir")

    QuestionnaireResponse.model_validate(resource)
    found = {item["linkId"]: item["answer"] for item in resource["item"]}
    assert found["q9"] == [{"valueString": ANSWER}]


@pytest.mark.parametrize("who", READERS_WITHHELD)
def test_a_corrections_audit_event_withholds_answers_and_reason(client, auth, corrected, who):
    (event,) = read(
        client,
        auth(who),
        "/api/v1/audit",
        entity_id=corrected["id"],
        entity_type="epro_response",
    )

    assert event["action"] == "epro.response.correct"
    assert event["reason"] == withheld(REASON)
    assert event["before"]["answers"] == {"q9": withheld(ANSWER)}
    assert event["after"]["answers"] == {"q9": withheld(ANSWER + " (twice)")}
    assert event["after"]["changed_items"] == ["q9"]  # item ids are not free text
    assert "Anna" not in json.dumps(event)


def test_coordinators_read_a_corrections_answers_in_the_audit(client, auth, corrected):
    (event,) = read(client, auth("coordinator_a"), "/api/v1/audit", entity_id=corrected["id"])

    assert event["before"]["answers"] == {"q9": ANSWER}


# --- visits: the nurse's notes, reasons, contact data ------------------------------------


@pytest.fixture
def visited(client: FlaskClient, world: World, auth: Headers, planned: list[Visit]) -> Visit:
    """patient_a's first visit, booked and checked in a day outside its window (a
    deviation, with a reason), checked in with a location and out with notes."""
    visit = planned[0]
    start = dt.datetime(2026, 3, 17, 8, tzinfo=dt.UTC)
    for action, body, who in (
        (
            "schedule",
            {
                "nurse_id": str(world.nurse_a.id),
                "start": start.isoformat(),
                "end": (start + dt.timedelta(hours=1)).isoformat(),
                "override_reason": REASON,
            },
            "coordinator_a",
        ),
        ("confirm", {}, "patient"),
        (
            "check-in",
            {"at": start.isoformat(), "location": LOCATION, "override_reason": REASON},
            "nurse_a",
        ),
        ("check-out", {"completed_procedures": ["vitals"], "notes": NOTES}, "nurse_a"),
    ):
        response = client.post(f"/api/v1/visits/{visit.id}/{action}", json=body, headers=auth(who))
        assert response.status_code == 200, (action, response.get_json())
    return visit


@pytest.mark.parametrize("who", READERS_WITHHELD)
def test_monitors_and_admins_read_a_visits_free_text_withheld(client, world, auth, visited, who):
    body = read(client, auth(who), f"/api/v1/visits/{visited.id}")

    assert body["notes"] == withheld(NOTES)
    assert body["deviation_reason"] == withheld(REASON)
    assert body["check_in_location"] == withheld(LOCATION)
    assert body["cancel_reason"] is None  # nothing to withhold
    assert body.keys().isdisjoint({"address", "phone", "nurse_name"})
    assert body["status"] == "completed" and "completed_procedures" not in body
    assert "Anna" not in json.dumps(body)
    assert world.patient_a.participant.address not in json.dumps(body)
    assert_documented(client, "Visit", body)


@pytest.mark.parametrize("who", READERS_WITHHELD)
def test_monitors_and_admins_read_a_cancel_reason_withheld(client, auth, cancelled, who):
    body = read(client, auth(who), f"/api/v1/visits/{cancelled.id}")

    assert body["cancel_reason"] == withheld(REASON)


def test_the_team_reads_a_visits_free_text(client, world, auth, visited):
    for who in ("coordinator_a", "nurse_a"):
        body = read(client, auth(who), f"/api/v1/visits/{visited.id}")
        assert (body["notes"], body["deviation_reason"]) == (NOTES, REASON)
        assert body["address"] == world.patient_a.participant.address


def test_the_patient_reads_why_a_visit_was_cancelled_but_not_the_nurses_record(
    client, auth, visited, cancelled
):
    done = read(client, auth("patient"), f"/api/v1/visits/{visited.id}")
    called_off = read(client, auth("patient"), f"/api/v1/visits/{cancelled.id}")

    assert done.keys().isdisjoint({"notes", "check_in_location", "deviation_reason", "nurse_id"})
    assert called_off["cancel_reason"] == REASON


# --- consents -------------------------------------------------------------------------


@pytest.fixture
def withdrawn(db: Session, world: World) -> str:
    """patient_a withdrew; the coordinator recorded how (factories: by phone)."""
    document = consent_document_for(db, world)
    make_complete_consent(db, world.patient_a, world.coordinator_a, document)
    return withdraw_from_study(db, world.patient_a, world.coordinator_a).withdrawal_reason or ""


def test_monitors_read_a_withdrawal_reason_withheld(client, world, auth, withdrawn):
    path = f"/api/v1/participants/{world.patient_a.participant.id}/consents"

    (record,) = read(client, auth("monitor"), path)

    assert record["withdrawal_reason"] == withheld(withdrawn)
    assert all("printed_name" not in signature for signature in record["signatures"])
    assert_documented(client, "ConsentWithSignatures", record)
    (coordinators,) = read(client, auth("coordinator_a"), path)
    assert coordinators["withdrawal_reason"] == withdrawn


# --- uploads --------------------------------------------------------------------------


def test_monitors_read_file_names_and_replacement_reasons_withheld(
    make_app, world, planned, tmp_path
):
    client = make_app(DCT_UPLOAD_DIR=str(tmp_path)).test_client()
    auth = auth_for(client, world)
    old = upload(client, auth("patient"), PDF, filename="Anna Peeters ecg.pdf").get_json()
    fields = fields_for(PDF + b"%\n", supersedes_id=old["id"], supersede_reason=REASON)
    new = upload(client, auth("patient"), PDF + b"%\n", fields).get_json()

    body = read(client, auth("monitor"), f"/api/v1/uploads/{new['id']}")
    listed = read(
        client, auth("monitor"), f"/api/v1/participants/{world.patient_a.participant.id}/uploads"
    )

    assert (body["filename"], body["supersede_reason"]) == (withheld("ecg.pdf"), withheld(REASON))
    assert listed[1]["filename"] == withheld("Anna Peeters ecg.pdf")
    assert "Anna" not in json.dumps([body, listed])
    assert_documented(client, "Upload", [body, *listed])
    coordinators = read(client, auth("coordinator_a"), f"/api/v1/uploads/{new['id']}")
    assert coordinators["supersede_reason"] == REASON
