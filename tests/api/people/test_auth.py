"""Authentication over HTTP: log-in, token lifetimes, refresh rotation, log-out,
activation, lockout, rate limits and the caller's profile."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import jwt as pyjwt
import pytest
from flask.testing import FlaskClient
from flask_jwt_extended import decode_token
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from services.actor import Role
from services.db import utcnow
from services.models import ActivationCode, AuthSession, LoginLockout, User
from tests.checks import assert_problem, audit_events, count
from tests.factories.people import (
    PASSWORD,
    bearer,
    login,
    make_participant,
    make_site,
    make_staff,
    make_study,
    make_world,
)

LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ACTIVATE = "/api/v1/auth/activate"
ME = "/api/v1/me"


def refresh_with(client: FlaskClient, refresh_token: str) -> Any:
    return client.post(REFRESH, headers=bearer(refresh_token))


def claims(token: str) -> dict[str, Any]:
    return pyjwt.decode(token, options={"verify_signature": False})


def sessions_of(db: Session, user: User) -> list[AuthSession]:
    db.expire_all()
    return list(db.scalars(select(AuthSession).where(AuthSession.user_id == user.id)))


# --- log-in ---------------------------------------------------------------------------


def test_staff_logs_in_by_email(client, db):
    nurse = make_staff(db, Role.NURSE, sites=[make_site(db, make_study(db))])

    response = client.post(LOGIN, json={"email": nurse.email, "password": PASSWORD})

    assert response.status_code == 200
    body = response.get_json()
    assert set(body) >= {"access_token", "refresh_token", "expires_in", "user"}
    assert body["expires_in"] == 15 * 60
    assert body["user"]["id"] == str(nurse.id)
    assert body["user"]["role"] == "nurse"
    assert "password_hash" not in body["user"]
    assert client.get(ME, headers=bearer(body)).status_code == 200


def test_email_is_matched_case_insensitively(client, db):
    admin = make_staff(db, Role.ADMIN)

    response = client.post(LOGIN, json={"email": admin.email.upper(), "password": PASSWORD})

    assert response.status_code == 200


def test_patient_logs_in_by_email(client, db):
    patient = make_participant(db, make_site(db, make_study(db)))

    response = client.post(LOGIN, json={"email": patient.user.email, "password": PASSWORD})

    assert response.status_code == 200
    assert response.get_json()["user"]["role"] == "patient"


def test_patient_without_email_logs_in_by_phone(client, db):
    patient = make_participant(db, make_site(db, make_study(db)), email=False)

    response = client.post(LOGIN, json={"phone": patient.user.phone, "password": PASSWORD})

    assert response.status_code == 200
    assert response.get_json()["user"]["id"] == str(patient.user.id)


def test_patient_with_email_cannot_log_in_by_phone(client, db):
    patient = make_participant(db, make_site(db, make_study(db)))

    response = client.post(LOGIN, json={"phone": patient.user.phone, "password": PASSWORD})

    assert_problem(response, 401)


def test_wrong_password_is_401_problem_with_www_authenticate(client, db):
    admin = make_staff(db, Role.ADMIN)

    response = client.post(LOGIN, json={"email": admin.email, "password": "not the password"})

    body = assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "access_token" not in body


def test_unknown_email_answers_exactly_like_a_wrong_password(client, db):
    admin = make_staff(db, Role.ADMIN)

    wrong = client.post(LOGIN, json={"email": admin.email, "password": "not the password"})
    unknown = client.post(LOGIN, json={"email": "nobody@example.org", "password": PASSWORD})

    assert_problem(unknown, 401)
    assert unknown.get_json()["detail"] == wrong.get_json()["detail"]
    assert unknown.headers["WWW-Authenticate"] == wrong.headers["WWW-Authenticate"]


@pytest.mark.parametrize(
    "identifiers",
    [{"email": "a@example.org", "phone": "+32470000001"}, {}],
    ids=["both", "neither"],
)
def test_login_needs_exactly_one_of_email_or_phone(client, db, identifiers):
    admin = make_staff(db, Role.ADMIN)
    before = count(db, AuthSession)

    response = client.post(LOGIN, json={**identifiers, "password": PASSWORD})

    body = assert_problem(response, 422)
    assert "email" in body["errors"]
    assert count(db, AuthSession) == before
    assert audit_events(db, "auth.login_failed", admin.id) == []


def test_login_without_password_is_422_per_field(client, db):
    response = client.post(LOGIN, json={"email": "a@example.org"})

    assert "password" in assert_problem(response, 422)["errors"]


def test_account_cannot_log_in_before_activation(client, db):
    nurse = make_staff(db, Role.NURSE, sites=[make_site(db, make_study(db))], activated=False)

    response = client.post(LOGIN, json={"email": nurse.email, "password": PASSWORD})

    assert_problem(response, 401)
    assert sessions_of(db, nurse) == []


def test_disabled_account_cannot_log_in(client, db):
    admin = make_staff(db, Role.ADMIN)
    admin.is_active = False
    db.flush()

    response = client.post(LOGIN, json={"email": admin.email, "password": PASSWORD})

    assert_problem(response, 401)


def test_passwords_are_stored_as_argon2_hashes(client, db, connection):
    admin = make_staff(db, Role.ADMIN)

    stored = connection.execute(
        text("SELECT password_hash FROM users WHERE id = :id"), {"id": _db_id(db, admin.id)}
    ).scalar_one()

    assert stored.startswith("$argon2")
    assert PASSWORD not in stored


def _db_id(db: Session, value: uuid.UUID) -> object:
    """The id as the raw SQL driver stores it (UUID on PostgreSQL, hex text on SQLite)."""
    return value if db.get_bind().dialect.name == "postgresql" else value.hex


# --- token lifetimes ------------------------------------------------------------------


def test_access_token_lasts_15_minutes_and_refresh_token_30_days(app, client, db):
    tokens = login(client, make_staff(db, Role.ADMIN))

    with app.app_context():
        access = decode_token(tokens["access_token"])
        refresh = decode_token(tokens["refresh_token"])

    assert access["type"] == "access"
    assert access["exp"] - access["iat"] == 15 * 60
    assert refresh["type"] == "refresh"
    assert refresh["exp"] - refresh["iat"] == 30 * 24 * 3600


def test_token_lifetimes_follow_configuration(make_app, db):
    other = make_app(DCT_ACCESS_TOKEN_MINUTES=5, DCT_REFRESH_TOKEN_DAYS=2)
    admin = make_staff(db, Role.ADMIN)

    tokens = login(other.test_client(), admin)

    assert tokens["expires_in"] == 5 * 60
    access, refresh = claims(tokens["access_token"]), claims(tokens["refresh_token"])
    assert access["exp"] - access["iat"] == 5 * 60
    assert refresh["exp"] - refresh["iat"] == 2 * 24 * 3600
    # The session (the family that refreshes may extend) is bounded the same way.
    auth_session = db.get(AuthSession, uuid.UUID(access["sid"]))
    assert abs(auth_session.expires_at.timestamp() - refresh["exp"]) < 5


# --- refresh rotation -----------------------------------------------------------------


def test_refresh_returns_a_new_pair(client, db):
    admin = make_staff(db, Role.ADMIN)
    first = login(client, admin)

    response = refresh_with(client, first["refresh_token"])

    assert response.status_code == 200
    second = response.get_json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["expires_in"] == 15 * 60
    assert claims(second["access_token"])["sid"] == claims(first["access_token"])["sid"]
    assert client.get(ME, headers=bearer(second)).status_code == 200
    assert refresh_with(client, second["refresh_token"]).status_code == 200


def test_reused_refresh_token_revokes_the_whole_family(client, db):
    admin = make_staff(db, Role.ADMIN)
    first = login(client, admin)
    second = refresh_with(client, first["refresh_token"]).get_json()

    reuse = refresh_with(client, first["refresh_token"])

    assert_problem(reuse, 401)
    assert_problem(refresh_with(client, second["refresh_token"]), 401)
    assert_problem(client.get(ME, headers=bearer(second)), 401)
    assert_problem(client.get(ME, headers=bearer(first)), 401)
    auth_session = db.get(AuthSession, uuid.UUID(claims(first["access_token"])["sid"]))
    db.refresh(auth_session)
    assert auth_session.revoked_at is not None
    assert auth_session.revoked_reason == "refresh_reuse"
    assert len(audit_events(db, "auth.refresh_reuse", auth_session.id)) == 1


def test_reuse_does_not_end_other_sessions_of_the_same_user(client, db):
    admin = make_staff(db, Role.ADMIN)
    stolen, other = login(client, admin), login(client, admin)
    refresh_with(client, stolen["refresh_token"])

    assert refresh_with(client, stolen["refresh_token"]).status_code == 401

    assert client.get(ME, headers=bearer(other)).status_code == 200


def test_access_token_cannot_refresh(client, db):
    tokens = login(client, make_staff(db, Role.ADMIN))

    response = refresh_with(client, tokens["access_token"])

    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_refresh_token_is_not_an_access_token(client, db):
    tokens = login(client, make_staff(db, Role.ADMIN))

    assert_problem(client.get(ME, headers=bearer(tokens["refresh_token"])), 401)


def test_refresh_without_token_is_401(client):
    assert_problem(client.post(REFRESH), 401)


# --- log-out --------------------------------------------------------------------------


def test_logout_revokes_that_session_only(client, db):
    admin = make_staff(db, Role.ADMIN)
    ending, staying = login(client, admin), login(client, admin)

    response = client.post(LOGOUT, headers=bearer(ending))

    assert response.status_code == 204
    assert_problem(client.get(ME, headers=bearer(ending)), 401)
    assert_problem(refresh_with(client, ending["refresh_token"]), 401)
    assert client.get(ME, headers=bearer(staying)).status_code == 200
    assert refresh_with(client, staying["refresh_token"]).status_code == 200
    by_id = {str(s.id): s for s in sessions_of(db, admin)}
    ended = by_id[claims(ending["access_token"])["sid"]]
    assert ended.revoked_at is not None
    assert ended.revoked_reason == "logout"
    assert by_id[claims(staying["access_token"])["sid"]].revoked_at is None
    assert len(audit_events(db, "auth.logout", ended.id)) == 1


def test_logout_without_token_is_401(client):
    assert_problem(client.post(LOGOUT), 401)


# --- activation -----------------------------------------------------------------------


def test_new_staff_member_sets_password_with_activation_code(client, db):
    world = make_world(db)
    created = client.post(
        "/api/v1/users",
        json={"email": "new.nurse@example.org", "full_name": "New Nurse", "role": "nurse"}
        | {"site_ids": [str(world.site_a.id)]},
        headers=bearer(login(client, world.admin)),
    )
    assert created.status_code == 201
    code = created.get_json()["activation_code"]
    assert_problem(
        client.post(LOGIN, json={"email": "new.nurse@example.org", "password": PASSWORD}), 401
    )

    response = client.post(ACTIVATE, json={"activation_code": code, "password": PASSWORD})

    assert response.status_code == 200
    tokens = response.get_json()
    assert tokens["user"]["activated"] is True
    assert client.get(ME, headers=bearer(tokens)).get_json()["role"] == "nurse"
    relogin = client.post(LOGIN, json={"email": "new.nurse@example.org", "password": PASSWORD})
    assert relogin.status_code == 200


def test_new_patient_sets_password_with_activation_code(client, db):
    world = make_world(db)
    created = client.post(
        f"/api/v1/studies/{world.study.id}/participants",
        json={
            "site_id": str(world.site_a.id),
            "full_name": "Nieuwe Patiënt",
            "phone": "+32470999111",
            "locale": "nl",
            "timezone": "Europe/Brussels",
            "address": "Straat 1, 1000 Brussel",
            "date_of_birth": "1960-05-01",
        },
        headers=bearer(login(client, world.coordinator_a)),
    )
    assert created.status_code == 201, created.get_json()
    code = created.get_json()["activation_code"]

    response = client.post(ACTIVATE, json={"activation_code": code, "password": PASSWORD})

    assert response.status_code == 200
    me = client.get(ME, headers=bearer(response.get_json())).get_json()
    assert me["participant_id"] == created.get_json()["id"]
    relogin = client.post(LOGIN, json={"phone": "+32470999111", "password": PASSWORD})
    assert relogin.status_code == 200


def test_activation_code_works_once(client, db):
    patient = make_participant(db, make_site(db, make_study(db)), activated=False)
    body = {"activation_code": patient.activation_code, "password": PASSWORD}
    assert client.post(ACTIVATE, json=body).status_code == 200

    again = client.post(ACTIVATE, json={**body, "password": "another long password"})

    assert_problem(again, 401)
    assert login(client, patient.user)["user"]["id"] == str(patient.user.id)


def test_activation_code_accepts_lowercase_without_dashes(client, db):
    patient = make_participant(db, make_site(db, make_study(db)), activated=False)
    typed = patient.activation_code.replace("-", "").lower()

    response = client.post(ACTIVATE, json={"activation_code": typed, "password": PASSWORD})

    assert response.status_code == 200


def test_activation_code_expires_after_72_hours(client, db):
    patient = make_participant(db, make_site(db, make_study(db)), activated=False)
    (record,) = db.scalars(select(ActivationCode).where(ActivationCode.user_id == patient.user.id))
    assert abs(record.expires_at - record.created_at - dt.timedelta(hours=72)).total_seconds() < 60
    record.expires_at = utcnow() - dt.timedelta(seconds=1)
    db.flush()

    response = client.post(
        ACTIVATE, json={"activation_code": patient.activation_code, "password": PASSWORD}
    )

    assert_problem(response, 401)
    db.refresh(patient.user)
    assert patient.user.password_hash is None


def test_reissued_activation_code_replaces_the_previous_one(client, db):
    world = make_world(db)
    patient = make_participant(db, world.site_a, coordinator=world.coordinator_a, activated=False)
    reissued = client.post(
        f"/api/v1/participants/{patient.participant.id}/activation-code",
        headers=bearer(login(client, world.coordinator_a)),
    )
    assert reissued.status_code == 201
    new_code = reissued.get_json()["activation_code"]
    assert new_code != patient.activation_code

    old = client.post(
        ACTIVATE, json={"activation_code": patient.activation_code, "password": PASSWORD}
    )
    new = client.post(ACTIVATE, json={"activation_code": new_code, "password": PASSWORD})

    assert_problem(old, 401)
    assert new.status_code == 200


def test_too_short_password_is_422_and_leaves_the_code_unused(client, db):
    patient = make_participant(db, make_site(db, make_study(db)), activated=False)

    short = client.post(
        ACTIVATE, json={"activation_code": patient.activation_code, "password": "short"}
    )

    assert "password" in assert_problem(short, 422)["errors"]
    db.expire_all()
    (record,) = db.scalars(select(ActivationCode).where(ActivationCode.user_id == patient.user.id))
    assert record.used_at is None
    assert patient.user.password_hash is None
    assert sessions_of(db, patient.user) == []
    retry = client.post(
        ACTIVATE, json={"activation_code": patient.activation_code, "password": PASSWORD}
    )
    assert retry.status_code == 200


def test_activation_codes_are_stored_hashed(client, db, connection):
    patient = make_participant(db, make_site(db, make_study(db)), activated=False)
    code = patient.activation_code
    assert code

    rows = connection.execute(text("SELECT * FROM activation_codes")).all()

    assert rows
    stored = " ".join(str(value) for row in rows for value in row).upper()
    assert code.upper() not in stored
    assert code.replace("-", "").upper() not in stored


# --- lockout --------------------------------------------------------------------------


def fail_logins(client: FlaskClient, user: User, times: int) -> list[Any]:
    wrong = {"email": user.email, "password": "not the password"}
    return [client.post(LOGIN, json=wrong) for _ in range(times)]


ATTACKER = {"REMOTE_ADDR": "203.0.113.66"}


def without_request(body: dict[str, Any]) -> dict[str, Any]:
    """A problem body less what differs between any two requests."""
    return {key: value for key, value in body.items() if key != "request_id"}


@pytest.mark.requirement("X-ACCESS")
def test_five_failed_logins_lock_the_account_from_that_address_silently(client, db):
    admin = make_staff(db, Role.ADMIN)
    sessions_before = len(sessions_of(db, admin))

    failures = fail_logins(client, admin, 5)
    locked = client.post(LOGIN, json={"email": admin.email, "password": PASSWORD})
    unknown = client.post(LOGIN, json={"email": "nobody@example.org", "password": PASSWORD})

    assert [r.status_code for r in failures] == [401] * 5
    # The right password from the locked address answers like an unknown account.
    assert without_request(assert_problem(locked, 401)) == without_request(
        assert_problem(unknown, 401)
    )
    assert set(locked.headers.keys()) == set(unknown.headers.keys())
    # Each failed request answered an error, yet its count and audit were committed.
    assert len(audit_events(db, "auth.login_failed", admin.id)) == 5
    assert len(audit_events(db, "auth.lockout", admin.id)) == 1
    assert len(audit_events(db, "auth.login_refused_locked", admin.id)) == 1
    (lock,) = db.scalars(select(LoginLockout).where(LoginLockout.user_id == admin.id))
    assert lock.locked_until > utcnow()
    assert len(sessions_of(db, admin)) == sessions_before


def test_wrong_password_of_a_locked_account_answers_like_an_unknown_email(client, db):
    admin = make_staff(db, Role.ADMIN)
    fail_logins(client, admin, 5)

    locked = client.post(LOGIN, json={"email": admin.email, "password": "wrong again"})
    unknown = client.post(LOGIN, json={"email": "nobody@example.org", "password": "wrong again"})

    assert locked.status_code == unknown.status_code == 401
    assert without_request(locked.get_json()) == without_request(unknown.get_json())
    assert locked.headers.get("WWW-Authenticate") == unknown.headers.get("WWW-Authenticate")


def test_an_attacker_cannot_lock_the_holder_out(client, db):
    admin = make_staff(db, Role.ADMIN)
    wrong = {"email": admin.email, "password": "not the password"}
    for _ in range(12):
        client.post(LOGIN, json=wrong, environ_base=ATTACKER)

    attacker = client.post(
        LOGIN, json={"email": admin.email, "password": PASSWORD}, environ_base=ATTACKER
    )

    assert attacker.status_code == 401
    assert login(client, admin)["user"]["id"] == str(admin.id)


@pytest.mark.requirement("X-ACCESS")
def test_the_account_wide_ceiling_raises_an_alert_instead_of_locking(make_app, db):
    other = make_app(DCT_MAX_FAILED_LOGINS=3, DCT_LOGIN_ALERT_CEILING=8).test_client()
    admin = make_staff(db, Role.ADMIN)
    wrong = {"email": admin.email, "password": "not the password"}
    for number in range(8):
        other.post(LOGIN, json=wrong, environ_base={"REMOTE_ADDR": f"203.0.113.{number}"})

    alerts = audit_events(db, "security.alert.password_guessing", admin.id)
    holder = other.post(LOGIN, json={"email": admin.email, "password": PASSWORD})

    assert len(alerts) == 1
    assert alerts[0].after == {"failed_logins": 8}
    assert audit_events(db, "auth.lockout", admin.id) == []
    assert holder.status_code == 200


def test_right_password_works_again_after_the_lockout(client, db):
    admin = make_staff(db, Role.ADMIN)
    fail_logins(client, admin, 5)
    db.execute(
        update(LoginLockout)
        .where(LoginLockout.user_id == admin.id)
        .values(locked_until=utcnow() - dt.timedelta(seconds=1))
    )

    response = client.post(LOGIN, json={"email": admin.email, "password": PASSWORD})

    assert response.status_code == 200
    assert db.scalars(select(LoginLockout).where(LoginLockout.user_id == admin.id)).all() == []


def test_a_successful_login_resets_the_failure_count(client, db):
    admin = make_staff(db, Role.ADMIN)
    fail_logins(client, admin, 4)
    login(client, admin)

    fail_logins(client, admin, 4)

    assert login(client, admin)["user"]["id"] == str(admin.id)
    assert audit_events(db, "auth.lockout", admin.id) == []


def test_lockout_threshold_and_duration_follow_configuration(make_app, db):
    other = make_app(DCT_MAX_FAILED_LOGINS=2, DCT_LOCKOUT_MINUTES=1)
    other_client = other.test_client()
    admin = make_staff(db, Role.ADMIN)

    fail_logins(other_client, admin, 2)
    locked = other_client.post(LOGIN, json={"email": admin.email, "password": PASSWORD})

    assert_problem(locked, 401)
    (lock,) = db.scalars(select(LoginLockout).where(LoginLockout.user_id == admin.id))
    assert dt.timedelta(0) < lock.locked_until - utcnow() <= dt.timedelta(minutes=1)
    assert len(audit_events(db, "auth.lockout", admin.id)) == 1


# --- rate limit per client address ----------------------------------------------------


def test_login_is_rate_limited_per_client_address(make_app, db):
    limited = make_app(DCT_LOGIN_RATE_LIMIT="3 per minute").test_client()
    admin = make_staff(db, Role.ADMIN)
    body = {"email": admin.email, "password": PASSWORD}

    served = [limited.post(LOGIN, json=body) for _ in range(3)]
    refused = limited.post(LOGIN, json=body)
    elsewhere = limited.post(LOGIN, json=body, environ_base={"REMOTE_ADDR": "10.0.0.2"})

    assert [r.status_code for r in served] == [200] * 3
    assert_problem(refused, 429)
    assert "Retry-After" in refused.headers
    assert elsewhere.status_code == 200


def test_activation_is_rate_limited_too(make_app, db):
    limited = make_app(DCT_LOGIN_RATE_LIMIT="2 per minute").test_client()
    body = {"activation_code": "AAAA-BBBB-CCCC", "password": PASSWORD}

    answers = [limited.post(ACTIVATE, json=body).status_code for _ in range(3)]

    assert answers == [401, 401, 429]


def test_each_app_keeps_its_own_rate_limit_counters(make_app, db):
    first = make_app(DCT_LOGIN_RATE_LIMIT="2 per minute").test_client()
    second = make_app(DCT_LOGIN_RATE_LIMIT="2 per minute").test_client()
    body = {"email": "nobody@example.org", "password": PASSWORD}

    assert [first.post(LOGIN, json=body).status_code for _ in range(3)] == [401, 401, 429]

    assert second.post(LOGIN, json=body).status_code == 401


def test_refresh_and_me_are_not_login_rate_limited(make_app, db):
    limited = make_app(DCT_LOGIN_RATE_LIMIT="1 per minute").test_client()
    tokens = login(limited, make_staff(db, Role.ADMIN))

    for _ in range(3):
        tokens = refresh_with(limited, tokens["refresh_token"]).get_json()
        assert limited.get(ME, headers=bearer(tokens)).status_code == 200


# --- the caller's profile -------------------------------------------------------------


def test_me_describes_each_staff_role(client, db):
    world = make_world(db)
    expected = {
        world.admin: ("admin", [], []),
        world.coordinator_a: ("coordinator", [world.site_a.id], [world.study.id]),
        world.nurse_a: ("nurse", [world.site_a.id], [world.study.id]),
        world.monitor: ("monitor", [], [world.study.id]),
    }
    for user, (role, site_ids, study_ids) in expected.items():
        me = client.get(ME, headers=bearer(login(client, user)))

        assert me.status_code == 200
        body = me.get_json()
        assert body["id"] == str(user.id)
        assert body["role"] == role
        assert body["site_ids"] == [str(i) for i in site_ids]
        assert body["study_ids"] == [str(i) for i in study_ids]
        assert body["participant_id"] is None
        assert body["locale"] == "en"
        assert body["timezone"] == "Europe/Brussels"


def test_me_describes_a_patient_with_their_participation(client, db):
    world = make_world(db)
    patient = world.patient_a

    body = client.get(ME, headers=bearer(login(client, patient.user))).get_json()

    assert body["role"] == "patient"
    assert body["participant_id"] == str(patient.participant.id)
    assert body["site_ids"] == [str(world.site_a.id)]
    assert body["study_ids"] == [str(world.study.id)]
    assert body["locale"] == "nl"
    assert body["timezone"] == "Europe/Brussels"


def test_me_without_token_is_401_problem(client):
    response = client.get(ME)

    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "authorization", ["Bearer not-a-jwt", "Bearer a.b.c", "Basic dXNlcjpwYXNz"], ids=str
)
def test_me_with_garbage_token_is_401_problem(client, authorization):
    assert_problem(client.get(ME, headers={"Authorization": authorization}), 401)


def test_token_signed_with_another_key_is_401(client, db):
    admin = make_staff(db, Role.ADMIN)
    forged = pyjwt.encode(
        {"sub": str(admin.id), "type": "access", "sid": str(uuid.uuid4()), "jti": "x"}
        | {"fresh": False, "exp": utcnow() + dt.timedelta(minutes=5)},
        "some-other-secret-that-is-long-enough-for-hs256",
        algorithm="HS256",
    )

    assert_problem(client.get(ME, headers=bearer(forged)), 401)


def test_disabled_user_token_stops_working(client, db):
    admin = make_staff(db, Role.ADMIN)
    tokens = login(client, admin)
    db.execute(update(User).where(User.id == admin.id).values(is_active=False))
    db.flush()

    response = client.get(ME, headers=bearer(tokens))

    assert_problem(response, 401)
    assert_problem(refresh_with(client, tokens["refresh_token"]), 401)


def test_tokens_of_an_expired_session_stop_working(client, db):
    tokens = login(client, make_staff(db, Role.ADMIN))
    auth_session = db.get(AuthSession, uuid.UUID(claims(tokens["access_token"])["sid"]))
    auth_session.expires_at = utcnow() - dt.timedelta(seconds=1)
    db.flush()

    assert_problem(client.get(ME, headers=bearer(tokens)), 401)
    assert_problem(refresh_with(client, tokens["refresh_token"]), 401)


def test_an_ipv6_attacker_cannot_rotate_through_their_64(make_app, db):
    other = make_app(DCT_MAX_FAILED_LOGINS=3).test_client()
    admin = make_staff(db, Role.ADMIN)
    wrong = {"email": admin.email, "password": "not the password"}
    for host in range(1, 4):
        other.post(LOGIN, json=wrong, environ_base={"REMOTE_ADDR": f"2001:db8:1:2::{host}"})

    same_64 = other.post(
        LOGIN,
        json={"email": admin.email, "password": PASSWORD},
        environ_base={"REMOTE_ADDR": "2001:db8:1:2:ffff::9"},
    )
    next_64 = other.post(
        LOGIN,
        json={"email": admin.email, "password": PASSWORD},
        environ_base={"REMOTE_ADDR": "2001:db8:1:3::1"},
    )

    assert same_64.status_code == 401
    assert next_64.status_code == 200


def test_the_rate_limit_counts_an_ipv6_64_as_one_client(make_app, db):
    limited = make_app(DCT_LOGIN_RATE_LIMIT="2 per minute").test_client()
    admin = make_staff(db, Role.ADMIN)
    body = {"email": admin.email, "password": PASSWORD}

    answers = [
        limited.post(LOGIN, json=body, environ_base={"REMOTE_ADDR": f"2001:db8::{n}"}).status_code
        for n in range(1, 4)
    ]

    assert answers == [200, 200, 429]
