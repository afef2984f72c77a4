"""Staff accounts: admins create any staff role; coordinators only nurses of their sites."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from services.actor import Role
from services.models import ActivationCode, AuditEvent, User
from tests.checks import assert_problem, audit_events, count
from tests.factories.people import (
    activate_with_code,
    headers_for,
    make_site,
    make_staff,
    random_id,
    user_of,
)

USERS = "/api/v1/users"


def new_user(role: str, **extra: object) -> dict:
    return {
        "email": f"new.{role}@example.org",
        "full_name": f"New {role.title()}",
        "role": role,
        "locale": "fr",
        "timezone": "Europe/Brussels",
        **extra,
    }


@pytest.fixture
def admin_headers(client, world):
    return headers_for(client, world.admin)


def test_admin_creates_a_coordinator_who_activates_with_the_code(client, db, world, admin_headers):
    body = new_user("coordinator", site_ids=[str(world.site_a.id)], phone="+32 470 12 34 56")
    response = client.post(USERS, json=body, headers=admin_headers)
    assert response.status_code == 201
    created = response.get_json()
    assert created["role"] == "coordinator"
    assert created["site_ids"] == [str(world.site_a.id)]
    assert created["phone"] == "+32470123456"
    assert created["activated"] is False
    assert "password_hash" not in created
    code = created["activation_code"]
    assert code

    activated = activate_with_code(client, code)
    assert activated.status_code == 200
    assert activated.get_json()["user"]["id"] == created["id"]
    assert_problem(activate_with_code(client, code), 401)

    (event,) = audit_events(db, "user.create", created["id"])
    assert event.actor_id == world.admin.id


def test_admin_creates_a_nurse(client, world, admin_headers):
    body = new_user("nurse", site_ids=[str(world.site_a.id), str(world.site_b.id)])
    response = client.post(USERS, json=body, headers=admin_headers)
    assert response.status_code == 201
    assert set(response.get_json()["site_ids"]) == {str(world.site_a.id), str(world.site_b.id)}


def test_admin_creates_a_monitor_of_a_study(client, world, admin_headers):
    body = new_user("monitor", study_ids=[str(world.study.id)])
    response = client.post(USERS, json=body, headers=admin_headers)
    assert response.status_code == 201
    created = response.get_json()
    assert (created["study_ids"], created["site_ids"]) == ([str(world.study.id)], [])
    assert created["activation_code"]


def test_admin_creates_another_admin(client, world, admin_headers):
    response = client.post(USERS, json=new_user("admin"), headers=admin_headers)
    assert response.status_code == 201
    assert response.get_json()["role"] == "admin"
    assert response.get_json()["activation_code"]


def test_email_is_stored_lower_case(client, world, admin_headers):
    body = new_user("admin", email="  Mixed.Case@Example.ORG ")
    response = client.post(USERS, json=body, headers=admin_headers)
    assert response.status_code == 201
    assert response.get_json()["email"] == "mixed.case@example.org"


@pytest.mark.requirement("CONSENT-7")
def test_duplicate_email_is_a_conflict_whatever_its_case(client, db, world, admin_headers):
    before = count(db, User)
    body = new_user("admin", email=world.nurse_a.email.upper())
    assert_problem(client.post(USERS, json=body, headers=admin_headers), 409)
    assert count(db, User) == before


def test_email_of_a_patient_is_taken_too(client, db, world, admin_headers):
    before = count(db, User)
    body = new_user("admin", email=world.patient_a.user.email)
    assert_problem(client.post(USERS, json=body, headers=admin_headers), 409)
    assert count(db, User) == before


def test_patients_are_not_created_here(client, db, world, admin_headers):
    before = count(db, User)
    body = new_user("patient", site_ids=[str(world.site_a.id)])
    problem = assert_problem(client.post(USERS, json=body, headers=admin_headers), 422)
    assert "role" in problem["errors"]
    assert count(db, User) == before


# Placeholders for ids that exist only once the test's world is built.
SITE_A, STUDY = "<site_a>", "<study>"


@pytest.mark.parametrize(
    ("role", "change", "field"),
    [
        ("coordinator", {}, "site_ids"),
        ("nurse", {}, "site_ids"),
        ("monitor", {}, "study_ids"),
        ("admin", {"site_ids": SITE_A}, "site_ids"),
        ("admin", {"study_ids": STUDY}, "study_ids"),
        ("nurse", {"site_ids": SITE_A, "study_ids": STUDY}, "study_ids"),
        ("monitor", {"study_ids": STUDY, "site_ids": SITE_A}, "site_ids"),
        ("nurse", {"site_ids": [random_id()]}, "site_ids"),
        ("monitor", {"study_ids": [random_id()]}, "study_ids"),
        ("nurse", {"site_ids": ["not-a-uuid"]}, "site_ids"),
        ("admin", {"email": "not an email"}, "email"),
        ("admin", {"timezone": "Brussels"}, "timezone"),
        ("admin", {"locale": "dutch"}, "locale"),
        ("admin", {"phone": "12345"}, "phone"),
        ("admin", {"phone": "call me"}, "phone"),
        ("admin", {"full_name": ""}, "full_name"),
        ("superuser", {}, "role"),
    ],
)
def test_bad_input_is_refused_per_field_and_nothing_is_stored(
    client, db, world, admin_headers, role, change, field
):
    ids = {SITE_A: [str(world.site_a.id)], STUDY: [str(world.study.id)]}
    change = {
        key: ids[value] if value in (SITE_A, STUDY) else value for key, value in change.items()
    }
    before = (count(db, User), count(db, ActivationCode), count(db, AuditEvent))
    response = client.post(USERS, json=new_user(role, **change), headers=admin_headers)
    problem = assert_problem(response, 422)
    assert field in problem["errors"]
    assert (count(db, User), count(db, ActivationCode), count(db, AuditEvent)) == before


def test_missing_fields_are_each_named(client, db, world, admin_headers):
    before = count(db, User)
    problem = assert_problem(client.post(USERS, json={}, headers=admin_headers), 422)
    assert set(problem["errors"]) == {"email", "full_name", "role"}
    assert count(db, User) == before


def test_coordinator_creates_a_nurse_of_their_site(client, world):
    headers = headers_for(client, world.coordinator_a)
    body = new_user("nurse", site_ids=[str(world.site_a.id)])
    response = client.post(USERS, json=body, headers=headers)
    assert response.status_code == 201
    assert response.get_json()["site_ids"] == [str(world.site_a.id)]
    assert response.get_json()["activation_code"]


@pytest.mark.parametrize(
    ("role", "sites"),
    [
        ("nurse", ["site_b"]),
        ("nurse", ["site_a", "site_b"]),
        ("coordinator", ["site_a"]),
        ("admin", []),
    ],
)
def test_coordinator_may_create_only_nurses_of_their_sites(client, db, world, role, sites):
    headers = headers_for(client, world.coordinator_a)
    before = count(db, User)
    body = new_user(role, site_ids=[str(getattr(world, site).id) for site in sites])
    assert_problem(client.post(USERS, json=body, headers=headers), 403)
    assert count(db, User) == before


def test_coordinator_may_not_create_a_monitor(client, db, world):
    headers = headers_for(client, world.coordinator_a)
    before = count(db, User)
    body = new_user("monitor", study_ids=[str(world.study.id)])
    assert_problem(client.post(USERS, json=body, headers=headers), 403)
    assert count(db, User) == before


@pytest.mark.parametrize("who", ["nurse_a", "monitor", "patient"])
def test_nurses_monitors_and_patients_may_not_create_accounts(client, db, world, who):
    user = user_of(world, who)
    headers = headers_for(client, user)
    before = count(db, User)
    body = new_user("nurse", site_ids=[str(world.site_a.id)])
    assert_problem(client.post(USERS, json=body, headers=headers), 403)
    assert count(db, User) == before


@pytest.mark.parametrize("who", ["nurse_a", "monitor", "patient"])
def test_nurses_monitors_and_patients_may_not_list_or_read_accounts(client, world, who):
    user = user_of(world, who)
    headers = headers_for(client, user)
    assert_problem(client.get(USERS, headers=headers), 403)
    assert_problem(client.get(f"{USERS}/{user.id}", headers=headers), 403)


def test_accounts_need_a_token(client, world):
    assert_problem(client.get(USERS), 401)
    assert_problem(client.post(USERS, json=new_user("admin")), 401)


def test_admin_lists_every_staff_account(client, db, world, admin_headers):
    response = client.get(USERS, query_string={"page_size": 500}, headers=admin_headers)
    assert response.status_code == 200
    listed = {user["id"] for user in response.get_json()}
    staff = db.scalars(select(User.id).where(User.role != "patient"))
    assert listed == {str(user_id) for user_id in staff}
    assert str(world.coordinator_b.id) in listed


def test_admin_does_not_read_patients_identity_through_accounts(client, world, admin_headers):
    """Admins read participants pseudonymised; the account list must not undo that."""
    listed = client.get(USERS, query_string={"page_size": 500}, headers=admin_headers)
    assert {user["role"] for user in listed.get_json()} <= {
        "admin",
        "coordinator",
        "nurse",
        "monitor",
    }
    assert world.patient_a.user.email not in listed.get_data(as_text=True)
    patient = client.get(f"{USERS}/{world.patient_a.user.id}", headers=admin_headers)
    assert_problem(patient, 404)


def test_coordinator_lists_only_nurses_of_their_sites(client, db, world):
    nurse_b = make_staff(db, Role.NURSE, sites=[world.site_b])
    nurse_ab = make_staff(db, Role.NURSE, sites=[world.site_a, world.site_b])
    response = client.get(USERS, headers=headers_for(client, world.coordinator_a))
    assert response.status_code == 200
    assert {user["id"] for user in response.get_json()} == {str(world.nurse_a.id), str(nurse_ab.id)}
    response = client.get(USERS, headers=headers_for(client, world.coordinator_b))
    assert {user["id"] for user in response.get_json()} == {str(nurse_b.id), str(nurse_ab.id)}


def test_coordinator_reads_a_nurse_of_their_site(client, world):
    response = client.get(
        f"{USERS}/{world.nurse_a.id}", headers=headers_for(client, world.coordinator_a)
    )
    assert response.status_code == 200
    body = response.get_json()
    assert (body["id"], body["email"], body["role"]) == (
        str(world.nurse_a.id),
        world.nurse_a.email,
        "nurse",
    )
    assert "activation_code" not in body


def test_accounts_outside_the_coordinators_scope_are_not_found(client, db, world):
    nurse_elsewhere = make_staff(db, Role.NURSE, sites=[make_site(db, world.other_study)])
    headers = headers_for(client, world.coordinator_a)
    for user in (
        nurse_elsewhere,
        world.coordinator_b,
        world.coordinator_a,
        world.admin,
        world.monitor,
        world.patient_a.user,
    ):
        assert_problem(client.get(f"{USERS}/{user.id}", headers=headers), 404)


def test_unknown_account_is_not_found(client, world, admin_headers):
    assert_problem(client.get(f"{USERS}/{random_id()}", headers=admin_headers), 404)


def test_admin_reads_any_account(client, world, admin_headers):
    response = client.get(f"{USERS}/{world.monitor.id}", headers=admin_headers)
    assert response.status_code == 200
    assert response.get_json()["study_ids"] == [str(world.study.id)]
