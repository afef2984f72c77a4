"""Managing staff accounts: PATCH /users/{id}, deactivation, reactivation and unlocking.

Admins manage every staff account; coordinators the nurses of their sites (anything
else is 404 for them); nurses, monitors and patients none (403).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from services.actor import Role
from services.models import AuditEvent, AuthSession, LoginLockout, User, Visit
from tests.checks import assert_problem, audit_events, count
from tests.factories.people import (
    PASSWORD,
    World,
    bearer,
    headers_for,
    login,
    make_site,
    make_staff,
    random_id,
    user_of,
)
from tests.factories.visits import book_via_api, enrolled_with_visits, make_nurse_ready

USERS = "/api/v1/users"
LOGIN = "/api/v1/auth/login"
NEVER_ALLOWED = ["nurse_a", "monitor", "patient"]


def patch(client: FlaskClient, caller: User, user: User, body: Any) -> TestResponse:
    return client.patch(f"{USERS}/{user.id}", json=body, headers=headers_for(client, caller))


def act(
    client: FlaskClient, caller: User, user: User, action: str, body: Any = None
) -> TestResponse:
    body = {"reason": "left the study team"} if body is None else body
    return client.post(
        f"{USERS}/{user.id}/{action}", json=body, headers=headers_for(client, caller)
    )


def fresh(db: Session, user: User) -> User:
    db.expire_all()
    return db.get(User, user.id)


def events_about(db: Session, user: User) -> int:
    db.expire_all()
    return (
        db.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.entity_id == str(user.id))
        )
        or 0
    )


def state(db: Session, user: User) -> tuple:
    """Everything a refused change must leave as it was."""
    user = fresh(db, user)
    return (
        user.full_name,
        user.email,
        user.phone,
        user.locale,
        user.timezone,
        user.role,
        user.is_active,
        sorted(map(str, user.site_ids)),
        sorted(map(str, user.study_ids)),
        user.contact_changed_by_staff_at,
    )


@pytest.fixture
def nurse_ab(db: Session, world: World) -> User:
    return make_staff(db, Role.NURSE, sites=[world.site_a, world.site_b])


@pytest.fixture
def coordinator_ab(db: Session, world: World) -> User:
    return make_staff(db, Role.COORDINATOR, sites=[world.site_a, world.site_b])


# --- PATCH /users/{id} ------------------------------------------------------------------


def test_admin_changes_a_coordinator_and_it_is_audited_by_field_name(client, db, world):
    coordinator = world.coordinator_a
    headers = headers_for(client, world.admin)
    body = {
        "full_name": "Sofie  Claes-Peeters",
        "phone": "+32 470 99 88 77",
        "locale": "FR",
        "timezone": "Europe/Paris",
        "site_ids": [str(world.site_a.id), str(world.site_b.id)],
    }

    response = client.patch(f"{USERS}/{coordinator.id}", json=body, headers=headers)

    assert response.status_code == 200, response.get_json()
    answer = response.get_json()
    assert answer["full_name"] == "Sofie Claes-Peeters"
    assert answer["phone"] == "+32470998877"
    assert (answer["locale"], answer["timezone"], answer["role"]) == (
        "fr",
        "Europe/Paris",
        "coordinator",
    )
    assert set(answer["site_ids"]) == {str(world.site_a.id), str(world.site_b.id)}
    stored = fresh(db, coordinator)
    assert stored.phone == "+32470998877"
    assert stored.contact_changed_by_staff_at is not None
    (event,) = audit_events(db, "user.update", coordinator.id)
    assert event.actor_id == world.admin.id
    assert set(event.after) == {"full_name", "phone", "locale", "timezone", "site_ids"}
    assert event.before["timezone"] == "Europe/Brussels"
    assert event.after["timezone"] == "Europe/Paris"
    assert event.after["site_ids"] == sorted([str(world.site_a.id), str(world.site_b.id)])
    assert event.before["phone"] == event.after["phone"] == "[changed]"
    assert event.after["full_name"] == "[changed]"
    recorded = json.dumps([event.before, event.after])
    assert "Claes" not in recorded and "998877" not in recorded


def test_a_staff_change_of_the_email_is_remembered_and_logs_in(client, db, world):
    nurse = world.nurse_a
    response = patch(client, world.admin, nurse, {"email": "An.New@Example.org"})

    assert response.status_code == 200
    assert response.get_json()["email"] == "an.new@example.org"
    assert fresh(db, nurse).contact_changed_by_staff_at is not None
    (event,) = audit_events(db, "user.update", nurse.id)
    assert event.after == {"email": "[changed]"}
    ok = client.post(LOGIN, json={"email": "an.new@example.org", "password": PASSWORD})
    assert ok.status_code == 200


def test_locale_or_zone_alone_does_not_count_as_a_contact_change(client, db, world):
    response = patch(client, world.admin, world.nurse_a, {"timezone": "Europe/Amsterdam"})
    assert response.status_code == 200
    assert fresh(db, world.nurse_a).contact_changed_by_staff_at is None


def test_admin_moves_a_monitor_to_another_study(client, db, world):
    response = patch(client, world.admin, world.monitor, {"study_ids": [str(world.other_study.id)]})
    assert response.status_code == 200
    assert response.get_json()["study_ids"] == [str(world.other_study.id)]
    (event,) = audit_events(db, "user.update", world.monitor.id)
    assert event.before == {"study_ids": [str(world.study.id)]}


def test_admin_removes_a_phone(client, db, world):
    patch(client, world.admin, world.nurse_a, {"phone": "+32470000001"})
    response = patch(client, world.admin, world.nurse_a, {"phone": None})
    assert response.status_code == 200
    assert response.get_json()["phone"] is None
    assert fresh(db, world.nurse_a).phone_index is None


def test_sending_the_same_values_changes_and_audits_nothing(client, db, world):
    nurse = world.nurse_a
    headers = headers_for(client, world.admin)
    before = events_about(db, nurse)
    body = {"timezone": nurse.timezone, "site_ids": [str(world.site_a.id)]}
    response = client.patch(f"{USERS}/{nurse.id}", json=body, headers=headers)
    assert response.status_code == 200
    assert events_about(db, nurse) == before


def test_coordinator_changes_a_nurse_of_their_site(client, db, world):
    nurse = world.nurse_a
    response = patch(client, world.coordinator_a, nurse, {"phone": "0470 12 34 99", "locale": "nl"})
    # Staff phones are in international format (they have no single country).
    assert_problem(response, 422)
    response = patch(client, world.coordinator_a, nurse, {"phone": "+32470123499", "locale": "nl"})
    assert response.status_code == 200
    (event,) = audit_events(db, "user.update", nurse.id)
    assert event.actor_id == world.coordinator_a.id
    assert event.after == {"phone": "[changed]", "locale": "nl"}
    assert fresh(db, nurse).contact_changed_by_staff_at is not None


def test_coordinator_moves_a_nurse_between_their_own_sites(client, db, world, coordinator_ab):
    nurse = world.nurse_a
    response = patch(client, coordinator_ab, nurse, {"site_ids": [str(world.site_b.id)]})
    assert response.status_code == 200
    assert response.get_json()["site_ids"] == [str(world.site_b.id)]
    (event,) = audit_events(db, "user.update", nurse.id)
    assert (event.before, event.after) == (
        {"site_ids": [str(world.site_a.id)]},
        {"site_ids": [str(world.site_b.id)]},
    )


@pytest.mark.parametrize(
    "sites",
    [
        ["site_a", "site_b"],  # adds a site the coordinator does not run
        ["site_b"],
    ],
)
def test_coordinator_may_not_move_a_nurse_to_a_site_not_theirs(client, db, world, sites):
    nurse = world.nurse_a
    headers = headers_for(client, world.coordinator_a)
    before, events = state(db, nurse), events_about(db, nurse)
    body = {"site_ids": [str(getattr(world, site).id) for site in sites]}
    assert_problem(client.patch(f"{USERS}/{nurse.id}", json=body, headers=headers), 403)
    assert (state(db, nurse), events_about(db, nurse)) == (before, events)


def test_coordinator_may_not_take_a_nurse_off_a_site_not_theirs(client, db, world, nurse_ab):
    headers = headers_for(client, world.coordinator_a)
    before = state(db, nurse_ab)
    body = {"site_ids": [str(world.site_a.id)]}
    assert_problem(client.patch(f"{USERS}/{nurse_ab.id}", json=body, headers=headers), 403)
    assert state(db, nurse_ab) == before
    # Other fields of a shared nurse are theirs to change, the other site staying.
    body = {"timezone": "Europe/Paris", "site_ids": [str(world.site_b.id), str(world.site_a.id)]}
    response = client.patch(f"{USERS}/{nurse_ab.id}", json=body, headers=headers)
    assert response.status_code == 200
    assert len(response.get_json()["site_ids"]) == 2


def test_coordinator_may_not_change_the_log_in_email(client, db, world):
    headers = headers_for(client, world.coordinator_a)
    before = state(db, world.nurse_a)
    body = {"email": "elsewhere@example.org"}
    assert_problem(client.patch(f"{USERS}/{world.nurse_a.id}", json=body, headers=headers), 403)
    assert state(db, world.nurse_a) == before


def test_the_role_never_changes(client, db, world):
    headers = headers_for(client, world.admin)
    before, events = state(db, world.nurse_a), events_about(db, world.nurse_a)
    body = {"role": "coordinator", "timezone": "Europe/Paris"}
    response = client.patch(f"{USERS}/{world.nurse_a.id}", json=body, headers=headers)
    problem = assert_problem(response, 422)
    assert "never changes" in problem["errors"]["role"][0]
    assert (state(db, world.nurse_a), events_about(db, world.nurse_a)) == (before, events)


SITE_A, SITE_B, STUDY = "<site_a>", "<site_b>", "<study>"


@pytest.mark.parametrize(
    ("who", "body", "field"),
    [
        ("nurse_a", {"shoe_size": 38}, "shoe_size"),
        ("nurse_a", {"password_hash": "x"}, "password_hash"),
        ("nurse_a", {"is_active": False}, "is_active"),
        ("nurse_a", {"full_name": ""}, "full_name"),
        ("nurse_a", {"full_name": "   "}, "full_name"),
        ("nurse_a", {"full_name": None}, "full_name"),
        ("nurse_a", {"email": "not an email"}, "email"),
        ("nurse_a", {"email": None}, "email"),
        ("nurse_a", {"phone": "12345"}, "phone"),
        ("nurse_a", {"locale": "dutch"}, "locale"),
        ("nurse_a", {"timezone": "Brussels"}, "timezone"),
        ("nurse_a", {"site_ids": []}, "site_ids"),
        ("nurse_a", {"site_ids": [random_id()]}, "site_ids"),
        ("nurse_a", {"site_ids": ["not-a-uuid"]}, "site_ids"),
        ("nurse_a", {"study_ids": STUDY}, "study_ids"),
        ("monitor", {"study_ids": []}, "study_ids"),
        ("monitor", {"site_ids": SITE_A}, "site_ids"),
        ("admin", {"site_ids": SITE_B}, "site_ids"),
        ("nurse_a", {}, "_schema"),
        ("nurse_a", {"timezone": "Europe/Paris", "phone": "call me"}, "phone"),
    ],
)
def test_bad_input_is_refused_per_field_and_nothing_is_stored(client, db, world, who, body, field):
    ids = {SITE_A: [str(world.site_a.id)], SITE_B: [str(world.site_b.id)]}
    ids[STUDY] = [str(world.study.id)]
    body = {
        key: ids.get(value, value) if isinstance(value, str) else value
        for key, value in body.items()
    }
    user = getattr(world, who)
    headers = headers_for(client, world.admin)
    before, events = state(db, user), count(db, AuditEvent)
    response = client.patch(f"{USERS}/{user.id}", json=body, headers=headers)
    problem = assert_problem(response, 422)
    assert field in problem["errors"]
    assert (state(db, user), count(db, AuditEvent)) == (before, events)


def test_an_email_of_another_account_is_a_conflict(client, db, world):
    headers = headers_for(client, world.admin)
    before, events = state(db, world.nurse_a), count(db, AuditEvent)
    body = {"email": world.patient_a.user.email.upper(), "timezone": "Europe/Paris"}
    response = client.patch(f"{USERS}/{world.nurse_a.id}", json=body, headers=headers)
    assert_problem(response, 409)
    assert (state(db, world.nurse_a), count(db, AuditEvent)) == (before, events)


def test_a_body_that_is_not_an_object_is_refused(client, world):
    headers = headers_for(client, world.admin)
    response = client.patch(f"{USERS}/{world.nurse_a.id}", json=["timezone"], headers=headers)
    assert_problem(response, 422)


@pytest.mark.parametrize("who", NEVER_ALLOWED)
def test_nurses_monitors_and_patients_may_not_change_accounts(client, db, world, who):
    caller = user_of(world, who)
    for target in (world.nurse_a, caller):
        before = state(db, target)
        assert_problem(patch(client, caller, target, {"timezone": "Europe/Paris"}), 403)
        assert state(db, target) == before


def test_accounts_outside_the_coordinators_scope_are_not_found(client, db, world, nurse_ab):
    elsewhere = make_staff(db, Role.NURSE, sites=[make_site(db, world.other_study)])
    nurse_b = make_staff(db, Role.NURSE, sites=[world.site_b])
    for target in (
        nurse_b,  # a nurse of site B, for the coordinator of site A
        elsewhere,  # a nurse of another study
        world.coordinator_b,
        world.coordinator_a,  # themselves: they do not manage their own account here
        world.admin,
        world.monitor,
        world.patient_a.user,
    ):
        before = state(db, target)
        response = patch(client, world.coordinator_a, target, {"timezone": "Europe/Paris"})
        assert_problem(response, 404)
        assert state(db, target) == before
    # The shared nurse is in scope of both coordinators.
    response = patch(client, world.coordinator_b, nurse_ab, {"timezone": "Europe/Paris"})
    assert response.status_code == 200


def test_patients_and_unknown_ids_are_not_found_for_admins(client, db, world):
    before = state(db, world.patient_a.user)
    body = {"timezone": "Europe/Paris"}
    assert_problem(patch(client, world.admin, world.patient_a.user, body), 404)
    assert state(db, world.patient_a.user) == before
    response = client.patch(
        f"{USERS}/{random_id()}", json=body, headers=headers_for(client, world.admin)
    )
    assert_problem(response, 404)


def test_managing_accounts_needs_a_token(client, world):
    target = f"{USERS}/{world.nurse_a.id}"
    assert_problem(client.patch(target, json={"timezone": "Europe/Paris"}), 401)
    for action in ("deactivate", "reactivate", "unlock"):
        assert_problem(client.post(f"{target}/{action}", json={"reason": "x"}), 401)


# --- deactivation -----------------------------------------------------------------------


def open_sessions(db: Session, user: User) -> list[AuthSession]:
    db.expire_all()
    query = select(AuthSession).where(
        AuthSession.user_id == user.id, AuthSession.revoked_at.is_(None)
    )
    return list(db.scalars(query))


def same_problem(one: TestResponse, other: TestResponse) -> bool:
    """The same answer but for what names the request."""
    strip = ("instance", "request_id")
    first, second = one.get_json(), other.get_json()
    return (one.status_code, {k: v for k, v in first.items() if k not in strip}) == (
        other.status_code,
        {k: v for k, v in second.items() if k not in strip},
    )


def test_deactivation_ends_every_session_and_log_in_looks_like_a_wrong_password(client, db, world):
    nurse = world.nurse_a
    phone_tokens, laptop_tokens = login(client, nurse), login(client, nurse)
    assert client.get("/api/v1/me", headers=bearer(phone_tokens)).status_code == 200
    opened = len(open_sessions(db, nurse))  # the two above and activation's

    response = act(client, world.admin, nurse, "deactivate", {"reason": "left the hospital"})

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["is_active"] is False
    assert response.get_json()["future_visits"] == []
    for tokens in (phone_tokens, laptop_tokens):
        assert_problem(client.get("/api/v1/me", headers=bearer(tokens)), 401)
        refreshed = client.post("/api/v1/auth/refresh", headers=bearer(tokens["refresh_token"]))
        assert_problem(refreshed, 401)
    assert open_sessions(db, nurse) == []
    right = client.post(LOGIN, json={"email": nurse.email, "password": PASSWORD})
    wrong = client.post(LOGIN, json={"email": nurse.email, "password": "not the password"})
    assert_problem(right, 401)
    assert same_problem(right, wrong)
    (event,) = audit_events(db, "user.deactivate", nurse.id)
    assert (event.actor_id, event.reason) == (world.admin.id, "left the hospital")
    assert (event.before, event.after) == ({"is_active": True}, {"is_active": False})
    (revoked,) = audit_events(db, "auth.sessions_revoked", nurse.id)
    assert revoked.after == {"sessions": opened, "reason": "deactivated"}


def test_coordinator_deactivates_a_nurse_of_their_site(client, db, world):
    response = act(client, world.coordinator_a, world.nurse_a, "deactivate")
    assert response.status_code == 200
    assert fresh(db, world.nurse_a).is_active is False
    (event,) = audit_events(db, "user.deactivate", world.nurse_a.id)
    assert event.actor_id == world.coordinator_a.id


def test_admin_deactivates_another_admin_but_not_themselves(client, db, world):
    other_admin = make_staff(db, Role.ADMIN)
    assert act(client, world.admin, other_admin, "deactivate").status_code == 200
    headers = headers_for(client, world.admin)
    events = count(db, AuditEvent)  # after the log-in, which is audited
    response = client.post(
        f"{USERS}/{world.admin.id}/deactivate", json={"reason": "testing"}, headers=headers
    )
    problem = assert_problem(response, 409)
    assert "your own account" in problem["detail"]
    assert fresh(db, world.admin).is_active is True
    assert count(db, AuditEvent) == events


def test_a_coordinator_cannot_deactivate_themselves_either(client, db, world):
    assert_problem(act(client, world.coordinator_a, world.coordinator_a, "deactivate"), 409)
    assert fresh(db, world.coordinator_a).is_active is True


def test_deactivating_twice_is_a_conflict(client, db, world):
    assert act(client, world.admin, world.nurse_a, "deactivate").status_code == 200
    assert_problem(act(client, world.admin, world.nurse_a, "deactivate"), 409)
    assert len(audit_events(db, "user.deactivate", world.nurse_a.id)) == 1


@pytest.mark.parametrize("action", ["deactivate", "reactivate", "unlock"])
@pytest.mark.parametrize(
    "body", [{}, {"reason": ""}, {"reason": "   "}, {"reason": "x" * 1001}, {"why": "x"}]
)
def test_a_reason_is_required(client, db, world, action, body):
    if action == "reactivate":
        act(client, world.admin, world.nurse_a, "deactivate")
    headers = headers_for(client, world.admin)
    before, events = state(db, world.nurse_a), count(db, AuditEvent)
    response = client.post(f"{USERS}/{world.nurse_a.id}/{action}", json=body, headers=headers)
    problem = assert_problem(response, 422)
    assert problem["errors"].keys() & {"reason", "why"}
    assert (state(db, world.nurse_a), count(db, AuditEvent)) == (before, events)


@pytest.mark.parametrize("action", ["deactivate", "reactivate", "unlock"])
@pytest.mark.parametrize("who", NEVER_ALLOWED)
def test_nurses_monitors_and_patients_may_not_manage_accounts(client, db, world, action, who):
    caller = user_of(world, who)
    target = make_staff(db, Role.NURSE, sites=[world.site_a])
    before, events = state(db, target), events_about(db, target)
    assert_problem(act(client, caller, target, action), 403)
    assert (state(db, target), events_about(db, target)) == (before, events)


@pytest.mark.parametrize("action", ["deactivate", "reactivate", "unlock"])
def test_account_actions_outside_the_coordinators_scope_are_not_found(client, db, world, action):
    nurse_b = make_staff(db, Role.NURSE, sites=[world.site_b])
    elsewhere = make_staff(db, Role.NURSE, sites=[make_site(db, world.other_study)])
    for target in (nurse_b, elsewhere, world.coordinator_b, world.admin, world.monitor):
        before, events = state(db, target), events_about(db, target)
        assert_problem(act(client, world.coordinator_a, target, action), 404)
        assert (state(db, target), events_about(db, target)) == (before, events)
    assert_problem(act(client, world.admin, world.patient_a.user, action), 404)
    response = client.post(
        f"{USERS}/{random_id()}/{action}",
        json={"reason": "x"},
        headers=headers_for(client, world.admin),
    )
    assert_problem(response, 404)


# --- a deactivated nurse's visits ----------------------------------------------------------


@pytest.fixture
def baseline() -> dt.date:
    """A Monday three weeks ahead, so booked visits lie in the future."""
    today = dt.datetime.now(dt.UTC).date()
    return today + dt.timedelta(days=21 - today.weekday())


def at(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), dt.UTC)


@pytest.fixture
def booked(client, db, world, baseline) -> list[Visit]:
    """Patient A's V1 and D14 booked with nurse A (Brussels: 10:00 UTC is office hours)."""
    make_nurse_ready(db, world)
    visits = enrolled_with_visits(db, world, baseline=baseline)
    v1, d14 = visits[0], visits[1]
    for visit, day in ((v1, baseline), (d14, d14.window_start + dt.timedelta(days=2))):
        while day.weekday() >= 5:
            day += dt.timedelta(days=1)
        response = book_via_api(client, world.coordinator_a, visit, world.nurse_a, at(day, 10))
        assert response.status_code == 200, response.get_json()
    return [v1, d14]


def test_deactivation_lists_the_future_bookings_to_rebook(client, db, world, booked):
    v1, d14 = booked
    response = act(client, world.coordinator_a, world.nurse_a, "deactivate")

    assert response.status_code == 200
    listed = response.get_json()["future_visits"]
    assert [v["id"] for v in listed] == [str(v1.id), str(d14.id)]
    assert listed[0]["participant_id"] == str(world.patient_a.participant.id)
    assert listed[0]["subject_code"] == world.patient_a.participant.subject_code
    assert listed[0]["start_at"].endswith("Z")
    assert listed[0]["status"] == "scheduled"
    # Later, the coordinator reads the same list on the account.
    again = client.get(
        f"{USERS}/{world.nurse_a.id}", headers=headers_for(client, world.coordinator_a)
    )
    assert [v["id"] for v in again.get_json()["future_visits"]] == [str(v1.id), str(d14.id)]
    # The visits keep their nurse until rebooked.
    db.expire_all()
    assert db.get(Visit, v1.id).nurse_id == world.nurse_a.id


def test_an_active_account_has_no_future_visits_field(client, world, booked):
    response = client.get(
        f"{USERS}/{world.nurse_a.id}", headers=headers_for(client, world.coordinator_a)
    )
    assert "future_visits" not in response.get_json()


def test_a_deactivated_nurse_is_not_offered_nor_bookable(client, db, world, booked):
    _v1, d14 = booked
    act(client, world.admin, world.nurse_a, "deactivate")
    headers = headers_for(client, world.coordinator_a)

    slots = client.get(f"/api/v1/visits/{d14.id}/slots", headers=headers)
    assert slots.status_code == 200
    assert all(s["nurse_id"] != str(world.nurse_a.id) for s in slots.get_json()["slots"])
    start = at(d14.window_end, 12)
    response = book_via_api(client, world.coordinator_a, d14, world.nurse_a, start)
    problem = assert_problem(response, 409)
    assert "deactivated" in problem["detail"]
    db.expire_all()
    assert db.get(Visit, d14.id).start_at != start


def test_a_rebooked_visit_leaves_the_list(client, db, world, booked):
    v1, d14 = booked
    act(client, world.admin, world.nurse_a, "deactivate")
    other = make_nurse_ready(db, world, make_staff(db, Role.NURSE, sites=[world.site_a]))
    response = book_via_api(client, world.coordinator_a, v1, other, fresh_start(db, v1))
    assert response.status_code == 200, response.get_json()
    listed = client.get(
        f"{USERS}/{world.nurse_a.id}", headers=headers_for(client, world.coordinator_a)
    ).get_json()["future_visits"]
    assert [v["id"] for v in listed] == [str(d14.id)]


def fresh_start(db: Session, visit: Visit) -> dt.datetime:
    db.expire_all()
    return db.get(Visit, visit.id).start_at


def test_the_coordinator_of_another_site_sees_only_their_sites_visits(client, db, world, booked):
    """A nurse of both sites: each coordinator rebooks their own site's visits."""
    world.nurse_a.sites.append(world.site_b)
    db.flush()
    response = act(client, world.coordinator_b, world.nurse_a, "deactivate")
    assert response.status_code == 200
    assert response.get_json()["future_visits"] == []
    admin_view = client.get(f"{USERS}/{world.nurse_a.id}", headers=headers_for(client, world.admin))
    assert len(admin_view.get_json()["future_visits"]) == 2


# --- reactivation -------------------------------------------------------------------------


def test_reactivation_lets_the_holder_log_in_again_but_old_tokens_stay_dead(client, db, world):
    nurse = world.nurse_a
    old = login(client, nurse)
    act(client, world.coordinator_a, nurse, "deactivate")

    response = act(client, world.coordinator_a, nurse, "reactivate", {"reason": "came back"})

    assert response.status_code == 200
    assert response.get_json()["is_active"] is True
    assert "future_visits" not in response.get_json()
    assert_problem(client.get("/api/v1/me", headers=bearer(old)), 401)
    assert client.get("/api/v1/me", headers=bearer(login(client, nurse))).status_code == 200
    (event,) = audit_events(db, "user.reactivate", nurse.id)
    assert (event.actor_id, event.reason) == (world.coordinator_a.id, "came back")
    assert (event.before, event.after) == ({"is_active": False}, {"is_active": True})


def test_reactivating_an_active_account_is_a_conflict(client, db, world):
    events = events_about(db, world.nurse_a)
    assert_problem(act(client, world.admin, world.nurse_a, "reactivate"), 409)
    assert events_about(db, world.nurse_a) == events


# --- unlock -------------------------------------------------------------------------------


def lock_out(client: FlaskClient, user: User) -> None:
    for _ in range(5):
        client.post(LOGIN, json={"email": user.email, "password": "a wrong guess"})
    locked = client.post(LOGIN, json={"email": user.email, "password": PASSWORD})
    assert locked.status_code != 200


def test_unlock_clears_every_lock_out_and_the_count(client, db, world):
    nurse = world.nurse_a
    lock_out(client, nurse)
    db.add(LoginLockout(user_id=nurse.id, client_key="f" * 64, failures=3))
    db.get(User, nurse.id).failed_logins = 7
    db.flush()

    response = act(client, world.coordinator_a, nurse, "unlock", {"reason": "identity checked"})

    assert response.status_code == 200
    db.expire_all()
    assert db.scalars(select(LoginLockout).where(LoginLockout.user_id == nurse.id)).all() == []
    assert fresh(db, nurse).failed_logins == 0
    assert client.post(LOGIN, json={"email": nurse.email, "password": PASSWORD}).status_code == 200
    (event,) = audit_events(db, "user.unlock", nurse.id)
    assert (event.actor_id, event.reason) == (world.coordinator_a.id, "identity checked")
    assert event.before == {"failed_logins": 7, "lockouts": 2}
    assert event.after == {"failed_logins": 0, "lockouts": 0}


def test_admin_unlocks_an_account_that_is_not_locked(client, db, world):
    response = act(client, world.admin, world.monitor, "unlock")
    assert response.status_code == 200
    (event,) = audit_events(db, "user.unlock", world.monitor.id)
    assert event.before == {"failed_logins": 0, "lockouts": 0}


# --- the contract ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("patch", "/api/v1/users/{user_id}"),
        ("post", "/api/v1/users/{user_id}/deactivate"),
        ("post", "/api/v1/users/{user_id}/reactivate"),
        ("post", "/api/v1/users/{user_id}/unlock"),
    ],
)
def test_the_operations_are_documented(app, method, path):
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    operation = spec["paths"][path][method]
    assert operation["security"] == [{"bearerAuth": []}]
    assert {"401", "403", "404", "422"} <= set(operation["responses"])
    assert operation["summary"]
    assert "requestBody" in operation
