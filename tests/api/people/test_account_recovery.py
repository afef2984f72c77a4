"""Accounts that staff cannot take over: activation codes only before the first
password, reset codes that reach the holder alone, sessions that end when a password
is set anew, signatures held after a staff-triggered reset, and a log-in answer that
agrees with /me."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from consent.models import ConsentSignature
from scheduling import sms_dispatch
from services import passwords
from services.actor import Role
from services.db import utcnow
from services.models import ActivationCode, PasswordResetCode, SmsMessage, User
from services.notifications.gateway import TwilioGateway
from tests.api.consent.test_consent_signing import sign
from tests.checks import assert_problem, audit_events, count
from tests.conftest import joined_sessions
from tests.factories.consent import make_consent_document, record_discussion
from tests.factories.people import (
    PASSWORD,
    World,
    bearer,
    headers_for,
    login,
    make_participant,
    make_staff,
)
from tests.fakes.twilio import twilio_settings

RESET = "/api/v1/auth/password-reset"
CONFIRM = "/api/v1/auth/password-reset/confirm"
CHANGE = "/api/v1/auth/password"
NEW_PASSWORD = "a brand new passphrase 2026"
TAKER_PASSWORD = "the coordinator's choice 99"


def reset_codes_sent(db: Session, user: User) -> list[str]:
    """The reset codes in the holder's SMS, oldest first: what their phone receives."""
    db.expire_all()
    rows = db.scalars(
        select(SmsMessage)
        .where(SmsMessage.user_id == user.id, SmsMessage.template == "password_reset")
        .order_by(SmsMessage.created_at)
    )
    return [json.loads(row.params)["code"] for row in rows]


def confirm(client: FlaskClient, code: str, password: str = NEW_PASSWORD) -> Any:
    return client.post(CONFIRM, json={"code": code, "password": password})


def can_log_in(client: FlaskClient, user: User, password: str) -> bool:
    body = {"email": user.email} if user.email else {"phone": user.phone}
    return client.post("/api/v1/auth/login", json={**body, "password": password}).status_code == 200


def trigger(client: FlaskClient, world: World, who: str = "coordinator_a", **body: Any) -> Any:
    return client.post(
        f"/api/v1/participants/{world.patient_a.participant.id}/password-reset",
        json={"reason": "patient phoned: forgot password", **body},
        headers=headers_for(client, getattr(world, who)),
    )


# --- activation codes only before the first password --------------------------------------


def test_no_activation_code_for_a_participant_who_activated(client, db, world):
    patient = world.patient_a
    codes_before = count(db, ActivationCode)

    response = client.post(
        f"/api/v1/participants/{patient.participant.id}/activation-code",
        headers=headers_for(client, world.coordinator_a),
    )

    body = assert_problem(response, 409)
    assert "password-reset" in body["detail"]
    assert "activation_code" not in body
    assert count(db, ActivationCode) == codes_before
    assert can_log_in(client, patient.user, PASSWORD)


def test_a_participant_not_yet_activated_still_gets_a_new_code(client, db, world):
    newcomer = make_participant(db, world.site_a, activated=False, coordinator=world.coordinator_a)

    response = client.post(
        f"/api/v1/participants/{newcomer.participant.id}/activation-code",
        headers=headers_for(client, world.coordinator_a),
    )

    assert response.status_code == 201
    assert (
        client.post(
            "/api/v1/auth/activate",
            json={"activation_code": response.get_json()["activation_code"], "password": PASSWORD},
        ).status_code
        == 200
    )


def test_a_leftover_activation_code_cannot_replace_a_password(client, db, world):
    newcomer = make_participant(db, world.site_a, activated=False, coordinator=world.coordinator_a)
    # A second live code, as an older release could leave behind.
    leftover = passwords.new_activation_code()
    db.add(
        ActivationCode(
            user_id=newcomer.user.id,
            code_hash=passwords.hash_code(leftover),
            expires_at=utcnow() + dt.timedelta(hours=1),
        )
    )
    db.flush()
    activated = client.post(
        "/api/v1/auth/activate",
        json={"activation_code": newcomer.activation_code, "password": PASSWORD},
    )
    assert activated.status_code == 200

    taken = client.post(
        "/api/v1/auth/activate", json={"activation_code": leftover, "password": TAKER_PASSWORD}
    )

    assert "password-reset" in assert_problem(taken, 401)["detail"]
    assert not can_log_in(client, newcomer.user, TAKER_PASSWORD)
    assert can_log_in(client, newcomer.user, PASSWORD)


def test_staff_activation_code_only_for_a_staff_account_without_password(client, db, world):
    fresh = make_staff(db, Role.NURSE, sites=[world.site_a], activated=False)
    admin = headers_for(client, world.admin)

    issued = client.post(f"/api/v1/users/{fresh.id}/activation-code", headers=admin)
    refused = client.post(f"/api/v1/users/{world.nurse_a.id}/activation-code", headers=admin)

    assert issued.status_code == 201
    assert len(audit_events(db, "user.activation_code_issued", fresh.id)) == 1
    assert_problem(refused, 409)


@pytest.mark.parametrize("who", ["nurse_a", "monitor", "patient"])
def test_staff_activation_code_is_refused_to_other_roles(client, db, world, who):
    fresh = make_staff(db, Role.NURSE, sites=[world.site_a], activated=False)
    headers = headers_for(client, getattr(world, who) if who != "patient" else world.patient_a.user)

    response = client.post(f"/api/v1/users/{fresh.id}/activation-code", headers=headers)

    assert_problem(response, 403)


def test_staff_activation_code_of_another_site_is_not_found(client, db, world):
    fresh = make_staff(db, Role.NURSE, sites=[world.site_b], activated=False)

    response = client.post(
        f"/api/v1/users/{fresh.id}/activation-code",
        headers=headers_for(client, world.coordinator_a),
    )

    assert_problem(response, 404)


# --- self-service reset ----------------------------------------------------------------


def test_reset_request_answers_the_same_whether_or_not_the_account_exists(client, db, world):
    patient = world.patient_a
    unactivated = make_participant(db, world.site_a, activated=False)

    answers = [
        client.post(RESET, json={"email": patient.user.email}),
        client.post(RESET, json={"email": "nobody@example.org"}),
        client.post(RESET, json={"phone": "+32470000001"}),
        client.post(RESET, json={"email": unactivated.user.email}),
    ]

    assert {(r.status_code, r.get_data()) for r in answers} == {(202, answers[0].get_data())}
    assert "if an account" in answers[0].get_json()["detail"].lower()
    assert len(reset_codes_sent(db, patient.user)) == 1
    assert reset_codes_sent(db, unactivated.user) == []
    (event,) = audit_events(db, "auth.password_reset_requested", unactivated.user.id)
    assert event.after["outcome"].startswith("not activated")


def test_the_reset_code_is_never_in_an_answer_or_stored_in_clear(client, db, connection, world):
    response = client.post(RESET, json={"email": world.patient_a.user.email})
    (code,) = reset_codes_sent(db, world.patient_a.user)

    assert code not in response.get_data(as_text=True)
    stored = " ".join(
        str(value)
        for table in ("password_reset_codes", "sms_outbox")
        for row in connection.exec_driver_sql(f"SELECT * FROM {table}").all()  # noqa: S608
        for value in row
    ).upper()
    assert code.replace("-", "").upper() not in stored.replace("-", "")


def test_reset_sets_the_password_and_ends_every_session(client, db, world):
    patient = world.patient_a.user
    age_password(db, patient, 30)  # activated long ago: a plain self-service reset
    phone_tokens, tablet_tokens = login(client, patient), login(client, patient)

    client.post(RESET, json={"email": patient.email})
    (code,) = reset_codes_sent(db, patient)
    answer = confirm(client, code)

    assert answer.status_code == 200
    for old in (phone_tokens, tablet_tokens):
        assert_problem(client.get("/api/v1/me", headers=bearer(old)), 401)
        assert_problem(
            client.post("/api/v1/auth/refresh", headers=bearer(old["refresh_token"])), 401
        )
    assert client.get("/api/v1/me", headers=bearer(answer.get_json())).status_code == 200
    assert not can_log_in(client, patient, PASSWORD)
    assert can_log_in(client, patient, NEW_PASSWORD)
    (revoked,) = audit_events(db, "auth.sessions_revoked", patient.id)
    # The two log-ins here and the one the factory's activation opened.
    assert revoked.after == {"sessions": 3, "reason": "password_reset"}
    (reset,) = audit_events(db, "auth.password_reset", patient.id)
    assert reset.after == {"origin": "self_reset"}


def test_a_reset_code_works_once_and_only_the_newest_works(client, db, world):
    patient = world.patient_a.user
    client.post(RESET, json={"email": patient.email})
    client.post(RESET, json={"email": patient.email})
    first, second = reset_codes_sent(db, patient)

    assert_problem(confirm(client, first), 401)
    assert confirm(client, second).status_code == 200
    assert_problem(confirm(client, second, "yet another passphrase 1"), 401)
    assert can_log_in(client, patient, NEW_PASSWORD)


def test_an_expired_reset_code_is_refused(client, db, world):
    patient = world.patient_a.user
    client.post(RESET, json={"email": patient.email})
    (code,) = reset_codes_sent(db, patient)
    db.execute(
        update(PasswordResetCode)
        .where(PasswordResetCode.user_id == patient.id)
        .values(expires_at=utcnow() - dt.timedelta(seconds=1))
    )

    assert_problem(confirm(client, code), 401)
    assert can_log_in(client, patient, PASSWORD)


def test_a_weak_new_password_is_refused_and_the_code_stays_usable(client, db, world):
    patient = world.patient_a.user
    client.post(RESET, json={"email": patient.email})
    (code,) = reset_codes_sent(db, patient)

    weak = confirm(client, code, "short")

    assert assert_problem(weak, 422)["errors"]
    assert audit_events(db, "auth.password_reset", patient.id) == []
    assert confirm(client, code).status_code == 200


@pytest.mark.parametrize(
    "body",
    [{}, {"email": "a@example.org", "phone": "+32470000001"}, {"email": 5}, {"code": "x"}],
)
def test_a_malformed_reset_request_is_422(client, db, body):
    before = count(db, PasswordResetCode)

    assert_problem(client.post(RESET, json=body), 422)
    assert_problem(client.post(CONFIRM, json=body), 422)
    assert count(db, PasswordResetCode) == before


def test_reset_codes_are_capped_per_hour(client, db, world):
    patient = world.patient_a.user
    for _ in range(5):
        assert client.post(RESET, json={"email": patient.email}).status_code == 202

    assert len(reset_codes_sent(db, patient)) == 3
    outcomes = [
        e.after["outcome"] for e in audit_events(db, "auth.password_reset_requested", patient.id)
    ]
    assert outcomes == ["sent"] * 3 + ["hourly limit reached"] * 2


# --- resets staff trigger ------------------------------------------------------------


def test_a_coordinator_triggers_a_reset_but_never_sees_the_code(client, db, world):
    response = trigger(client, world)

    assert response.status_code == 202
    body = response.get_json()
    assert set(body) == {"user_id", "channel", "expires_at"}
    assert body["channel"] == "sms"
    (code,) = reset_codes_sent(db, world.patient_a.user)
    assert code not in response.get_data(as_text=True)
    (event,) = audit_events(db, "auth.password_reset_triggered", world.patient_a.user.id)
    assert event.reason == "patient phoned: forgot password"
    assert event.actor_id == world.coordinator_a.id


def test_a_triggered_reset_needs_a_reason(client, db, world):
    before = count(db, PasswordResetCode)

    for body in ({"reason": ""}, {"reason": None}, {"reason": 3}):
        assert_problem(trigger(client, world, **body), 422)
    assert_problem(
        client.post(
            f"/api/v1/participants/{world.patient_a.participant.id}/password-reset",
            json={},
            headers=headers_for(client, world.coordinator_a),
        ),
        422,
    )
    assert count(db, PasswordResetCode) == before


@pytest.mark.parametrize("who", ["nurse_a", "monitor", "admin"])
def test_only_coordinators_trigger_a_participant_reset(client, db, world, who):
    assert_problem(trigger(client, world, who), 403)
    assert reset_codes_sent(db, world.patient_a.user) == []


def test_a_coordinator_of_another_site_cannot_trigger_a_reset(client, db, world):
    assert_problem(trigger(client, world, "coordinator_b"), 404)


def test_a_patient_cannot_trigger_a_reset_for_someone(client, db, world):
    response = client.post(
        f"/api/v1/participants/{world.patient_b.participant.id}/password-reset",
        json={"reason": "not mine"},
        headers=headers_for(client, world.patient_a.user),
    )

    assert_problem(response, 403)


def test_a_reset_for_an_account_without_a_password_is_409(client, db, world):
    newcomer = make_participant(db, world.site_a, activated=False, coordinator=world.coordinator_a)

    response = client.post(
        f"/api/v1/participants/{newcomer.participant.id}/password-reset",
        json={"reason": "never activated"},
        headers=headers_for(client, world.coordinator_a),
    )

    assert "activation code" in assert_problem(response, 409)["detail"]


def test_staff_resets_follow_the_account_rules(client, db, world):
    admin, coordinator = headers_for(client, world.admin), headers_for(client, world.coordinator_a)
    body = {"reason": "forgot password"}

    by_admin = client.post(
        f"/api/v1/users/{world.coordinator_b.id}/password-reset", json=body, headers=admin
    )
    by_coordinator = client.post(
        f"/api/v1/users/{world.nurse_a.id}/password-reset", json=body, headers=coordinator
    )
    colleague = client.post(
        f"/api/v1/users/{world.coordinator_b.id}/password-reset", json=body, headers=coordinator
    )
    by_nurse = client.post(
        f"/api/v1/users/{world.coordinator_a.id}/password-reset",
        json=body,
        headers=headers_for(client, world.nurse_a),
    )

    assert by_admin.status_code == 409  # no phone on file: nowhere to send it
    assert by_coordinator.status_code == 409
    assert_problem(colleague, 404)
    assert_problem(by_nurse, 403)


def test_a_staff_member_with_a_phone_gets_the_code_by_sms(client, db, world):
    nurse = world.nurse_a
    nurse.phone = "+32470999888"
    db.flush()

    response = client.post(
        f"/api/v1/users/{nurse.id}/password-reset",
        json={"reason": "forgot password"},
        headers=headers_for(client, world.coordinator_a),
    )

    assert response.status_code == 202
    (code,) = reset_codes_sent(db, nurse)
    assert confirm(client, code).status_code == 200


# --- password change ---------------------------------------------------------------


def test_changing_the_password_ends_every_session_and_opens_a_new_one(client, db, world):
    nurse = world.nurse_a
    elsewhere, here = login(client, nurse), login(client, nurse)

    response = client.post(
        CHANGE,
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(here),
    )

    assert response.status_code == 200
    for old in (elsewhere, here):
        assert_problem(client.get("/api/v1/me", headers=bearer(old)), 401)
    assert client.get("/api/v1/me", headers=bearer(response.get_json())).status_code == 200
    assert can_log_in(client, nurse, NEW_PASSWORD)
    assert not can_log_in(client, nurse, PASSWORD)
    assert len(audit_events(db, "auth.password_change", nurse.id)) == 1
    (revoked,) = audit_events(db, "auth.sessions_revoked", nurse.id)
    assert revoked.after["reason"] == "password_change"


def test_a_wrong_current_password_is_refused_and_counted(client, db, world):
    nurse = world.nurse_a
    tokens = login(client, nurse)

    response = client.post(
        CHANGE,
        json={"current_password": "not it at all", "new_password": NEW_PASSWORD},
        headers=bearer(tokens),
    )

    assert_problem(response, 401)
    assert len(audit_events(db, "auth.reauth_failed", nurse.id)) == 1
    assert can_log_in(client, nurse, PASSWORD)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"current_password": PASSWORD, "new_password": PASSWORD}, "new_password"),
        ({"current_password": PASSWORD, "new_password": "short"}, "password"),
        ({"current_password": PASSWORD}, "new_password"),
        ({"new_password": NEW_PASSWORD}, "current_password"),
    ],
)
def test_a_bad_password_change_is_422_and_changes_nothing(client, db, world, body, field):
    nurse = world.nurse_a
    tokens = login(client, nurse)

    response = client.post(CHANGE, json=body, headers=bearer(tokens))

    assert field in assert_problem(response, 422)["errors"]
    assert client.get("/api/v1/me", headers=bearer(tokens)).status_code == 200
    assert can_log_in(client, nurse, PASSWORD)


def test_the_password_change_needs_a_log_in(client):
    response = client.post(CHANGE, json={"current_password": "x", "new_password": "y"})

    assert_problem(response, 401)


# --- signatures after a staff-influenced password -------------------------------------


@pytest.fixture
def document(db, world):
    document = make_consent_document(db, world.study)
    record_discussion(db, world.patient_a, world.coordinator_a)
    return document


def age_password(db: Session, user: User, hours: float) -> None:
    db.execute(
        update(User)
        .where(User.id == user.id)
        .values(password_set_at=utcnow() - dt.timedelta(hours=hours))
    )
    db.expire_all()


@pytest.mark.requirement("CONSENT-4")
def test_a_signature_after_a_staff_triggered_reset_is_held(client, db, world, document):
    patient = world.patient_a.user
    trigger(client, world)
    (code,) = reset_codes_sent(db, patient)
    assert confirm(client, code, PASSWORD).status_code == 200

    held = sign(client, patient, document, world.patient_a)

    body = assert_problem(held, 409)
    assert "11.300" in body["detail"]
    assert count(db, ConsentSignature) == 0
    age_password(db, patient, 25)
    assert sign(client, patient, document, world.patient_a).status_code == 201


def test_the_hold_is_configurable(make_app, db, world, document):
    other = make_app(DCT_SIGNATURE_HOLD_HOURS=1).test_client()
    patient = world.patient_a.user
    trigger(other, world)
    (code,) = reset_codes_sent(db, patient)
    assert confirm(other, code, PASSWORD).status_code == 200
    age_password(db, patient, 1.5)

    assert sign(other, patient, document, world.patient_a).status_code == 201


def test_changing_the_password_does_not_shed_the_hold(client, db, world, document):
    patient = world.patient_a.user
    trigger(client, world)
    (code,) = reset_codes_sent(db, patient)
    tokens = confirm(client, code, TAKER_PASSWORD).get_json()
    changed = client.post(
        CHANGE,
        json={"current_password": TAKER_PASSWORD, "new_password": PASSWORD},
        headers=bearer(tokens),
    )
    assert changed.status_code == 200

    assert_problem(sign(client, patient, document, world.patient_a), 409)


def test_a_reset_the_holder_asks_for_lifts_the_hold(client, db, world, document):
    patient = world.patient_a.user
    trigger(client, world)
    (staff_code,) = reset_codes_sent(db, patient)
    confirm(client, staff_code, TAKER_PASSWORD)

    client.post(RESET, json={"email": patient.email})
    own_code = reset_codes_sent(db, patient)[-1]
    assert confirm(client, own_code, PASSWORD).status_code == 200

    assert sign(client, patient, document, world.patient_a).status_code == 201


def test_a_self_reset_after_staff_changed_the_phone_counts_as_staff_triggered(
    client, db, world, document
):
    patient = world.patient_a
    changed = client.patch(
        f"/api/v1/participants/{patient.participant.id}",
        json={"phone": "+32470123123"},
        headers=headers_for(client, world.coordinator_a),
    )
    assert changed.status_code == 200
    client.post(RESET, json={"email": patient.user.email})
    (code,) = reset_codes_sent(db, patient.user)
    assert confirm(client, code, PASSWORD).status_code == 200

    assert_problem(sign(client, patient.user, document, patient), 409)
    (reset,) = audit_events(db, "auth.password_reset", patient.user.id)
    assert reset.after == {"origin": "staff_reset"}


def test_a_signature_soon_after_activation_is_flagged_on_its_manifestation(
    client, db, world, document
):
    signed = sign(client, world.patient_a.user, document, world.patient_a)

    assert signed.status_code == 201
    note = signed.get_json()["credential_note"]
    assert note.startswith("password set with a staff-issued activation code at ")
    listed = client.get(
        f"/api/v1/participants/{world.patient_a.participant.id}/consents",
        headers=headers_for(client, world.coordinator_a),
    ).get_json()
    assert [s["credential_note"] for c in listed for s in c["signatures"]] == [note]


def test_an_edited_credential_note_breaks_the_signature(client, db, world, document, dialect):
    signed = sign(client, world.patient_a.user, document, world.patient_a).get_json()
    if dialect == "postgresql":  # a database writer who can switch the guard off
        db.execute(
            text("ALTER TABLE consent_signatures DISABLE TRIGGER consent_signatures_append_only")
        )
    db.execute(
        update(ConsentSignature)
        .where(ConsentSignature.id == uuid.UUID(signed["id"]))
        .values(credential_note=None)
    )
    db.expire_all()

    listed = client.get(
        f"/api/v1/participants/{world.patient_a.participant.id}/consents",
        headers=headers_for(client, world.coordinator_a),
    ).get_json()

    assert [s["intact"] for c in listed for s in c["signatures"]] == [False]


def test_a_signature_long_after_activation_has_no_note(client, db, world, document):
    age_password(db, world.patient_a.user, 30)

    signed = sign(client, world.patient_a.user, document, world.patient_a)

    assert signed.get_json()["credential_note"] is None


# --- the log-in answer is the profile ----------------------------------------------


@pytest.mark.parametrize("who", ["admin", "coordinator_a", "nurse_a", "monitor", "patient"])
def test_the_log_in_and_refresh_user_is_the_same_as_me(client, world, who):
    user = world.patient_a.user if who == "patient" else getattr(world, who)

    tokens = login(client, user)
    me = client.get("/api/v1/me", headers=bearer(tokens)).get_json()
    refreshed = client.post("/api/v1/auth/refresh", headers=bearer(tokens["refresh_token"]))

    assert tokens["user"] == me
    assert refreshed.get_json()["user"] == me
    if who == "coordinator_a":
        assert me["study_ids"] == [str(world.study.id)]
    if who == "patient":
        assert me["participant_id"] == str(world.patient_a.participant.id)


# --- the code reaches the holder's phone ------------------------------------------


def test_the_reset_code_reaches_the_phone_at_once_even_at_night(
    client, db, connection, app, fake_twilio, world
):
    """Through the outbox, the dispatcher and the real Twilio SDK: a code the holder
    asked for at 23:30 is not held back for quiet hours, and only the holder's phone
    receives it."""
    patient = world.patient_a.user
    client.post(RESET, json={"email": patient.email})
    night = dt.datetime(2027, 1, 14, 23, 30, tzinfo=ZoneInfo("Europe/Brussels"))
    db.execute(update(SmsMessage).values(due_at=night, next_attempt_at=night))
    settings = {**app.config, **twilio_settings(fake_twilio)}

    sent = sms_dispatch.Dispatcher(
        joined_sessions(connection),
        TwilioGateway.from_settings(settings),
        settings,
        worker="test",
    ).dispatch(now=night.astimezone(dt.UTC))

    assert sent == 1
    (form,) = fake_twilio.requests
    (code,) = reset_codes_sent(db, patient)
    assert form["To"] == patient.phone
    assert code in form["Body"]
    assert confirm(client, code).status_code == 200


@pytest.mark.parametrize("who", ["nurse_a", "monitor", "patient"])
def test_staff_resets_are_refused_to_other_roles(client, db, world, who):
    headers = headers_for(client, world.patient_a.user if who == "patient" else getattr(world, who))

    response = client.post(
        f"/api/v1/users/{world.nurse_a.id}/password-reset",
        json={"reason": "forgot password"},
        headers=headers,
    )

    assert_problem(response, 403)
    assert count(db, PasswordResetCode) == 0


def test_a_coordinator_cannot_reset_a_nurse_of_another_site(client, db, world):
    nurse_b = make_staff(db, Role.NURSE, sites=[world.site_b])

    response = client.post(
        f"/api/v1/users/{nurse_b.id}/password-reset",
        json={"reason": "forgot password"},
        headers=headers_for(client, world.coordinator_a),
    )

    assert_problem(response, 404)


# --- what a second reader tried ------------------------------------------------------


def staff_changes_phone(client: FlaskClient, world: World, hours_ago: float, db: Session) -> None:
    patient = world.patient_a
    changed = client.patch(
        f"/api/v1/participants/{patient.participant.id}",
        json={"phone": "+32470999111"},
        headers=headers_for(client, world.coordinator_a),
    )
    assert changed.status_code == 200
    db.execute(
        update(User)
        .where(User.id == patient.user.id)
        .values(contact_changed_by_staff_at=utcnow() - dt.timedelta(hours=hours_ago))
    )


def test_a_phone_staff_set_long_ago_still_makes_a_self_reset_staff_triggered(
    client, db, world, document
):
    """Waiting out the hold after pointing the phone at oneself gains nothing: the mark
    stays until the holder sets their contact data themselves."""
    staff_changes_phone(client, world, 25, db)
    client.post(RESET, json={"email": world.patient_a.user.email})
    (code,) = reset_codes_sent(db, world.patient_a.user)
    assert confirm(client, code, PASSWORD).status_code == 200

    assert_problem(sign(client, world.patient_a.user, document, world.patient_a), 409)
    (reset,) = audit_events(db, "auth.password_reset", world.patient_a.user.id)
    assert reset.after == {"origin": "staff_reset"}


def test_the_holder_setting_their_own_phone_confirms_it(client, db, world, document):
    patient = world.patient_a
    staff_changes_phone(client, world, 25, db)
    own = client.patch(
        f"/api/v1/participants/{patient.participant.id}",
        json={"phone": "+32470999112"},
        headers=headers_for(client, patient.user),
    )
    assert own.status_code == 200
    client.post(RESET, json={"email": patient.user.email})
    (code,) = reset_codes_sent(db, patient.user)
    assert confirm(client, code, PASSWORD).status_code == 200
    age_password(db, patient.user, 25)

    assert sign(client, patient.user, document, patient).status_code == 201


def test_a_self_reset_right_after_activation_keeps_the_activation_flag(client, db, world):
    document = make_consent_document(db, world.study)
    newcomer = make_participant(db, world.site_a, activated=False, coordinator=world.coordinator_a)
    activated = client.post(
        "/api/v1/auth/activate",
        json={"activation_code": newcomer.activation_code, "password": PASSWORD},
    )
    assert activated.status_code == 200
    client.post(RESET, json={"email": newcomer.user.email})
    (code,) = reset_codes_sent(db, newcomer.user)
    assert confirm(client, code, PASSWORD).status_code == 200
    record_discussion(db, newcomer, world.coordinator_a)

    signed = sign(client, newcomer.user, document, newcomer)

    assert signed.get_json()["credential_note"].startswith("password set with a staff-issued")


def test_a_held_signature_is_audited(client, db, world, document):
    trigger(client, world)
    (code,) = reset_codes_sent(db, world.patient_a.user)
    confirm(client, code, PASSWORD)

    assert_problem(sign(client, world.patient_a.user, document, world.patient_a), 409)

    (held,) = audit_events(db, "consent.signature_held", document.id)
    assert held.after == {"password_set_via": "staff_reset", "signer_role": "participant"}
    assert held.participant_id == world.patient_a.participant.id


def test_a_coordinator_cannot_redirect_or_reset_a_nurse_shared_with_another_site(client, db, world):
    nurse = make_staff(db, Role.NURSE, sites=[world.site_a, world.site_b])
    coordinator = headers_for(client, world.coordinator_a)

    phone = client.patch(
        f"/api/v1/users/{nurse.id}", json={"phone": "+32470999222"}, headers=coordinator
    )
    reset = client.post(
        f"/api/v1/users/{nurse.id}/password-reset",
        json={"reason": "nurse phoned"},
        headers=coordinator,
    )
    by_admin = client.patch(
        f"/api/v1/users/{nurse.id}",
        json={"phone": "+32470999222"},
        headers=headers_for(client, world.admin),
    )

    assert "ask an admin" in assert_problem(phone, 403)["detail"]
    assert "ask an admin" in assert_problem(reset, 403)["detail"]
    assert by_admin.status_code == 200
    assert reset_codes_sent(db, nurse) == []


def test_a_blank_reason_is_refused(client, db, world):
    assert "reason" in assert_problem(trigger(client, world, reason="   "), 422)["errors"]
    assert reset_codes_sent(db, world.patient_a.user) == []


def test_staff_triggered_resets_share_the_hourly_cap(client, db, world):
    answers = [trigger(client, world).status_code for _ in range(4)]

    assert answers == [202, 202, 202, 409]
    assert len(reset_codes_sent(db, world.patient_a.user)) == 3


def test_a_replaced_code_cannot_be_claimed(client, db, world):
    """The claim itself checks the code is live, not only the read before it."""
    patient = world.patient_a.user
    client.post(RESET, json={"email": patient.email})
    (code,) = reset_codes_sent(db, patient)
    db.execute(update(PasswordResetCode).values(revoked_at=utcnow()))

    assert_problem(confirm(client, code), 401)
    assert can_log_in(client, patient, PASSWORD)
