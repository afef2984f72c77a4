"""Participants: coordinators register and care for them, monitors and admins read them
pseudonymised, patients read and correct their own contact data."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.actor import Role
from services.models import ActivationCode, AuditEvent, Participant, User
from tests.checks import assert_problem, audit_events, count
from tests.factories.people import (
    activate_with_code,
    bearer,
    headers_for,
    make_participant,
    make_site,
    make_staff,
    make_study,
    random_id,
    user_of,
)

IDENTITY_FIELDS = {"full_name", "phone", "email", "address", "date_of_birth"}


def stored(db: Session) -> tuple[int, int, int, int]:
    return (
        count(db, Participant),
        count(db, User),
        count(db, ActivationCode),
        count(db, AuditEvent),
    )


def participants_url(study) -> str:
    return f"/api/v1/studies/{study.id}/participants"


def participant_url(patient) -> str:
    return f"/api/v1/participants/{patient.participant.id}"


def new_participant(site, **extra: object) -> dict:
    return {
        "site_id": str(site.id),
        "full_name": "Marie Peeters",
        "phone": "+32 485 11 22 33",
        "email": "marie.peeters@example.org",
        "locale": "nl",
        "timezone": "Europe/Brussels",
        "address": "Kerkstraat 7, 9000 Gent",
        "date_of_birth": "1961-04-23",
        **extra,
    }


@pytest.fixture
def coordinator_a(client, world):
    return headers_for(client, world.coordinator_a)


# --- create ----------------------------------------------------------------------


def test_coordinator_registers_a_participant_at_their_site(client, db, world):
    site = make_site(db, world.study)
    coordinator = make_staff(db, Role.COORDINATOR, sites=[site])
    response = client.post(
        participants_url(world.study),
        json=new_participant(site),
        headers=headers_for(client, coordinator),
    )
    assert response.status_code == 201
    body = response.get_json()
    assert body["subject_code"] == f"{world.study.code}-{site.code}-0001"
    assert body["status"] == "screening"
    assert (body["study_id"], body["site_id"]) == (str(world.study.id), str(site.id))
    assert body["full_name"] == "Marie Peeters"
    assert body["phone"] == "+32485112233"
    assert body["email"] == "marie.peeters@example.org"
    assert body["address"] == "Kerkstraat 7, 9000 Gent"
    assert body["date_of_birth"] == "1961-04-23"
    assert (body["locale"], body["timezone"]) == ("nl", "Europe/Brussels")
    assert body["activated"] is False

    activated = activate_with_code(client, body["activation_code"])
    assert activated.status_code == 200
    me = client.get("/api/v1/me", headers=bearer(activated.get_json()))
    assert me.get_json()["participant_id"] == body["id"]


def test_subject_codes_count_up_per_site(client, db, world):
    site_1, site_2 = make_site(db, world.study), make_site(db, world.study)
    headers = headers_for(client, make_staff(db, Role.COORDINATOR, sites=[site_1, site_2]))
    codes = []
    for number, site in enumerate([site_1, site_1, site_2, site_1]):
        body = new_participant(site, email=f"p{number}@example.org", phone=f"+3248511220{number}")
        response = client.post(participants_url(world.study), json=body, headers=headers)
        assert response.status_code == 201, response.get_json()
        codes.append(response.get_json()["subject_code"])
    prefix = world.study.code
    assert codes == [
        f"{prefix}-{site_1.code}-0001",
        f"{prefix}-{site_1.code}-0002",
        f"{prefix}-{site_2.code}-0001",
        f"{prefix}-{site_1.code}-0003",
    ]


def test_registration_is_audited_without_identifiers(client, db, world, coordinator_a):
    response = client.post(
        participants_url(world.study), json=new_participant(world.site_a), headers=coordinator_a
    )
    (event,) = audit_events(db, "participant.create", response.get_json()["id"])
    assert event.actor_id == world.coordinator_a.id
    assert event.after["subject_code"] == response.get_json()["subject_code"]
    text = json.dumps([event.before, event.after])
    for value in ("Marie", "Peeters", "485112233", "marie.peeters", "Kerkstraat", "1961-04-23"):
        assert value not in text


def test_national_phone_format_is_read_in_the_sites_country(client, db, world):
    headers = headers_for(client, world.coordinator_a)
    response = client.post(
        participants_url(world.study),
        json=new_participant(world.site_a, phone="0470 12 34 56"),
        headers=headers,
    )
    assert response.status_code == 201
    assert response.get_json()["phone"] == "+32470123456"

    dutch_site = make_site(db, world.study, country="NL")
    headers = headers_for(client, make_staff(db, Role.COORDINATOR, sites=[dutch_site]))
    body = new_participant(dutch_site, phone="06 12345678", email="dutch@example.org")
    response = client.post(participants_url(world.study), json=body, headers=headers)
    assert response.status_code == 201
    assert response.get_json()["phone"] == "+31612345678"


def test_coordinator_may_not_register_at_another_coordinators_site(
    client, db, world, coordinator_a
):
    before = stored(db)
    response = client.post(
        participants_url(world.study), json=new_participant(world.site_b), headers=coordinator_a
    )
    problem = assert_problem(response, 422)
    assert problem["errors"]["site_id"] == ["not one of your sites in this study"]
    assert stored(db) == before


def test_site_of_another_study_or_unknown_site_is_refused(client, db, world, coordinator_a):
    other_site = make_site(db, world.other_study)
    before = stored(db)
    for site_id in (str(other_site.id), random_id()):
        response = client.post(
            participants_url(world.study),
            json={**new_participant(world.site_a), "site_id": site_id},
            headers=coordinator_a,
        )
        assert "site_id" in assert_problem(response, 422)["errors"]
    assert stored(db) == before


def test_registering_in_a_foreign_study_is_not_found(client, db, world, coordinator_a):
    before = stored(db)
    response = client.post(
        participants_url(world.other_study),
        json=new_participant(world.site_a),
        headers=coordinator_a,
    )
    assert_problem(response, 404)
    assert stored(db) == before


@pytest.mark.parametrize("who", ["admin", "nurse_a", "monitor", "patient"])
def test_only_coordinators_register_participants(client, db, world, who):
    headers = headers_for(client, user_of(world, who))
    before = stored(db)
    response = client.post(
        participants_url(world.study), json=new_participant(world.site_a), headers=headers
    )
    assert_problem(response, 403)
    assert stored(db) == before


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"phone": "not a phone"}, "phone"),
        ({"phone": "12"}, "phone"),
        ({"phone": "+32 1"}, "phone"),
        ({"locale": "de"}, "locale"),
        ({"locale": "dutch"}, "locale"),
        ({"timezone": "Europe/Gent"}, "timezone"),
        ({"date_of_birth": "1961-04-23T00:00:00"}, "date_of_birth"),
        ({"date_of_birth": "1961-04-23T00:00:00+02:00"}, "date_of_birth"),
        ({"date_of_birth": "23/04/1961"}, "date_of_birth"),
        ({"date_of_birth": "1961-02-30"}, "date_of_birth"),
        ({"email": "marie at example"}, "email"),
        ({"full_name": ""}, "full_name"),
        ({"address": "x" * 501}, "address"),
        ({"site_id": "site-a"}, "site_id"),
    ],
)
def test_bad_input_is_refused_per_field_and_nothing_is_stored(
    client, db, world, coordinator_a, change, field
):
    before = stored(db)
    response = client.post(
        participants_url(world.study),
        json=new_participant(world.site_a, **change),
        headers=coordinator_a,
    )
    assert field in assert_problem(response, 422)["errors"]
    assert stored(db) == before


def test_missing_fields_are_each_named(client, db, world, coordinator_a):
    before = stored(db)
    response = client.post(participants_url(world.study), json={}, headers=coordinator_a)
    errors = assert_problem(response, 422)["errors"]
    assert set(errors) == {"site_id", "full_name", "phone", "locale", "timezone"}
    assert stored(db) == before


def test_email_and_address_and_birth_date_are_optional(client, world, coordinator_a):
    body = new_participant(world.site_a)
    for name in ("email", "address", "date_of_birth"):
        del body[name]
    response = client.post(participants_url(world.study), json=body, headers=coordinator_a)
    assert response.status_code == 201
    created = response.get_json()
    assert (created["email"], created["address"], created["date_of_birth"]) == (None, None, None)


def test_two_patients_without_email_may_not_share_a_phone(client, db, world, coordinator_a):
    first = new_participant(world.site_a, email=None)
    assert (
        client.post(participants_url(world.study), json=first, headers=coordinator_a).status_code
        == 201
    )
    before = stored(db)
    second = new_participant(
        world.site_a, email=None, full_name="Jan Peeters", phone="0485 11 22 33"
    )
    response = client.post(participants_url(world.study), json=second, headers=coordinator_a)
    assert_problem(response, 409)
    assert stored(db) == before


def test_a_patient_with_an_email_may_share_a_phone(client, world, coordinator_a):
    first = new_participant(world.site_a, email=None)
    assert (
        client.post(participants_url(world.study), json=first, headers=coordinator_a).status_code
        == 201
    )
    second = new_participant(world.site_a, email="jan@example.org", full_name="Jan Peeters")
    response = client.post(participants_url(world.study), json=second, headers=coordinator_a)
    assert response.status_code == 201


def test_an_email_already_in_use_is_a_conflict(client, db, world, coordinator_a):
    before = stored(db)
    body = new_participant(world.site_a, email=world.nurse_a.email.upper())
    response = client.post(participants_url(world.study), json=body, headers=coordinator_a)
    assert_problem(response, 409)
    assert stored(db) == before


# --- list ------------------------------------------------------------------------


def test_coordinator_lists_own_sites_participants_with_contact_data(client, world, coordinator_a):
    response = client.get(participants_url(world.study), headers=coordinator_a)
    assert response.status_code == 200
    (listed,) = response.get_json()
    assert listed["id"] == str(world.patient_a.participant.id)
    assert listed["full_name"] == world.patient_a.user.full_name
    assert listed["phone"] == world.patient_a.user.phone
    assert listed["email"] == world.patient_a.user.email
    assert listed["address"] == world.patient_a.participant.address
    assert listed["date_of_birth"] == world.patient_a.participant.date_of_birth.isoformat()


@pytest.mark.parametrize("who", ["monitor", "admin"])
def test_monitor_and_admin_list_the_whole_study_pseudonymised(client, world, who):
    response = client.get(
        participants_url(world.study), headers=headers_for(client, getattr(world, who))
    )
    assert response.status_code == 200
    listed = response.get_json()
    assert {row["id"] for row in listed} == {
        str(world.patient_a.participant.id),
        str(world.patient_b.participant.id),
    }
    for row in listed:
        assert not IDENTITY_FIELDS & set(row)
        assert {"subject_code", "site_id", "status"} <= set(row)
    assert world.patient_a.user.full_name not in response.get_data(as_text=True)


def test_monitor_of_another_study_gets_404(client, world):
    headers = headers_for(client, world.other_monitor)
    assert_problem(client.get(participants_url(world.study), headers=headers), 404)


def test_coordinator_listing_a_foreign_study_gets_404(client, world, coordinator_a):
    assert_problem(client.get(participants_url(world.other_study), headers=coordinator_a), 404)


@pytest.mark.parametrize("who", ["nurse_a", "patient"])
def test_nurse_and_patient_may_not_list_participants(client, world, who):
    headers = headers_for(client, user_of(world, who))
    assert_problem(client.get(participants_url(world.study), headers=headers), 403)


def test_participant_list_is_paginated(client, db):
    study = make_study(db)
    site = make_site(db, study)
    coordinator = make_staff(db, Role.COORDINATOR, sites=[site])
    for _ in range(3):
        make_participant(db, site, coordinator=coordinator, activated=False)
    headers = headers_for(client, coordinator)
    url = participants_url(study)

    first = client.get(url, query_string={"page": 1, "page_size": 2}, headers=headers)
    second = client.get(url, query_string={"page": 2, "page_size": 2}, headers=headers)
    assert first.status_code == second.status_code == 200
    assert [row["subject_code"][-4:] for row in first.get_json()] == ["0001", "0002"]
    assert [row["subject_code"][-4:] for row in second.get_json()] == ["0003"]
    pagination = json.loads(first.headers["X-Pagination"])
    assert (pagination["total"], pagination["total_pages"], pagination["next_page"]) == (3, 2, 2)

    errors = assert_problem(client.get(url, query_string={"page_size": 501}, headers=headers), 422)
    assert "page_size" in errors["errors"]


# --- read one --------------------------------------------------------------------


def test_coordinator_reads_own_participant_with_contact_data(client, world, coordinator_a):
    response = client.get(participant_url(world.patient_a), headers=coordinator_a)
    assert response.status_code == 200
    body = response.get_json()
    assert body["phone"] == world.patient_a.user.phone
    assert body["subject_code"] == world.patient_a.participant.subject_code


def test_coordinator_of_site_b_does_not_find_a_participant_of_site_a(client, world):
    headers = headers_for(client, world.coordinator_b)
    assert_problem(client.get(participant_url(world.patient_a), headers=headers), 404)


def test_patient_reads_themselves_with_contact_data(client, world):
    headers = headers_for(client, world.patient_a.user)
    response = client.get(participant_url(world.patient_a), headers=headers)
    assert response.status_code == 200
    assert response.get_json()["email"] == world.patient_a.user.email
    assert response.get_json()["address"] == world.patient_a.participant.address


def test_patient_does_not_find_another_patient(client, world):
    headers = headers_for(client, world.patient_a.user)
    assert_problem(client.get(participant_url(world.patient_b), headers=headers), 404)


@pytest.mark.parametrize("who", ["monitor", "admin"])
@pytest.mark.requirement("X-BLINDED")
def test_monitor_and_admin_read_a_participant_pseudonymised(client, world, who):
    response = client.get(
        participant_url(world.patient_b), headers=headers_for(client, getattr(world, who))
    )
    assert response.status_code == 200
    body = response.get_json()
    assert not IDENTITY_FIELDS & set(body)
    assert body["subject_code"] == world.patient_b.participant.subject_code
    assert body["site_id"] == str(world.site_b.id)


def test_monitor_of_another_study_does_not_find_the_participant(client, world):
    headers = headers_for(client, world.other_monitor)
    assert_problem(client.get(participant_url(world.patient_a), headers=headers), 404)


def test_nurse_without_assigned_visits_finds_no_participant(client, world):
    headers = headers_for(client, world.nurse_a)
    assert_problem(client.get(participant_url(world.patient_a), headers=headers), 404)


def test_unknown_participant_is_not_found(client, world, coordinator_a):
    assert_problem(client.get(f"/api/v1/participants/{random_id()}", headers=coordinator_a), 404)


# --- update ----------------------------------------------------------------------


def test_coordinator_changes_contact_data(client, world, coordinator_a):
    changes = {
        "full_name": "Anna De Smet",
        "phone": "0486 99 88 77",
        "address": "Markt 1, 8000 Brugge",
        "date_of_birth": "1970-12-31",
    }
    response = client.patch(participant_url(world.patient_a), json=changes, headers=coordinator_a)
    assert response.status_code == 200
    reread = client.get(participant_url(world.patient_a), headers=coordinator_a).get_json()
    assert reread["full_name"] == "Anna De Smet"
    assert reread["phone"] == "+32486998877"
    assert reread["address"] == "Markt 1, 8000 Brugge"
    assert reread["date_of_birth"] == "1970-12-31"


def test_change_is_audited_by_field_name_never_by_value(client, db, world, coordinator_a):
    changes = {"full_name": "Anna De Smet", "phone": "+32486998877", "address": "Markt 1, Brugge"}
    response = client.patch(participant_url(world.patient_a), json=changes, headers=coordinator_a)
    assert response.status_code == 200
    (event,) = audit_events(db, "participant.update", world.patient_a.participant.id)
    assert event.actor_id == world.coordinator_a.id
    assert {name: event.after[name] for name in changes} == dict.fromkeys(changes, "[changed]")
    text = json.dumps([event.before, event.after, event.reason])
    for value in ("Anna", "Smet", "486998877", "Markt"):
        assert value not in text


def test_patient_changes_own_contact_data(client, db, world):
    headers = headers_for(client, world.patient_a.user)
    changes = {
        "phone": "+32 486 99 88 77",
        "address": "Markt 1, 8000 Brugge",
        "locale": "fr",
        "timezone": "Europe/Paris",
    }
    response = client.patch(participant_url(world.patient_a), json=changes, headers=headers)
    assert response.status_code == 200
    body = response.get_json()
    assert (body["phone"], body["address"]) == ("+32486998877", "Markt 1, 8000 Brugge")
    assert (body["locale"], body["timezone"]) == ("fr", "Europe/Paris")
    event = db.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "participant.update",
            AuditEvent.actor_id == world.patient_a.user.id,
        )
    ).one()
    assert (event.before["locale"], event.after["locale"]) == ("nl", "fr")


@pytest.mark.parametrize("change", [{"full_name": "Someone Else"}, {"date_of_birth": "1990-01-01"}])
def test_patient_may_not_change_name_or_birth_date(client, db, world, change):
    headers = headers_for(client, world.patient_a.user)
    before = client.get(participant_url(world.patient_a), headers=headers).get_json()
    events = count(db, AuditEvent)
    response = client.patch(
        participant_url(world.patient_a), json={"address": "Elsewhere 1", **change}, headers=headers
    )
    assert_problem(response, 403)
    assert client.get(participant_url(world.patient_a), headers=headers).get_json() == before
    assert count(db, AuditEvent) == events


@pytest.mark.parametrize("who", ["monitor", "nurse_a", "admin"])
def test_monitor_nurse_and_admin_may_not_change_a_participant(client, db, world, who):
    headers = headers_for(client, getattr(world, who))
    events = count(db, AuditEvent)
    response = client.patch(
        participant_url(world.patient_a), json={"address": "X"}, headers=headers
    )
    assert_problem(response, 403)
    assert count(db, AuditEvent) == events


def test_changing_a_foreign_participant_is_not_found(client, db, world):
    coordinator_b = headers_for(client, world.coordinator_b)
    patient_b = headers_for(client, world.patient_b.user)
    events = count(db, AuditEvent)
    for headers in (coordinator_b, patient_b):
        response = client.patch(
            participant_url(world.patient_a), json={"address": "X"}, headers=headers
        )
        assert_problem(response, 404)
    assert count(db, AuditEvent) == events
    reread = client.get(
        participant_url(world.patient_a), headers=headers_for(client, world.coordinator_a)
    )
    assert reread.get_json()["address"] == world.patient_a.participant.address


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"phone": "garbage"}, "phone"),
        ({"phone": None}, "phone"),
        ({"locale": "de"}, "locale"),
        ({"timezone": "Europe/Gent"}, "timezone"),
        ({"email": "nope"}, "email"),
        ({"date_of_birth": "1970-01-01T00:00:00"}, "date_of_birth"),
    ],
)
def test_bad_change_is_refused_and_nothing_changes(client, db, world, coordinator_a, change, field):
    before = client.get(participant_url(world.patient_a), headers=coordinator_a).get_json()
    events = count(db, AuditEvent)
    response = client.patch(
        participant_url(world.patient_a),
        json={"full_name": "Changed Name", "address": "Changed 1", **change},
        headers=coordinator_a,
    )
    assert field in assert_problem(response, 422)["errors"]
    assert client.get(participant_url(world.patient_a), headers=coordinator_a).get_json() == before
    assert count(db, AuditEvent) == events


def test_patient_may_not_drop_email_when_the_phone_is_another_email_less_login(client, db, world):
    email_less = make_participant(db, world.site_a, email=False, coordinator=world.coordinator_a)
    other = make_participant(db, world.site_a, coordinator=world.coordinator_a)
    headers = headers_for(client, other.user)
    shared_phone = {"phone": email_less.user.phone}
    assert (
        client.patch(participant_url(other), json=shared_phone, headers=headers).status_code == 200
    )

    response = client.patch(participant_url(other), json={"email": None}, headers=headers)
    assert_problem(response, 409)
    reread = client.get(participant_url(other), headers=headers).get_json()
    assert reread["email"] == other.user.email


def test_email_less_patient_may_not_take_another_email_less_patients_phone(client, db, world):
    first = make_participant(db, world.site_a, email=False, coordinator=world.coordinator_a)
    second = make_participant(db, world.site_a, email=False, coordinator=world.coordinator_a)
    headers = headers_for(client, second.user)
    for changes in ({"phone": first.user.phone}, {"phone": first.user.phone, "email": None}):
        response = client.patch(participant_url(second), json=changes, headers=headers)
        assert_problem(response, 409)
    reread = client.get(participant_url(second), headers=headers).get_json()
    assert reread["phone"] == second.user.phone
    # With an email of their own, the same phone no longer clashes as a log-in.
    changes = {"phone": first.user.phone, "email": "second@example.org"}
    assert client.patch(participant_url(second), json=changes, headers=headers).status_code == 200


# --- activation code -------------------------------------------------------------


def test_reissued_activation_code_replaces_the_previous_one(client, db, world, coordinator_a):
    patient = make_participant(db, world.site_a, coordinator=world.coordinator_a, activated=False)
    response = client.post(f"{participant_url(patient)}/activation-code", headers=coordinator_a)
    assert response.status_code == 201
    new_code = response.get_json()["activation_code"]
    assert new_code and new_code != patient.activation_code
    assert_problem(activate_with_code(client, patient.activation_code), 401)
    assert activate_with_code(client, new_code).status_code == 200
    (event,) = audit_events(db, "participant.activation_code_issued", patient.participant.id)
    assert new_code not in json.dumps([event.before, event.after])


@pytest.mark.parametrize("who", ["admin", "nurse_a", "monitor", "patient"])
def test_only_coordinators_reissue_activation_codes(client, db, world, who):
    patient = make_participant(db, world.site_a, coordinator=world.coordinator_a, activated=False)
    headers = headers_for(client, user_of(world, who))
    codes = count(db, ActivationCode)
    assert_problem(client.post(f"{participant_url(patient)}/activation-code", headers=headers), 403)
    assert count(db, ActivationCode) == codes
    assert activate_with_code(client, patient.activation_code).status_code == 200


def test_reissuing_for_a_foreign_participant_is_not_found(client, db, world):
    patient = make_participant(db, world.site_a, coordinator=world.coordinator_a, activated=False)
    headers = headers_for(client, world.coordinator_b)
    codes = count(db, ActivationCode)
    assert_problem(client.post(f"{participant_url(patient)}/activation-code", headers=headers), 404)
    assert count(db, ActivationCode) == codes
    assert activate_with_code(client, patient.activation_code).status_code == 200


def test_patch_without_fields_is_refused_and_not_audited(client, db, world, coordinator_a):
    before = count(db, AuditEvent)
    response = client.patch(participant_url(world.patient_a), json={}, headers=coordinator_a)
    assert_problem(response, 422)
    assert count(db, AuditEvent) == before


@pytest.mark.parametrize(
    "change",
    [{"full_name": "   "}, {"date_of_birth": "2999-01-01"}, {"date_of_birth": "1850-01-01"}],
)
def test_blank_name_and_impossible_birth_dates_are_refused(
    client, db, world, coordinator_a, change
):
    participant = world.patient_a.participant
    name, born = participant.user.full_name, participant.date_of_birth
    response = client.patch(participant_url(world.patient_a), json=change, headers=coordinator_a)
    assert set(assert_problem(response, 422)["errors"]) == set(change)
    db.expire_all()
    reread = db.get(Participant, participant.id)
    assert (reread.user.full_name, reread.date_of_birth) == (name, born)
