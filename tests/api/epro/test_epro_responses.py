"""ePRO responses over HTTP: window edges and grace, replay, declining, nurse entry,
the consent gate, answer validation, offline batches, corrections, the FHIR export,
and who may do and read what."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from services.actor import Role
from services.db import utcnow
from services.models import (
    EproInstance,
    EproResponse,
    InstanceStatus,
    Participant,
    Questionnaire,
    Visit,
)
from tests.checks import assert_problem, audit_events, count
from tests.factories.consent import make_consent_document, withdraw_from_study
from tests.factories.epro import ANSWERS, make_instance, make_questionnaire
from tests.factories.people import Headers, World, auth_for, headers_for, make_staff
from tests.factories.visits import book_via_api, enrolled_with_visits, make_nurse_ready

RESPONSES = "/api/v1/epro/responses"
BRUSSELS_WINTER = dt.timezone(dt.timedelta(hours=1))
# An answer to every item type (q9 is shown, since q7 is true).
EVERY_TYPE = [
    {"item": "q1", "value": "severe"},
    {"item": "q2", "value": ["cough", "swelling"]},
    {"item": "q3", "value": 3},
    {"item": "q4", "value": 81.5},
    {"item": "q5", "value": 7},
    {"item": "q6", "value": 62.5},
    {"item": "q7", "value": True},
    {"item": "q8", "value": "2026-02-01"},
    {"item": "q9", "value": "Slipped in the bathroom"},
]


@pytest.fixture
def auth(client: FlaskClient, world: World) -> Headers:
    return auth_for(client, world)


@pytest.fixture
def questionnaire(db: Session, world: World) -> Questionnaire:
    enrolled_with_visits(db, world)
    return make_questionnaire(db, world.study, world.coordinator_a)


@pytest.fixture
def instance(db: Session, world: World, questionnaire: Questionnaire) -> EproInstance:
    return make_instance(db, world.patient_a.participant, questionnaire)


def window(
    db: Session, world: World, questionnaire: Questionnaire, opens_at: dt.datetime, hours: float = 6
) -> EproInstance:
    return make_instance(
        db,
        world.patient_a.participant,
        questionnaire,
        opens_at=opens_at,
        closes_at=opens_at + dt.timedelta(hours=hours),
    )


def device(moment: dt.datetime) -> str:
    """As a phone in Brussels (winter) sends it."""
    return moment.astimezone(BRUSSELS_WINTER).isoformat()


def submission(
    instance: EproInstance, completed_at: dt.datetime | None = None, **changes: Any
) -> dict[str, Any]:
    completed_at = completed_at or utcnow() - dt.timedelta(seconds=30)
    return {
        "client_id": str(uuid.uuid4()),
        "instance_id": str(instance.id),
        "status": "completed",
        "answers": ANSWERS,
        "started_at": device(completed_at - dt.timedelta(minutes=3)),
        "completed_at": device(completed_at),
        "device_timezone": "Europe/Brussels",
        **changes,
    }


def submit(client: FlaskClient, headers: dict[str, str], body: Any) -> TestResponse:
    return client.post(RESPONSES, json=body, headers=headers)


def reread(db: Session, instance: EproInstance) -> EproInstance:
    db.expire_all()
    return db.get(EproInstance, instance.id)


def grace(app: Flask) -> dt.timedelta:
    return dt.timedelta(minutes=app.config["DCT_EPRO_GRACE_MINUTES"])


# --- submission ------------------------------------------------------------------


@pytest.mark.requirement("EPRO-2", "EPRO-3")
def test_a_patient_submits_a_response(client, db, world, auth, instance):
    body = submission(instance, sent_at=device(utcnow()))

    response = submit(client, auth("patient"), body)

    assert response.status_code == 201, response.get_json()
    stored = response.get_json()
    assert response.headers["Location"].endswith(f"{RESPONSES}/{stored['id']}")
    assert stored["client_id"] == body["client_id"]
    assert stored["instance_id"] == str(instance.id)
    assert stored["participant_id"] == str(world.patient_a.participant.id)
    assert stored["subject_code"] == world.patient_a.participant.subject_code
    assert stored["answers"] == ANSWERS
    assert (stored["version"], stored["corrects_id"], stored["superseded_by"]) == (1, None, None)
    assert (stored["status"], stored["timeliness"]) == ("completed", "on_time")
    assert (stored["originator"], stored["visit_id"]) == ("patient", None)
    assert stored["entered_by"] == str(world.patient_a.user.id)
    assert stored["device_utc_offset"] == "+01:00"
    assert stored["device_timezone"] == "Europe/Brussels"
    assert stored["completed_at"].endswith("Z") and stored["received_at"].endswith("Z")
    assert abs(stored["clock_skew_seconds"]) < 60 and stored["clock_skew_flag"] is False
    assert (reread(db, instance).status, reread(db, instance).timeliness) == (
        "completed",
        "on_time",
    )


def test_the_submission_is_audited_without_the_answer_values(client, db, auth, instance):
    stored = submit(client, auth("patient"), submission(instance)).get_json()

    (event,) = audit_events(db, "epro.response.submit", stored["id"])
    assert event.participant_id == instance.participant_id
    assert event.after["items"] == ["q1", "q2", "q5", "q7"]
    assert event.after["timeliness"] == "on_time"
    assert event.after["clock_skew_flag"] is False
    assert event.after["instance_id"] == str(instance.id)
    assert "some" not in json.dumps(event.after)  # q1's value


# --- the window and its grace, by the server's clock -------------------------------


@pytest.mark.requirement("EPRO-1")
def test_one_second_before_the_window_opens_is_refused(client, db, world, auth, questionnaire):
    headers = auth("patient")
    now = utcnow()
    instance = window(db, world, questionnaire, now + dt.timedelta(seconds=1))

    response = submit(client, headers, submission(instance, completed_at=now))

    detail = assert_problem(response, 409)["detail"]
    assert "before the window opened" in detail
    assert instance.opens_at.strftime("%Y-%m-%dT%H:%M:%SZ") in detail
    assert instance.closes_at.strftime("%Y-%m-%dT%H:%M:%SZ") in detail
    assert "1440 minutes' grace" in detail
    assert count(db, EproResponse) == 0
    assert reread(db, instance).status == "scheduled"


def test_completed_at_the_moment_the_window_opens_is_on_time(
    client, db, world, auth, questionnaire
):
    headers = auth("patient")
    opens = utcnow()
    instance = window(db, world, questionnaire, opens)

    response = submit(client, headers, submission(instance, completed_at=opens))

    assert response.status_code == 201, response.get_json()
    assert response.get_json()["timeliness"] == "on_time"


def test_received_one_second_after_the_window_closes_is_late(
    client, db, world, auth, questionnaire
):
    headers = auth("patient")
    closes = utcnow() - dt.timedelta(seconds=1)
    instance = window(db, world, questionnaire, closes - dt.timedelta(hours=6))

    response = submit(client, headers, submission(instance, closes - dt.timedelta(minutes=5)))

    assert response.status_code == 201, response.get_json()
    assert response.get_json()["timeliness"] == "late"
    assert reread(db, instance).timeliness == "late"


def test_received_one_second_after_the_grace_is_refused(
    client, app, db, world, auth, questionnaire
):
    headers = auth("patient")
    closes = utcnow() - grace(app) - dt.timedelta(seconds=1)
    instance = window(db, world, questionnaire, closes - dt.timedelta(hours=6))

    response = submit(client, headers, submission(instance, closes - dt.timedelta(minutes=5)))

    detail = assert_problem(response, 409)["detail"]
    assert "after the window closed and its grace period" in detail
    assert count(db, EproResponse) == 0


@pytest.mark.requirement("EPRO-1")
def test_completed_inside_but_received_after_the_grace_is_refused(
    client, app, db, world, auth, questionnaire
):
    """No backfilling: a phone offline for longer than the grace cannot deliver."""
    headers = auth("patient")
    closes = utcnow() - grace(app) - dt.timedelta(hours=1)
    instance = window(db, world, questionnaire, closes - dt.timedelta(hours=6))

    response = submit(client, headers, submission(instance, closes - dt.timedelta(hours=1)))

    assert_problem(response, 409)
    assert count(db, EproResponse) == 0


def test_completed_one_second_after_the_window_closed_is_refused(
    client, db, world, auth, questionnaire
):
    headers = auth("patient")
    closes = utcnow() - dt.timedelta(minutes=1)
    instance = window(db, world, questionnaire, closes - dt.timedelta(hours=6))

    response = submit(client, headers, submission(instance, closes + dt.timedelta(seconds=1)))

    assert "completed at" in assert_problem(response, 409)["detail"]
    assert count(db, EproResponse) == 0


@pytest.mark.requirement("EPRO-1")
def test_completed_before_the_window_opened_is_refused(client, db, world, auth, questionnaire):
    headers = auth("patient")
    opens = utcnow() - dt.timedelta(hours=1)
    instance = window(db, world, questionnaire, opens)

    response = submit(client, headers, submission(instance, opens - dt.timedelta(seconds=1)))

    assert "before the window opened" in assert_problem(response, 409)["detail"]


@pytest.mark.requirement("EPRO-2")
def test_a_device_clock_ahead_is_flagged_and_judged_by_receipt(
    client, db, world, auth, questionnaire
):
    """The phone claims a completion after the window closes: its clock is 10 minutes
    ahead, so the server's receipt, inside the window, decides."""
    headers = auth("patient")
    now = utcnow()
    instance = window(db, world, questionnaire, now - dt.timedelta(hours=1), hours=1.05)

    response = submit(client, headers, submission(instance, now + dt.timedelta(minutes=10)))

    assert response.status_code == 201, response.get_json()
    stored = response.get_json()
    assert stored["clock_skew_flag"] is True
    assert 590 <= stored["clock_skew_seconds"] <= 600
    assert stored["timeliness"] == "on_time"
    (event,) = audit_events(db, "epro.response.submit", stored["id"])
    assert event.after["clock_skew_flag"] is True


@pytest.mark.requirement("EPRO-2")
def test_skew_is_measured_from_sent_at_when_given(client, auth, instance):
    body = submission(instance, sent_at=device(utcnow() - dt.timedelta(minutes=7)))

    stored = submit(client, auth("patient"), body).get_json()

    assert stored["clock_skew_flag"] is True
    assert -430 <= stored["clock_skew_seconds"] <= -415  # the phone is 7 minutes behind


# --- replay and a second submission --------------------------------------------------


@pytest.mark.requirement("EPRO-8")
def test_a_replay_answers_200_with_the_original(client, db, auth, instance):
    body = submission(instance)
    first = submit(client, auth("patient"), body)

    again = [submit(client, auth("patient"), body) for _ in range(3)]

    assert first.status_code == 201
    for response in again:
        assert response.status_code == 200
        assert response.get_json() == first.get_json()
        assert response.headers["Location"] == first.headers["Location"]
    assert count(db, EproResponse) == 1
    assert len(audit_events(db, "epro.response.submit", first.get_json()["id"])) == 1


def test_a_replay_is_answered_even_after_the_window_and_the_consent_changed(
    client, db, world, auth, instance
):
    body = submission(instance)
    first = submit(client, auth("patient"), body).get_json()
    stored = reread(db, instance)
    stored.closes_at = utcnow() - dt.timedelta(days=3)
    stored.opens_at = stored.closes_at - dt.timedelta(hours=6)
    db.flush()
    make_consent_document(db, world.study, requires_reconsent=True)

    again = submit(client, auth("patient"), {**body, "answers": []})

    assert again.status_code == 200
    assert again.get_json()["id"] == first["id"]


def test_the_same_client_id_for_another_instance_is_refused(
    client, db, world, auth, instance, questionnaire
):
    body = submission(instance)
    submit(client, auth("patient"), body)
    other = make_instance(db, world.patient_a.participant, questionnaire)

    response = submit(client, auth("patient"), {**body, "instance_id": str(other.id)})

    assert "another ePRO instance" in assert_problem(response, 409)["detail"]
    assert count(db, EproResponse) == 1
    assert reread(db, other).status == "scheduled"


def test_a_second_submission_for_an_answered_instance_is_refused(client, db, auth, instance):
    submit(client, auth("patient"), submission(instance))

    response = submit(client, auth("patient"), submission(instance))

    assert "already answered" in assert_problem(response, 409)["detail"]
    assert count(db, EproResponse) == 1


@pytest.mark.parametrize(
    ("status", "words"),
    [(InstanceStatus.MISSED, "closed"), (InstanceStatus.DECLINED, "already answered")],
)
def test_a_closed_instance_is_refused(client, db, world, auth, questionnaire, status, words):
    instance = make_instance(db, world.patient_a.participant, questionnaire, status=status)

    response = submit(client, auth("patient"), submission(instance))

    assert words in assert_problem(response, 409)["detail"]
    assert count(db, EproResponse) == 0


def test_a_cancelled_instance_is_refused_with_the_reason(client, db, world, auth, instance):
    instance.status, instance.cancel_reason = "cancelled", "questionnaire version 1.1 published"
    db.flush()

    response = submit(client, auth("patient"), submission(instance))

    assert "version 1.1 published" in assert_problem(response, 409)["detail"]


# --- declining -------------------------------------------------------------------


@pytest.mark.requirement("EPRO-7")
def test_a_participant_may_decline(client, db, auth, instance):
    body = submission(instance, status="declined", answers=[], decline_reason="too tired")

    response = submit(client, auth("patient"), body)

    assert response.status_code == 201, response.get_json()
    assert (response.get_json()["status"], response.get_json()["reason"]) == (
        "declined",
        "too tired",
    )
    assert reread(db, instance).status == "declined"


def test_a_declined_response_carries_no_answers(client, db, auth, instance):
    response = submit(client, auth("patient"), submission(instance, status="declined"))

    assert "answers" in assert_problem(response, 422)["errors"]
    assert count(db, EproResponse) == 0


def test_a_decline_reason_only_comes_with_declining(client, db, auth, instance):
    response = submit(client, auth("patient"), submission(instance, decline_reason="why not"))

    assert "decline_reason" in assert_problem(response, 422)["errors"]


# --- a nurse entering for the participant -------------------------------------------


@pytest.fixture
def booked(client: FlaskClient, db: Session, world: World, questionnaire: Questionnaire) -> Visit:
    make_nurse_ready(db, world)
    v1 = db.scalars(
        select(Visit).where(
            Visit.participant_id == world.patient_a.participant.id, Visit.code == "V1"
        )
    ).one()
    start = dt.datetime(2026, 3, 16, 8, tzinfo=dt.UTC)
    assert book_via_api(client, world.coordinator_a, v1, world.nurse_a, start).status_code == 200
    return v1


@pytest.mark.requirement("EPRO-3")
def test_a_nurse_enters_answers_during_the_visit(client, db, world, auth, booked, instance):
    check_in = client.post(
        f"/api/v1/visits/{booked.id}/check-in",
        json={"at": "2026-03-16T08:00:00Z"},  # when it was booked: check-in is held to it
        headers=auth("nurse_a"),
    )
    assert check_in.status_code == 200, check_in.get_json()

    response = submit(client, auth("nurse_a"), submission(instance))

    assert response.status_code == 201, response.get_json()
    stored = response.get_json()
    assert (stored["originator"], stored["visit_id"]) == ("nurse", str(booked.id))
    assert stored["entered_by"] == str(world.nurse_a.id)
    (event,) = audit_events(db, "epro.response.submit", stored["id"])
    assert (event.actor_role, event.after["visit_id"]) == ("nurse", str(booked.id))
    author = fhir(client, auth("nurse_a"), stored["id"])["author"]
    assert author["type"] == "Practitioner" and "during a visit" in author["display"]


def test_a_nurse_outside_a_visit_is_refused(client, db, auth, booked, instance):
    response = submit(client, auth("nurse_a"), submission(instance))

    assert "during their visit" in assert_problem(response, 403)["detail"]
    assert count(db, EproResponse) == 0


def test_a_nurse_without_visits_of_the_participant_does_not_find_the_instance(
    client, db, world, instance
):
    stranger = make_staff(db, Role.NURSE, sites=[world.site_a])

    response = submit(client, headers_for(client, stranger), submission(instance))

    assert_problem(response, 404)


# --- the participant's state: enrolled, with a current consent ---------------------


def test_a_participant_not_enrolled_cannot_answer(client, db, world, questionnaire):
    instance = make_instance(db, world.patient_b.participant, questionnaire)

    response = submit(client, headers_for(client, world.patient_b.user), submission(instance))

    assert "not enrolled" in assert_problem(response, 409)["detail"]
    assert count(db, EproResponse) == 0


@pytest.mark.requirement("X-STEP-ORDER")
def test_a_re_consent_blocks_answering(client, db, world, auth, instance):
    make_consent_document(db, world.study, requires_reconsent=True)

    response = submit(client, auth("patient"), submission(instance))

    assert "re-consent" in assert_problem(response, 409)["detail"]
    assert count(db, EproResponse) == 0


def test_a_withdrawn_participant_cannot_answer(client, db, world, auth, instance):
    withdraw_from_study(db, world.patient_a, world.coordinator_a)

    response = submit(client, auth("patient"), submission(instance))

    assert_problem(response, 409)
    assert count(db, EproResponse) == 0


# --- validation --------------------------------------------------------------------


def test_invalid_answers_are_refused_per_item_and_nothing_is_stored(client, db, auth, instance):
    answers = [
        {"item": "q1", "value": "terrible"},
        {"item": "q5", "value": 11},
        {"item": "q9", "value": "not shown: q7 is not answered true"},
    ]

    response = submit(client, auth("patient"), submission(instance, answers=answers))

    errors = assert_problem(response, 422)["errors"]
    assert {"answers.q1", "answers.q5", "answers.q7", "answers.q9"} <= set(errors)
    assert all(isinstance(messages, list) and messages for messages in errors.values())
    assert count(db, EproResponse) == 0
    assert reread(db, instance).status == "scheduled"
    assert audit_events(db, "epro.response.submit", instance.id) == []


@pytest.mark.requirement("EPRO-6")
def test_answers_are_validated_against_the_instances_own_version(
    client, db, world, auth, questionnaire
):
    """Version 2.0 dropped q9's condition; the 1.0 instance still follows 1.0's rules."""
    items = [{k: v for k, v in item.items() if k != "enable_when"} for item in questionnaire.items]
    make_questionnaire(db, world.study, world.coordinator_a, version="2.0", items=items)
    instance = make_instance(db, world.patient_a.participant, questionnaire)
    answers = [*ANSWERS, {"item": "q9", "value": "shown in 2.0 only"}]

    response = submit(client, auth("patient"), submission(instance, answers=answers))

    assert "answers.q9" in assert_problem(response, 422)["errors"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"started_at": "2026-03-17T18:02:11"}, "started_at"),  # naive
        ({"instance_id": "not-a-uuid"}, "instance_id"),
        ({"client_id": None}, "client_id"),
        ({"status": "skipped"}, "status"),
        ({"device_timezone": "Mars/Olympus"}, "device_timezone"),
        ({"answers": [{"value": 3}]}, "answers"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_a_malformed_submission_is_refused(client, db, auth, instance, change, field):
    response = submit(client, auth("patient"), {**submission(instance), **change})

    assert field in assert_problem(response, 422)["errors"]
    assert count(db, EproResponse) == 0


def test_started_after_completed_is_refused(client, db, auth, instance):
    now = utcnow()
    body = submission(instance, completed_at=now, started_at=device(now + dt.timedelta(minutes=1)))

    response = submit(client, auth("patient"), body)

    assert "started_at" in assert_problem(response, 422)["errors"]
    assert count(db, EproResponse) == 0


# --- offline sync: the batch -------------------------------------------------------


def batch(client: FlaskClient, headers: dict[str, str], items: list[Any]) -> TestResponse:
    return client.post(f"{RESPONSES}/batch", json={"responses": items}, headers=headers)


def test_a_batch_answers_each_item_on_its_own(client, db, world, auth, questionnaire):
    first, second, third = (
        make_instance(db, world.patient_a.participant, questionnaire) for _ in range(3)
    )
    valid = submission(first)
    invalid = submission(second, answers=[{"item": "q1", "value": "terrible"}])
    malformed = {**submission(second), "instance_id": None}
    items = [valid, invalid, valid, malformed, "not an object", submission(third)]

    response = batch(client, auth("patient"), items)

    assert response.status_code == 200, response.get_json()
    results = response.get_json()["results"]
    assert [r["index"] for r in results] == list(range(6))
    assert [r["status"] for r in results] == [201, 422, 200, 422, 422, 201]
    assert results[0]["client_id"] == valid["client_id"]
    assert results[2]["body"] == results[0]["body"]
    assert "answers.q1" in results[1]["problem"]["errors"]
    assert "instance_id" in results[3]["problem"]["errors"]
    assert results[3]["client_id"] == malformed["client_id"]
    assert results[4]["client_id"] is None
    for refused in (results[1], results[3], results[4]):
        assert refused["problem"]["status"] == 422 and "body" not in refused
    assert count(db, EproResponse) == 2
    statuses = [reread(db, i).status for i in (first, second, third)]
    assert statuses == ["completed", "scheduled", "completed"]


@pytest.mark.requirement("EPRO-8")
def test_an_offline_batch_keeps_the_device_times_beside_the_later_receipt(
    client, db, world, auth, questionnaire
):
    """Answered on the phone 3 hours ago, inside the window, and synced now, after it
    closed: the device's own times and offset are what is stored."""
    now = utcnow()
    instance = window(db, world, questionnaire, now - dt.timedelta(hours=5), hours=4)
    completed = (now - dt.timedelta(hours=3)).replace(microsecond=0)
    body = submission(instance, completed_at=completed)

    (result,) = batch(client, auth("patient"), [body]).get_json()["results"]

    assert result["status"] == 201, result
    stored = result["body"]
    assert stored["completed_at"] == completed.strftime("%Y-%m-%dT%H:%M:%SZ")
    started = completed - dt.timedelta(minutes=3)
    assert stored["started_at"] == started.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (stored["device_utc_offset"], stored["device_timezone"]) == ("+01:00", "Europe/Brussels")
    received = dt.datetime.fromisoformat(stored["received_at"])
    assert received >= now and stored["timeliness"] == "late"
    assert stored["clock_skew_flag"] is False


def test_a_refused_item_does_not_undo_the_others(client, db, world, auth, instance):
    """The 409 of the second item comes after the first item was written."""
    items = [submission(instance), submission(instance)]

    results = batch(client, auth("patient"), items).get_json()["results"]

    assert [r["status"] for r in results] == [201, 409]
    assert results[1]["problem"]["title"] == "Conflict"
    assert count(db, EproResponse) == 1
    assert len(audit_events(db, "epro.response.submit", results[0]["body"]["id"])) == 1


def test_a_batch_of_more_than_100_is_refused_whole(client, db, auth, instance):
    response = batch(client, auth("patient"), [submission(instance)] * 101)

    assert "responses" in assert_problem(response, 422)["errors"]
    assert count(db, EproResponse) == 0


@pytest.mark.parametrize("who", ["monitor", "coordinator_a", "admin"])
def test_staff_other_than_nurses_cannot_send_a_batch(client, db, auth, instance, who):
    assert_problem(batch(client, auth(who), [submission(instance)]), 403)
    assert count(db, EproResponse) == 0


# --- corrections -------------------------------------------------------------------


@pytest.fixture
def answered(client: FlaskClient, auth: Headers, instance: EproInstance) -> dict[str, Any]:
    response = submit(client, auth("patient"), submission(instance))
    assert response.status_code == 201
    return response.get_json()


CORRECTED = [
    {"item": "q1", "value": "none"},
    {"item": "q2", "value": ["cough", "fatigue"]},
    {"item": "q5", "value": 6},
    {"item": "q7", "value": False},
]


def correct(
    client: FlaskClient, headers: dict[str, str], response_id: str, **body: Any
) -> TestResponse:
    body = {"answers": CORRECTED, "reason": "transcription error reported by phone", **body}
    return client.post(f"{RESPONSES}/{response_id}/corrections", json=body, headers=headers)


@pytest.mark.requirement("EPRO-3", "EPRO-4")
def test_a_coordinator_records_a_correction_as_a_new_version(client, db, world, auth, answered):
    response = correct(client, auth("coordinator_a"), answered["id"])

    assert response.status_code == 201, response.get_json()
    version_2 = response.get_json()
    assert response.headers["Location"].endswith(f"{RESPONSES}/{version_2['id']}")
    assert (version_2["version"], version_2["corrects_id"]) == (2, answered["id"])
    assert version_2["answers"] == CORRECTED
    assert (version_2["originator"], version_2["client_id"]) == ("coordinator", None)
    assert version_2["entered_by"] == str(world.coordinator_a.id)
    assert version_2["reason"] == "transcription error reported by phone"
    assert version_2["completed_at"] == answered["completed_at"]
    original = client.get(f"{RESPONSES}/{answered['id']}", headers=auth("patient")).get_json()
    assert original["answers"] == ANSWERS
    assert original["superseded_by"] == version_2["id"]
    assert count(db, EproResponse) == 2


@pytest.mark.requirement("EPRO-4", "X-AUDIT-TRAIL")
def test_a_correction_is_audited_with_the_values_before_and_after(client, db, auth, answered):
    version_2 = correct(client, auth("coordinator_a"), answered["id"]).get_json()

    (event,) = audit_events(db, "epro.response.correct", version_2["id"])
    assert event.reason == "transcription error reported by phone"
    assert event.before == {"version": 1, "answers": {"q1": "some", "q5": 4}}
    assert event.after["answers"] == {"q1": "none", "q5": 6}
    assert event.after["changed_items"] == ["q1", "q5"]
    assert event.after["corrects_id"] == answered["id"]


def test_each_correction_follows_the_latest_version(client, auth, answered):
    version_2 = correct(client, auth("coordinator_a"), answered["id"]).get_json()
    again = [*CORRECTED[:2], {"item": "q5", "value": 5}, CORRECTED[3]]

    version_3 = correct(client, auth("coordinator_a"), answered["id"], answers=again).get_json()

    assert (version_3["version"], version_3["corrects_id"]) == (3, version_2["id"])
    listed = client.get(
        f"/api/v1/participants/{answered['participant_id']}/epro/responses",
        headers=auth("coordinator_a"),
    ).get_json()
    assert [(r["version"], r["superseded_by"]) for r in listed] == [
        (3, None),
        (2, version_3["id"]),
        (1, version_2["id"]),
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reason": ""}, "reason"),
        ({"reason": "   "}, "reason"),
        ({"reason": "x" * 1001}, "reason"),
        ({"reason": None}, "reason"),
        ({"answers": [{"item": "q5", "value": 12}]}, "answers.q5"),
        ({"answers": ANSWERS}, "answers"),  # no change
    ],
)
def test_a_correction_needs_a_reason_and_valid_changed_answers(
    client, db, auth, answered, body, field
):
    response = correct(client, auth("coordinator_a"), answered["id"], **body)

    assert field in assert_problem(response, 422)["errors"]
    assert count(db, EproResponse) == 1


def test_a_correction_without_a_reason_field_is_refused(client, db, auth, answered):
    response = client.post(
        f"{RESPONSES}/{answered['id']}/corrections",
        json={"answers": CORRECTED},
        headers=auth("coordinator_a"),
    )

    assert "reason" in assert_problem(response, 422)["errors"]


def test_a_declined_response_cannot_be_corrected(client, db, auth, instance):
    body = submission(instance, status="declined", answers=[])
    declined = submit(client, auth("patient"), body).get_json()

    assert_problem(correct(client, auth("coordinator_a"), declined["id"]), 409)


@pytest.mark.parametrize("who", ["patient", "nurse_a", "monitor", "admin"])
def test_only_coordinators_correct(client, db, auth, answered, who):
    assert_problem(correct(client, auth(who), answered["id"]), 403)
    assert count(db, EproResponse) == 1


def test_a_coordinator_of_another_site_cannot_correct(client, db, auth, answered):
    assert_problem(correct(client, auth("coordinator_b"), answered["id"]), 404)


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
@pytest.mark.requirement("EPRO-4")
def test_a_response_cannot_be_changed_in_place(client, auth, answered, method):
    for who in ("patient", "coordinator_a"):
        response = getattr(client, method)(
            f"{RESPONSES}/{answered['id']}", json={"answers": []}, headers=auth(who)
        )
        assert_problem(response, 405)


@pytest.mark.requirement("EPRO-5")
def test_the_site_reads_a_responses_whole_history_and_its_audit_trail(
    client, db, world, auth, answered
):
    version_2 = correct(client, auth("coordinator_a"), answered["id"]).get_json()

    listed = listing(client, auth("coordinator_a"), world.patient_a.participant).get_json()
    trail = client.get(
        "/api/v1/audit",
        query_string={"entity_type": "epro_response"},
        headers=auth("coordinator_a"),
    )

    assert [(r["version"], r["answers"]) for r in listed] == [(2, CORRECTED), (1, ANSWERS)]
    assert trail.status_code == 200
    events = {(e["action"], e["entity_id"]): e for e in trail.get_json()}
    assert set(events) == {
        ("epro.response.submit", answered["id"]),
        ("epro.response.correct", version_2["id"]),
    }
    correction = events[("epro.response.correct", version_2["id"])]
    assert correction["actor_id"] == str(world.coordinator_a.id)
    assert correction["reason"] == "transcription error reported by phone"
    assert correction["before"]["answers"] == {"q1": "some", "q5": 4}


# --- FHIR export -------------------------------------------------------------------


def fhir(client: FlaskClient, headers: dict[str, str], response_id: str) -> dict[str, Any]:
    response = client.get(f"{RESPONSES}/{response_id}/fhir", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/fhir+json"
    body = response.get_json(force=True)
    QuestionnaireResponse.model_validate(body)
    return body


@pytest.mark.requirement("EPRO-5", "EPRO-6")
def test_a_response_exports_as_a_fhir_questionnaire_response(
    client, world, auth, instance, questionnaire
):
    body = submission(instance, answers=EVERY_TYPE)
    stored = submit(client, auth("patient"), body).get_json()

    resource = fhir(client, auth("coordinator_a"), stored["id"])

    assert resource["resourceType"] == "QuestionnaireResponse"
    assert resource["id"] == stored["id"]
    assert resource["identifier"]["value"] == f"urn:uuid:{body['client_id']}"
    assert resource["questionnaire"] == f"urn:uuid:{questionnaire.id}|1.0"
    assert resource["status"] == "completed"
    code = world.patient_a.participant.subject_code
    assert resource["subject"] == {"identifier": {"value": code}}
    assert resource["author"]["type"] == resource["source"]["type"] == "Patient"
    assert resource["authored"] == stored["completed_at"]
    answers = {item["linkId"]: item["answer"] for item in resource["item"]}
    assert list(answers) == [f"q{n}" for n in range(1, 10)]
    assert answers["q1"] == [{"valueCoding": {"code": "severe"}}]
    assert answers["q2"] == [
        {"valueCoding": {"code": "cough"}},
        {"valueCoding": {"code": "swelling"}},
    ]
    assert answers["q3"] == [{"valueInteger": 3}]
    assert answers["q4"] == [{"valueDecimal": 81.5}]
    assert answers["q5"] == [{"valueInteger": 7}]
    assert answers["q6"] == [{"valueDecimal": 62.5}]
    assert answers["q7"] == [{"valueBoolean": True}]
    assert answers["q8"] == [{"valueDate": "2026-02-01"}]
    assert answers["q9"] == [{"valueString": "Slipped in the bathroom"}]
    assert world.patient_a.user.full_name not in json.dumps(resource)


def test_a_correction_exports_as_amended_by_a_practitioner(client, world, auth, answered):
    version_2 = correct(client, auth("coordinator_a"), answered["id"]).get_json()

    resource = fhir(client, auth("monitor"), version_2["id"])

    assert resource["status"] == "amended"
    assert "identifier" not in resource
    assert resource["author"]["type"] == "Practitioner"
    assert resource["author"]["identifier"]["value"] == f"urn:uuid:{world.coordinator_a.id}"
    assert resource["source"]["type"] == "Patient"
    assert world.coordinator_a.full_name not in json.dumps(resource)


def test_a_declined_response_exports_as_stopped(client, auth, instance):
    body = submission(instance, status="declined", answers=[])
    declined = submit(client, auth("patient"), body).get_json()

    resource = fhir(client, auth("patient"), declined["id"])

    assert (resource["status"], resource["item"]) == ("stopped", [])


# --- reading: roles and tenants ----------------------------------------------------


def listing(client: FlaskClient, headers: dict[str, str], participant: Participant) -> TestResponse:
    return client.get(f"/api/v1/participants/{participant.id}/epro/responses", headers=headers)


@pytest.mark.parametrize("who", ["patient", "coordinator_a", "monitor"])
def test_those_in_scope_read_the_responses(client, world, auth, answered, who):
    listed = listing(client, auth(who), world.patient_a.participant)
    one = client.get(f"{RESPONSES}/{answered['id']}", headers=auth(who))

    assert listed.status_code == 200 and one.status_code == 200
    assert [r["id"] for r in listed.get_json()] == [answered["id"]]
    assert one.get_json()["subject_code"] == world.patient_a.participant.subject_code


def test_the_nurse_of_the_participants_visit_reads_the_responses(
    client, world, auth, booked, answered
):
    listed = listing(client, auth("nurse_a"), world.patient_a.participant)

    assert [r["id"] for r in listed.get_json()] == [answered["id"]]


def test_monitors_read_pseudonymised(client, world, auth, answered):
    listed = listing(client, auth("monitor"), world.patient_a.participant)
    one = client.get(f"{RESPONSES}/{answered['id']}", headers=auth("monitor"))

    for text in (listed.get_data(as_text=True), one.get_data(as_text=True)):
        assert world.patient_a.user.full_name not in text
        assert "full_name" not in text and "email" not in text and "phone" not in text


@pytest.mark.parametrize("who", ["coordinator_b", "other_monitor"])
def test_responses_of_another_site_or_study_are_not_found(client, world, auth, answered, who):
    assert_problem(listing(client, auth(who), world.patient_a.participant), 404)
    assert_problem(client.get(f"{RESPONSES}/{answered['id']}", headers=auth(who)), 404)
    assert_problem(client.get(f"{RESPONSES}/{answered['id']}/fhir", headers=auth(who)), 404)


def test_another_patient_does_not_see_the_response(client, world, answered):
    headers = headers_for(client, world.patient_b.user)

    assert_problem(client.get(f"{RESPONSES}/{answered['id']}", headers=headers), 404)
    assert_problem(listing(client, headers, world.patient_a.participant), 404)


def test_a_nurse_without_visits_of_the_participant_reads_nothing(client, world, auth, answered):
    assert_problem(listing(client, auth("nurse_a"), world.patient_a.participant), 404)
    assert_problem(client.get(f"{RESPONSES}/{answered['id']}", headers=auth("nurse_a")), 404)


def test_admins_do_not_read_responses(client, world, auth, answered):
    assert_problem(listing(client, auth("admin"), world.patient_a.participant), 403)
    assert_problem(client.get(f"{RESPONSES}/{answered['id']}", headers=auth("admin")), 403)


@pytest.mark.parametrize("who", ["coordinator_a", "monitor", "admin", "other_monitor"])
def test_only_patients_and_nurses_submit(client, db, auth, instance, who):
    assert_problem(submit(client, auth(who), submission(instance)), 403)
    assert count(db, EproResponse) == 0


def test_another_patients_instance_is_not_found(client, db, world, instance):
    response = submit(client, headers_for(client, world.patient_b.user), submission(instance))

    assert_problem(response, 404)
    assert count(db, EproResponse) == 0


def test_an_unknown_response_is_not_found(client, auth, answered):
    assert_problem(client.get(f"{RESPONSES}/{uuid.uuid4()}", headers=auth("patient")), 404)
    assert_problem(correct(client, auth("coordinator_a"), str(uuid.uuid4())), 404)


def test_the_list_is_paginated(client, db, world, auth, questionnaire):
    for _ in range(3):
        instance = make_instance(db, world.patient_a.participant, questionnaire)
        assert submit(client, auth("patient"), submission(instance)).status_code == 201

    first = client.get(
        f"/api/v1/participants/{world.patient_a.participant.id}/epro/responses",
        query_string={"page_size": 2},
        headers=auth("coordinator_a"),
    )

    assert len(first.get_json()) == 2
    assert json.loads(first.headers["X-Pagination"])["total"] == 3


@pytest.mark.requirement("EPRO-8")
def test_submission_needs_a_token(client, instance):
    assert_problem(client.post(RESPONSES, json=submission(instance)), 401)
