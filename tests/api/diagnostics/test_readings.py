"""Structured device readings over HTTP: plausibility ranges and units, device times,
idempotent replay, study thresholds and flagging (across units), the coordinator's
alert list, the FHIR Observation export, the consent gate, and who may do what."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest
from fhir.resources.R4B.observation import Observation
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from services.actor import Role
from services.db import utcnow
from services.diagnostics import readings
from services.errors import Invalid
from services.models import Participant, Reading, ReadingThreshold, Visit
from services.people.participants import actor_for
from tests.checks import assert_problem, audit_events, count
from tests.factories.consent import withdraw_from_study
from tests.factories.people import Headers, World, auth_for, headers_for, make_site, make_staff
from tests.factories.visits import book_via_api, enrolled_with_visits, make_nurse_ready

OMRON = {"manufacturer": "Omron", "model": "M3", "serial": "SN-0042", "firmware": "1.2.0"}
BP = {"systolic": 128, "diastolic": 82}


@pytest.fixture
def auth(client: FlaskClient, world: World) -> Headers:
    return auth_for(client, world)


@pytest.fixture
def enrolled(db: Session, world: World) -> Participant:
    """patient_a, enrolled with a complete, current consent."""
    enrolled_with_visits(db, world)
    return world.patient_a.participant


def body(reading_type: str = "heart_rate", value: Any = 72, unit: str = "/min", **changes: Any):
    return {
        "type": reading_type,
        "value": value,
        "unit": unit,
        "measured_at": (utcnow() - dt.timedelta(minutes=2)).isoformat(),
        "device": OMRON,
        "client_id": str(uuid.uuid4()),
        **changes,
    }


def url(participant: Participant) -> str:
    return f"/api/v1/participants/{participant.id}/readings"


def post(
    client: FlaskClient, headers: dict[str, str], participant: Participant, data: Any
) -> TestResponse:
    return client.post(url(participant), json=data, headers=headers)


def recorded(client: FlaskClient, headers: dict[str, str], participant: Participant, **kw: Any):
    response = post(client, headers, participant, body(**kw))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def put_thresholds(client: FlaskClient, headers: dict[str, str], world: World, thresholds):
    return client.put(
        f"/api/v1/studies/{world.study.id}/reading-thresholds", json=thresholds, headers=headers
    )


def set_thresholds(client: FlaskClient, auth: Headers, world: World, thresholds) -> None:
    response = put_thresholds(client, auth("coordinator_a"), world, thresholds)
    assert response.status_code == 200, response.get_json()


def fhir(client: FlaskClient, headers: dict[str, str], reading_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/readings/{reading_id}/fhir", headers=headers)
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "application/fhir+json"
    resource = response.get_json()
    Observation.model_validate(resource)
    return resource


# --- recording -----------------------------------------------------------------------


@pytest.mark.requirement("UPLOAD-3")
def test_a_patient_records_a_reading(client, db, world, auth, enrolled):
    data = body(measured_at="2026-03-16T08:30:00+01:00")

    response = post(client, auth("patient"), enrolled, data)

    assert response.status_code == 201, response.get_json()
    stored = response.get_json()
    assert response.headers["Location"].endswith(f"/api/v1/readings/{stored['id']}")
    assert stored["value"] == 72 and stored["unit"] == "/min" and stored["type"] == "heart_rate"
    assert stored["measured_at"] == "2026-03-16T07:30:00Z"
    received = dt.datetime.fromisoformat(stored["received_at"])
    assert abs(received - utcnow()) < dt.timedelta(minutes=1)
    assert (stored["originator"], stored["entered_by"]) == ("patient", str(world.patient_a.user.id))
    assert stored["device"] == OMRON
    assert stored["subject_code"] == enrolled.subject_code
    assert (stored["flagged"], stored["flag_reasons"], stored["visit_id"]) == (False, [], None)
    (event,) = audit_events(db, "reading.record", stored["id"])
    assert (event.participant_id, event.site_id) == (enrolled.id, enrolled.site_id)
    assert event.after["value"] == 72 and event.after["flagged"] is False
    assert audit_events(db, "reading.flagged", stored["id"]) == []
    again = client.get(response.headers["Location"], headers=auth("patient"))
    assert again.get_json() == stored


def test_blood_pressure_is_sent_and_answered_as_two_pressures(client, db, auth, enrolled):
    stored = recorded(
        client, auth("patient"), enrolled, reading_type="blood_pressure", value=BP, unit="mm[Hg]"
    )

    assert stored["value"] == BP
    row = db.get(Reading, uuid.UUID(stored["id"]))
    assert (row.value, row.value_2) == (128, 82)


def test_the_device_is_optional(client, auth, enrolled):
    data = body()
    del data["device"]

    response = post(client, auth("patient"), enrolled, data)

    assert response.status_code == 201 and response.get_json()["device"] == {}


RANGES = [
    ("heart_rate", "/min", 20, 300),
    ("spo2", "%", 50, 100),
    ("glucose", "mmol/L", 0.5, 50),
    ("glucose", "mg/dL", 9, 900),
    ("weight", "kg", 1, 500),
    ("weight", "[lb_av]", 2, 1100),
    ("temperature", "Cel", 25, 45),
    ("temperature", "[degF]", 77, 113),
    ("fev1", "L", 0.1, 10),
]


@pytest.mark.parametrize(("reading_type", "unit", "low", "high"), RANGES)
def test_plausible_ranges_include_their_edges(
    client, db, auth, enrolled, reading_type, unit, low, high
):
    for value in (low, high):
        recorded(
            client, auth("patient"), enrolled, reading_type=reading_type, value=value, unit=unit
        )

    for value in (round(low - 0.01, 2), high + 0.01):
        response = post(client, auth("patient"), enrolled, body(reading_type, value, unit))
        problem = assert_problem(response, 422)
        assert f"plausible range {low} to {high} {unit}" in problem["detail"]
        assert "value" in problem["errors"]
    assert count(db, Reading) == 2


@pytest.mark.parametrize(
    ("component", "low", "high", "other"), [("systolic", 50, 300, 20), ("diastolic", 20, 200, 250)]
)
def test_blood_pressure_ranges_include_their_edges(
    client, db, auth, enrolled, component, low, high, other
):
    other_name = "diastolic" if component == "systolic" else "systolic"

    def pressures(value: float) -> dict[str, float]:
        return {component: value, other_name: other}

    for value in (low, high):
        recorded(
            client,
            auth("patient"),
            enrolled,
            reading_type="blood_pressure",
            value=pressures(value),
            unit="mm[Hg]",
        )
    for value in (low - 0.01, high + 0.01):
        response = post(
            client, auth("patient"), enrolled, body("blood_pressure", pressures(value), "mm[Hg]")
        )
        problem = assert_problem(response, 422)
        assert f"value.{component}" in problem["errors"]
        assert f"plausible range {low} to {high} mm[Hg]" in problem["detail"]
    assert count(db, Reading) == 2


@pytest.mark.parametrize(
    "pressures", [{"systolic": 90, "diastolic": 90}, {"systolic": 80, "diastolic": 95}]
)
def test_systolic_must_be_above_diastolic(client, db, auth, enrolled, pressures):
    response = post(client, auth("patient"), enrolled, body("blood_pressure", pressures, "mm[Hg]"))

    assert "value.systolic" in assert_problem(response, 422)["errors"]
    assert count(db, Reading) == 0


@pytest.mark.parametrize(
    ("reading_type", "unit", "allowed"),
    [
        ("glucose", "mg", "mmol/L or mg/dL"),
        ("heart_rate", "bpm", "/min"),
        ("temperature", "C", "Cel or [degF]"),
        ("weight", "lb", "kg or [lb_av]"),
        ("blood_pressure", "mmHg", "mm[Hg]"),
        ("fev1", "mL", "L"),
    ],
)
def test_a_unit_not_allowed_for_the_type_is_refused(
    client, db, auth, enrolled, reading_type, unit, allowed
):
    value = BP if reading_type == "blood_pressure" else 5
    response = post(client, auth("patient"), enrolled, body(reading_type, value, unit))

    problem = assert_problem(response, 422)
    assert allowed in problem["detail"] and allowed in problem["errors"]["unit"][0]
    assert count(db, Reading) == 0


@pytest.mark.parametrize(
    ("reading_type", "value", "field"),
    [
        ("heart_rate", True, "value"),
        ("heart_rate", "72", "value"),
        ("heart_rate", None, "value"),
        ("heart_rate", [72], "value"),
        ("blood_pressure", 120, "value"),
        ("blood_pressure", {"systolic": 120}, "value"),
        ("blood_pressure", {"systolic": 120, "diastolic": 80, "mean": 93}, "value"),
        ("blood_pressure", {"systolic": True, "diastolic": 80}, "value.systolic"),
        ("blood_pressure", {"systolic": 120, "diastolic": "80"}, "value.diastolic"),
    ],
)
def test_values_must_be_numbers_of_the_right_shape(
    client, db, auth, enrolled, reading_type, value, field
):
    unit = "mm[Hg]" if reading_type == "blood_pressure" else "/min"
    response = post(client, auth("patient"), enrolled, body(reading_type, value, unit))

    assert field in assert_problem(response, 422)["errors"]
    assert count(db, Reading) == 0


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused(client, db, auth, enrolled, literal):
    """Python's JSON parser reads these literals, so they reach the service."""
    text = json.dumps(body(value=0)).replace('"value": 0', f'"value": {literal}')

    response = client.post(
        url(enrolled), data=text, content_type="application/json", headers=auth("patient")
    )

    assert "value" in assert_problem(response, 422)["errors"]
    assert count(db, Reading) == 0


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"type": "cholesterol"}, "type"),
        ({"measured_at": "2026-03-16T08:30:00"}, "measured_at"),
        ({"client_id": "not-a-uuid"}, "client_id"),
        ({"device": {"brand": "Omron"}}, "device"),
        ({"device": {"serial": 42}}, "device"),
        ({"device": "Omron M3"}, "device"),
    ],
)
def test_malformed_readings_are_refused(client, db, auth, enrolled, changes, field):
    response = post(client, auth("patient"), enrolled, body(**changes))

    assert field in assert_problem(response, 422)["errors"]
    assert count(db, Reading) == 0


def test_measured_at_may_be_a_few_minutes_ahead_of_the_server(client, db, auth, enrolled):
    ahead = utcnow() + dt.timedelta(minutes=4)
    recorded(client, auth("patient"), enrolled, measured_at=ahead.isoformat())

    too_far = utcnow() + dt.timedelta(minutes=6)
    response = post(client, auth("patient"), enrolled, body(measured_at=too_far.isoformat()))

    assert "measured_at" in assert_problem(response, 422)["errors"]
    assert count(db, Reading) == 1


def test_the_service_refuses_a_naive_measured_at(db, world, enrolled):
    """What the API's time field already refuses, the service refuses too."""
    naive = readings.NewReading("heart_rate", 72, "/min", dt.datetime(2026, 3, 16, 8), uuid.uuid4())

    with pytest.raises(Invalid) as refused:
        readings.record(
            db, actor_for(db, world.patient_a.user, None), enrolled.id, naive, now=utcnow()
        )

    assert "measured_at" in refused.value.errors
    assert count(db, Reading) == 0


# --- idempotency ---------------------------------------------------------------------


def test_a_replayed_client_id_answers_the_original(client, db, world, auth, enrolled):
    data = body()
    first = post(client, auth("patient"), enrolled, data)
    assert first.status_code == 201

    again = post(client, auth("patient"), enrolled, {**data, "value": 90})

    assert again.status_code == 200
    assert again.get_json() == first.get_json()
    assert again.headers["Location"] == first.headers["Location"]
    assert count(db, Reading) == 1
    assert len(audit_events(db, "reading.record", first.get_json()["id"])) == 1


def test_a_client_id_of_another_participant_is_a_conflict(client, db, world, auth, enrolled):
    enrolled_with_visits(db, world, world.patient_b)
    data = body()
    assert post(client, auth("patient"), enrolled, data).status_code == 201

    response = post(client, auth("patient_b"), world.patient_b.participant, data)

    assert "another participant" in assert_problem(response, 409)["detail"]
    assert count(db, Reading) == 1


# --- the consent gate ------------------------------------------------------------------


def test_a_withdrawn_participant_records_no_readings(client, db, world, auth, enrolled):
    withdraw_from_study(db, world.patient_a, world.coordinator_a)

    response = post(client, auth("patient"), enrolled, body())

    assert "withdrew" in assert_problem(response, 409)["detail"]
    assert count(db, Reading) == 0


def test_a_participant_without_consent_records_no_readings(client, db, world, auth):
    response = post(client, auth("patient"), world.patient_a.participant, body())

    assert "consent" in assert_problem(response, 409)["detail"]
    assert count(db, Reading) == 0


# --- thresholds and flagging -------------------------------------------------------------

BP_LIMITS = [
    {"type": "blood_pressure", "component": "systolic", "unit": "mm[Hg]", "high": 160},
    {"type": "blood_pressure", "component": "diastolic", "unit": "mm[Hg]", "low": 60, "high": 100},
]


def test_a_coordinator_sets_thresholds_and_monitors_read_them(client, db, world, auth):
    response = put_thresholds(client, auth("coordinator_a"), world, BP_LIMITS)

    assert response.status_code == 200, response.get_json()
    assert [(t["component"], t["low"], t["high"]) for t in response.get_json()] == [
        ("diastolic", 60, 100),
        ("systolic", None, 160),
    ]
    assert response.get_json()[0]["updated_by"] == str(world.coordinator_a.id)
    read = client.get(
        f"/api/v1/studies/{world.study.id}/reading-thresholds", headers=auth("monitor")
    )
    assert read.status_code == 200 and read.get_json() == response.get_json()
    (event,) = audit_events(db, "study.reading_thresholds", world.study.id)
    assert event.before == {"thresholds": []}
    assert event.after["thresholds"][0]["component"] == "systolic"


def test_thresholds_are_replaced_as_a_whole(client, db, world, auth):
    set_thresholds(client, auth, world, BP_LIMITS)
    heart = [{"type": "heart_rate", "unit": "/min", "low": 40, "high": 120}]

    response = put_thresholds(client, auth("coordinator_b"), world, heart)

    assert [t["type"] for t in response.get_json()] == ["heart_rate"]
    assert count(db, ReadingThreshold) == 1
    _first, second = audit_events(db, "study.reading_thresholds", world.study.id)
    assert len(second.before["thresholds"]) == 2
    assert second.after["thresholds"][0]["component"] == "value"


@pytest.mark.parametrize(
    "threshold",
    [
        {"type": "heart_rate", "unit": "/min", "low": 120, "high": 40},
        {"type": "heart_rate", "unit": "/min", "low": 60, "high": 60},
        {"type": "heart_rate", "unit": "/min"},
        {"type": "heart_rate", "component": "systolic", "unit": "/min", "high": 120},
        {"type": "blood_pressure", "unit": "mm[Hg]", "high": 160},
        {"type": "glucose", "unit": "mg", "high": 10},
        {"type": "heart_rate", "unit": "/min", "high": True},
        {"type": "heart_rate", "unit": "/min", "high": "120"},
    ],
)
def test_invalid_thresholds_are_refused(client, db, world, auth, threshold):
    set_thresholds(client, auth, world, BP_LIMITS)

    response = put_thresholds(client, auth("coordinator_a"), world, [threshold])

    assert "thresholds.0" in assert_problem(response, 422)["errors"]
    assert count(db, ReadingThreshold) == 2


def test_a_threshold_given_twice_is_refused(client, db, world, auth):
    response = put_thresholds(client, auth("coordinator_a"), world, BP_LIMITS + BP_LIMITS[:1])

    assert "thresholds.2" in assert_problem(response, 422)["errors"]
    assert count(db, ReadingThreshold) == 0


@pytest.mark.parametrize("who", ["monitor", "nurse_a", "patient", "admin"])
def test_only_coordinators_set_thresholds(client, db, world, auth, who):
    assert_problem(put_thresholds(client, auth(who), world, BP_LIMITS), 403)
    assert count(db, ReadingThreshold) == 0


@pytest.mark.parametrize("who", ["nurse_a", "patient", "admin"])
def test_only_coordinators_and_monitors_read_thresholds(client, world, auth, who):
    url_ = f"/api/v1/studies/{world.study.id}/reading-thresholds"
    assert_problem(client.get(url_, headers=auth(who)), 403)


def test_another_studys_staff_do_not_find_its_thresholds(client, db, world, auth):
    stranger = make_staff(db, Role.COORDINATOR, sites=[make_site(db, world.other_study)])

    assert_problem(put_thresholds(client, headers_for(client, stranger), world, BP_LIMITS), 404)
    url_ = f"/api/v1/studies/{world.study.id}/reading-thresholds"
    assert_problem(client.get(url_, headers=auth("other_monitor")), 404)


@pytest.mark.requirement("VISIT-5")
def test_a_reading_outside_the_thresholds_is_flagged(client, db, world, auth, enrolled):
    set_thresholds(client, auth, world, BP_LIMITS)

    stored = recorded(
        client,
        auth("patient"),
        enrolled,
        reading_type="blood_pressure",
        value={"systolic": 182, "diastolic": 55},
        unit="mm[Hg]",
    )

    assert stored["flagged"] is True
    assert stored["flag_reasons"] == [
        "systolic 182 mm[Hg] above 160",
        "diastolic 55 mm[Hg] below 60",
    ]
    (event,) = audit_events(db, "reading.flagged", stored["id"])
    assert event.after == {"flag_reasons": stored["flag_reasons"]}
    assert event.site_id == enrolled.site_id
    trail = client.get(f"/api/v1/audit?entity_id={stored['id']}", headers=auth("coordinator_a"))
    assert {e["action"] for e in trail.get_json()} == {"reading.record", "reading.flagged"}


def test_a_reading_on_a_threshold_is_not_flagged(client, db, world, auth, enrolled):
    set_thresholds(client, auth, world, BP_LIMITS)

    stored = recorded(
        client,
        auth("patient"),
        enrolled,
        reading_type="blood_pressure",
        value={"systolic": 160, "diastolic": 60},
        unit="mm[Hg]",
    )

    assert (stored["flagged"], stored["flag_reasons"]) == (False, [])


@pytest.mark.parametrize(
    ("threshold", "reading_type", "value", "unit", "reasons"),
    [
        (
            {"type": "glucose", "unit": "mmol/L", "high": 10},
            "glucose",
            200,
            "mg/dL",
            ["glucose 200 mg/dL above 10 mmol/L"],
        ),
        ({"type": "glucose", "unit": "mmol/L", "high": 10}, "glucose", 180.16, "mg/dL", []),
        (
            {"type": "glucose", "unit": "mg/dL", "low": 70},
            "glucose",
            3.5,
            "mmol/L",
            ["glucose 3.5 mmol/L below 70 mg/dL"],
        ),
        ({"type": "glucose", "unit": "mg/dL", "low": 70}, "glucose", 4, "mmol/L", []),
        (
            {"type": "weight", "unit": "kg", "low": 50},
            "weight",
            100,
            "[lb_av]",
            ["weight 100 [lb_av] below 50 kg"],
        ),
        (
            {"type": "weight", "unit": "[lb_av]", "high": 220},
            "weight",
            100,
            "kg",
            ["weight 100 kg above 220 [lb_av]"],
        ),
        ({"type": "weight", "unit": "[lb_av]", "high": 220}, "weight", 99.7, "kg", []),
        ({"type": "temperature", "unit": "Cel", "high": 38}, "temperature", 100.4, "[degF]", []),
        (
            {"type": "temperature", "unit": "Cel", "high": 38},
            "temperature",
            101,
            "[degF]",
            ["temperature 101 [degF] above 38 Cel"],
        ),
        (
            {"type": "temperature", "unit": "[degF]", "low": 95},
            "temperature",
            34.9,
            "Cel",
            ["temperature 34.9 Cel below 95 [degF]"],
        ),
        ({"type": "spo2", "unit": "%", "low": 92}, "spo2", 91.5, "%", ["spo2 91.5 % below 92"]),
    ],
)
def test_thresholds_compare_in_their_own_unit(
    client, world, auth, enrolled, threshold, reading_type, value, unit, reasons
):
    set_thresholds(client, auth, world, [threshold])

    stored = recorded(
        client, auth("patient"), enrolled, reading_type=reading_type, value=value, unit=unit
    )

    assert (stored["flagged"], stored["flag_reasons"]) == (bool(reasons), reasons)


def test_unit_conversions():
    assert readings.convert(10, "mmol/L", "mg/dL") == pytest.approx(180.16)
    assert readings.convert(180.16, "mg/dL", "mmol/L") == pytest.approx(10)
    assert readings.convert(1, "kg", "[lb_av]") == pytest.approx(2.20462)
    assert readings.convert(212, "[degF]", "Cel") == pytest.approx(100)
    assert readings.convert(-40, "Cel", "[degF]") == pytest.approx(-40)
    assert readings.convert(37, "Cel", "Cel") == 37


def test_stored_readings_keep_the_flags_they_arrived_with(client, world, auth, enrolled):
    set_thresholds(client, auth, world, [{"type": "heart_rate", "unit": "/min", "high": 100}])
    fast = recorded(client, auth("patient"), enrolled, value=130)

    set_thresholds(client, auth, world, [])

    again = client.get(f"/api/v1/readings/{fast['id']}", headers=auth("patient")).get_json()
    assert again["flagged"] is True
    assert recorded(client, auth("patient"), enrolled, value=130)["flagged"] is False


# --- the coordinator's alert list -----------------------------------------------------


def flagged_url(world: World) -> str:
    return f"/api/v1/studies/{world.study.id}/readings/flagged"


@pytest.mark.requirement("VISIT-5")
def test_coordinators_list_their_sites_flagged_readings_newest_first(
    client, db, world, auth, enrolled
):
    enrolled_with_visits(db, world, world.patient_b)
    set_thresholds(client, auth, world, [{"type": "heart_rate", "unit": "/min", "high": 100}])
    now = utcnow()
    older = recorded(
        client,
        auth("patient"),
        enrolled,
        value=130,
        measured_at=(now - dt.timedelta(hours=2)).isoformat(),
    )
    newer = recorded(
        client,
        auth("patient"),
        enrolled,
        value=140,
        measured_at=(now - dt.timedelta(hours=1)).isoformat(),
    )
    recorded(client, auth("patient"), enrolled, value=80)
    site_b = recorded(client, auth("patient_b"), world.patient_b.participant, value=150)

    listed = client.get(flagged_url(world), headers=auth("coordinator_a"))

    assert listed.status_code == 200
    assert [r["id"] for r in listed.get_json()] == [newer["id"], older["id"]]
    assert json.loads(listed.headers["X-Pagination"])["total"] == 2
    assert listed.get_json()[0]["subject_code"] == enrolled.subject_code
    other = client.get(flagged_url(world), headers=auth("coordinator_b")).get_json()
    assert [r["id"] for r in other] == [site_b["id"]]


@pytest.mark.parametrize("who", ["monitor", "nurse_a", "patient", "admin"])
def test_only_coordinators_read_the_alert_list(client, world, auth, who):
    assert_problem(client.get(flagged_url(world), headers=auth(who)), 403)


def test_another_studys_coordinator_does_not_find_the_alert_list(client, db, world):
    stranger = make_staff(db, Role.COORDINATOR, sites=[make_site(db, world.other_study)])

    assert_problem(client.get(flagged_url(world), headers=headers_for(client, stranger)), 404)


# --- reads -----------------------------------------------------------------------------


def test_a_participants_readings_filtered_and_paginated(client, world, auth, enrolled):
    set_thresholds(client, auth, world, [{"type": "heart_rate", "unit": "/min", "high": 100}])
    now = utcnow()

    def at(hours: int, **kw: Any) -> str:
        when = (now - dt.timedelta(hours=hours)).isoformat()
        return recorded(client, auth("patient"), enrolled, measured_at=when, **kw)["id"]

    old = at(30, value=130)
    spo2 = at(20, reading_type="spo2", value=97, unit="%")
    recent = at(2, value=70)

    def listing(query: str = "") -> list[str]:
        response = client.get(f"{url(enrolled)}{query}", headers=auth("coordinator_a"))
        assert response.status_code == 200, response.get_json()
        return [r["id"] for r in response.get_json()]

    assert listing() == [recent, spo2, old]
    assert listing("?type=heart_rate") == [recent, old]
    assert listing("?flagged=true") == [old]
    assert listing("?flagged=false") == [recent, spo2]
    since = (now - dt.timedelta(hours=24)).isoformat().replace("+00:00", "Z")
    until = (now - dt.timedelta(hours=10)).isoformat().replace("+00:00", "Z")
    assert listing(f"?from={since}") == [recent, spo2]
    assert listing(f"?from={since}&to={until}") == [spo2]
    assert listing("?page_size=2&page=2") == [old]
    bad = client.get(f"{url(enrolled)}?from={until}&to={since}", headers=auth("coordinator_a"))
    assert "to" in assert_problem(bad, 422)["errors"]
    assert_problem(client.get(f"{url(enrolled)}?type=steps", headers=auth("patient")), 422)


def test_a_monitor_reads_readings_but_records_none(client, db, world, auth, enrolled):
    stored = recorded(client, auth("patient"), enrolled)

    listed = client.get(url(enrolled), headers=auth("monitor"))
    one = client.get(f"/api/v1/readings/{stored['id']}", headers=auth("monitor"))

    assert [r["id"] for r in listed.get_json()] == [stored["id"]]
    assert one.status_code == 200 and "Patient" not in one.get_data(as_text=True)
    fhir(client, auth("monitor"), stored["id"])
    assert_problem(post(client, auth("monitor"), enrolled, body()), 403)
    assert count(db, Reading) == 1


@pytest.mark.parametrize("who", ["coordinator_a", "admin"])
def test_only_patients_and_nurses_record(client, db, auth, enrolled, who):
    assert_problem(post(client, auth(who), enrolled, body()), 403)
    assert count(db, Reading) == 0


def test_admins_do_not_read_participants_readings(client, auth, enrolled):
    stored = recorded(client, auth("patient"), enrolled)

    assert_problem(client.get(url(enrolled), headers=auth("admin")), 403)
    assert_problem(client.get(f"/api/v1/readings/{stored['id']}", headers=auth("admin")), 403)
    assert_problem(client.get(f"/api/v1/readings/{stored['id']}/fhir", headers=auth("admin")), 403)


def test_another_sites_coordinator_does_not_find_the_participant(client, auth, enrolled):
    stored = recorded(client, auth("patient"), enrolled)

    for path in (
        url(enrolled),
        f"/api/v1/readings/{stored['id']}",
        f"/api/v1/readings/{stored['id']}/fhir",
    ):
        assert_problem(client.get(path, headers=auth("coordinator_b")), 404)


def test_another_studys_monitor_and_another_patient_find_nothing(client, db, world, auth, enrolled):
    stored = recorded(client, auth("patient"), enrolled)

    for who in ("other_monitor", "patient_b"):
        assert_problem(client.get(url(enrolled), headers=auth(who)), 404)
        assert_problem(client.get(f"/api/v1/readings/{stored['id']}", headers=auth(who)), 404)
    assert_problem(post(client, auth("patient_b"), enrolled, body()), 404)
    assert_problem(client.get(f"/api/v1/readings/{uuid.uuid4()}", headers=auth("patient")), 404)
    assert count(db, Reading) == 1


# --- nurses ----------------------------------------------------------------------------


@pytest.fixture
def booked(client: FlaskClient, db: Session, world: World, enrolled: Participant) -> Visit:
    """V1 of patient_a, assigned to nurse_a."""
    make_nurse_ready(db, world)
    v1 = db.scalars(
        select(Visit).where(Visit.participant_id == enrolled.id, Visit.code == "V1")
    ).one()
    start = dt.datetime(2026, 3, 16, 8, tzinfo=dt.UTC)
    assert book_via_api(client, world.coordinator_a, v1, world.nurse_a, start).status_code == 200
    return v1


def test_a_nurse_of_the_participants_visit_records_and_reads(
    client, db, world, auth, enrolled, booked
):
    stored = recorded(client, auth("nurse_a"), enrolled, visit_id=str(booked.id))

    assert (stored["originator"], stored["visit_id"]) == ("nurse", str(booked.id))
    assert stored["entered_by"] == str(world.nurse_a.id)
    without_visit = recorded(client, auth("nurse_a"), enrolled)
    assert without_visit["visit_id"] is None
    listed = client.get(url(enrolled), headers=auth("nurse_a")).get_json()
    assert {r["id"] for r in listed} == {stored["id"], without_visit["id"]}
    (event,) = audit_events(db, "reading.record", stored["id"])
    assert (event.actor_role, event.after["visit_id"]) == ("nurse", str(booked.id))


def test_a_nurse_names_only_their_own_visit_of_the_participant(
    client, db, world, auth, enrolled, booked
):
    other = db.scalars(
        select(Visit).where(Visit.participant_id == enrolled.id, Visit.code == "D14")
    ).one()

    for visit_id in (other.id, uuid.uuid4()):
        response = post(client, auth("nurse_a"), enrolled, body(visit_id=str(visit_id)))
        assert "visit_id" in assert_problem(response, 422)["errors"]
    assert count(db, Reading) == 0


def test_a_nurse_without_visits_of_the_participant_finds_nothing(client, db, world, enrolled):
    stranger = make_staff(db, Role.NURSE, sites=[world.site_a])
    headers = headers_for(client, stranger)

    assert_problem(post(client, headers, enrolled, body()), 404)
    assert_problem(client.get(url(enrolled), headers=headers), 404)
    assert count(db, Reading) == 0


# --- FHIR ------------------------------------------------------------------------------

EVERY_TYPE = [
    ("blood_pressure", BP, "mm[Hg]", "85354-9"),
    ("heart_rate", 72, "/min", "8867-4"),
    ("spo2", 97, "%", "59408-5"),
    ("glucose", 5.4, "mmol/L", "15074-8"),
    ("glucose", 97, "mg/dL", "2339-0"),
    ("weight", 81.5, "kg", "29463-7"),
    ("weight", 180, "[lb_av]", "29463-7"),
    ("temperature", 36.8, "Cel", "8310-5"),
    ("temperature", 98.2, "[degF]", "8310-5"),
    ("fev1", 3.1, "L", "20150-9"),
]


@pytest.mark.parametrize(("reading_type", "value", "unit", "loinc"), EVERY_TYPE)
def test_every_type_exports_as_a_fhir_observation(
    client, world, auth, enrolled, reading_type, value, unit, loinc
):
    stored = recorded(
        client, auth("patient"), enrolled, reading_type=reading_type, value=value, unit=unit
    )

    resource = fhir(client, auth("coordinator_a"), stored["id"])

    assert resource["resourceType"] == "Observation" and resource["status"] == "final"
    assert resource["category"][0]["coding"][0]["code"] == "vital-signs"
    assert resource["code"]["coding"][0] == {
        "system": "http://loinc.org",
        "code": loinc,
        "display": resource["code"]["text"],
    }
    assert resource["subject"] == {"identifier": {"value": enrolled.subject_code}}
    assert resource["effectiveDateTime"] == stored["measured_at"]
    assert resource["issued"] == stored["received_at"]
    assert resource["device"] == {"display": "Omron M3"}
    assert "interpretation" not in resource
    assert world.patient_a.user.full_name not in json.dumps(resource)
    if reading_type != "blood_pressure":
        quantity = resource["valueQuantity"]
        assert (quantity["value"], quantity["code"]) == (value, unit)
        assert quantity["system"] == "http://unitsofmeasure.org"


def test_a_flagged_blood_pressure_exports_its_components_and_interpretation(
    client, world, auth, enrolled
):
    set_thresholds(client, auth, world, BP_LIMITS)
    stored = recorded(
        client,
        auth("patient"),
        enrolled,
        reading_type="blood_pressure",
        value={"systolic": 182, "diastolic": 82},
        unit="mm[Hg]",
    )

    resource = fhir(client, auth("patient"), stored["id"])

    assert "valueQuantity" not in resource
    systolic, diastolic = resource["component"]
    assert systolic["code"]["coding"][0]["code"] == "8480-6"
    assert diastolic["code"]["coding"][0]["code"] == "8462-4"
    assert systolic["valueQuantity"] == {
        "value": 182,
        "unit": "mmHg",
        "system": "http://unitsofmeasure.org",
        "code": "mm[Hg]",
    }
    assert systolic["interpretation"][0]["coding"][0]["code"] == "H"
    assert "interpretation" not in diastolic
    assert [i["coding"][0]["code"] for i in resource["interpretation"]] == ["H"]
    assert resource["identifier"][0]["value"] == f"urn:uuid:{stored['client_id']}"


def test_a_low_reading_is_interpreted_low(client, world, auth, enrolled):
    set_thresholds(client, auth, world, [{"type": "spo2", "unit": "%", "low": 92}])
    stored = recorded(
        client, auth("patient"), enrolled, reading_type="spo2", value=88, unit="%", device={}
    )

    resource = fhir(client, auth("patient"), stored["id"])

    assert [i["coding"][0]["code"] for i in resource["interpretation"]] == ["L"]
    assert "device" not in resource
