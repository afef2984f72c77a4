"""GET/PUT /me/notification-preferences and GET/PUT /studies/{id}/sms-settings."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from services.actor import Role
from services.models import NotificationPreference, StudySmsSettings, User
from services.notifications.settings import DEFAULT_RULES
from tests.checks import assert_problem, audit_events, count
from tests.factories.people import World, headers_for, make_site, make_staff, random_id, user_of

PREFERENCES = "/api/v1/me/notification-preferences"
CHOSEN = {"sms_enabled": True, "locale": "fr", "send_from": "09:30", "send_until": "19:00"}
SETTINGS = {
    "sender_name": "Brussels R1",
    "help_contact": "+32 2 555 12 34",
    "rules": {"visit_morning": False, "reconsent_max": 2},
}


def put_preferences(client: FlaskClient, user: User, body: object) -> TestResponse:
    return client.put(PREFERENCES, json=body, headers=headers_for(client, user))


def settings_url(study_id: object) -> str:
    return f"/api/v1/studies/{study_id}/sms-settings"


def put_settings(client: FlaskClient, user: User, study_id: object, body: object) -> TestResponse:
    return client.put(settings_url(study_id), json=body, headers=headers_for(client, user))


def get_settings(client: FlaskClient, user: User, study_id: object) -> TestResponse:
    return client.get(settings_url(study_id), headers=headers_for(client, user))


# --- preferences --------------------------------------------------------------------


def test_defaults_apply_until_preferences_are_saved(client, db, world):
    patient = client.get(PREFERENCES, headers=headers_for(client, world.patient_a.user))
    nurse = client.get(PREFERENCES, headers=headers_for(client, world.nurse_a))

    assert patient.status_code == 200
    assert patient.get_json() == {
        "sms_enabled": True,
        "locale": "nl",  # the account's language
        "send_from": "08:00",
        "send_until": "21:00",
        "opted_out_at": None,
    }
    assert nurse.get_json()["locale"] == "en"
    assert count(db, NotificationPreference) == 0


@pytest.mark.requirement("SMS-2")
def test_a_patient_saves_preferences_and_the_change_is_audited(client, db, world):
    user = world.patient_a.user

    response = put_preferences(client, user, CHOSEN)

    assert response.status_code == 200
    assert response.get_json() == {**CHOSEN, "opted_out_at": None}
    row = db.get(NotificationPreference, user.id)
    assert (row.locale, row.send_from, row.send_until, row.sms_enabled) == (
        "fr",
        "09:30",
        "19:00",
        True,
    )
    (event,) = audit_events(db, "user.notification_preferences", user.id)
    assert event.participant_id == world.patient_a.participant.id
    assert (event.before, event.after) == (None, CHOSEN)
    again = client.get(PREFERENCES, headers=headers_for(client, user))
    assert again.get_json() == response.get_json()


def test_a_second_save_records_what_it_replaced(client, db, world):
    user = world.nurse_a
    put_preferences(client, user, CHOSEN)
    off = {**CHOSEN, "sms_enabled": False, "send_from": "08:00", "send_until": "21:00"}

    response = put_preferences(client, user, off)

    assert response.status_code == 200
    assert count(db, NotificationPreference) == 1
    first, second = audit_events(db, "user.notification_preferences", user.id)
    assert first.participant_id is None and first.chain == f"user:{user.id}"
    assert (second.before, second.after) == (CHOSEN, off)


def test_an_opt_out_is_shown_and_not_undone_by_switching_sms_on(client, db, world):
    user = world.patient_a.user
    stopped = dt.datetime(2026, 3, 2, 18, 0, tzinfo=dt.UTC)
    db.add(NotificationPreference(user_id=user.id, sms_enabled=True, opted_out_at=stopped))
    db.flush()

    shown = client.get(PREFERENCES, headers=headers_for(client, user))
    saved = put_preferences(client, user, CHOSEN)

    assert shown.get_json()["opted_out_at"] == "2026-03-02T18:00:00Z"
    assert saved.get_json()["opted_out_at"] == "2026-03-02T18:00:00Z"
    db.expire_all()
    assert db.get(NotificationPreference, user.id).opted_out_at == stopped


@pytest.mark.parametrize("who", ["coordinator_a", "monitor", "admin"])
def test_only_patients_and_nurses_have_preferences(client, db, world, who):
    user = user_of(world, who)

    assert_problem(client.get(PREFERENCES, headers=headers_for(client, user)), 403)
    assert_problem(put_preferences(client, user, CHOSEN), 403)
    assert count(db, NotificationPreference) == 0


def test_preferences_need_a_token(client, db, world):
    assert_problem(client.get(PREFERENCES), 401)
    assert_problem(client.put(PREFERENCES, json=CHOSEN), 401)


BAD_PREFERENCES: dict[str, tuple[dict[str, Any], str]] = {
    "starts before 08:00": ({"send_from": "07:59"}, "send_from"),
    "ends after 21:00": ({"send_until": "21:01"}, "send_until"),
    "empty window": ({"send_from": "12:00", "send_until": "12:00"}, "send_until"),
    "ends before it starts": ({"send_from": "18:00", "send_until": "09:00"}, "send_until"),
    "not HH:MM": ({"send_from": "9:00"}, "send_from"),
    "no such hour": ({"send_until": "24:00"}, "send_until"),
    "unknown language": ({"locale": "it"}, "locale"),
    "not a boolean": ({"sms_enabled": "yes"}, "sms_enabled"),
    "a number for a boolean": ({"sms_enabled": 1}, "sms_enabled"),
    "opt-out is read-only": ({"opted_out_at": None}, "opted_out_at"),
}


@pytest.mark.parametrize(("change", "field"), BAD_PREFERENCES.values(), ids=BAD_PREFERENCES)
def test_invalid_preferences_are_refused_and_nothing_is_stored(client, db, world, change, field):
    user = world.patient_a.user

    response = put_preferences(client, user, {**CHOSEN, **change})

    assert field in assert_problem(response, 422)["errors"]
    assert count(db, NotificationPreference) == 0
    assert audit_events(db, "user.notification_preferences", user.id) == []


@pytest.mark.parametrize("missing", sorted(CHOSEN))
def test_every_preference_is_required(client, db, world, missing):
    body = {k: v for k, v in CHOSEN.items() if k != missing}

    response = put_preferences(client, world.nurse_a, body)

    assert missing in assert_problem(response, 422)["errors"]
    assert count(db, NotificationPreference) == 0


def test_the_whole_allowed_window_is_accepted(client, db, world):
    body = {**CHOSEN, "send_from": "08:00", "send_until": "21:00", "locale": "de"}

    assert put_preferences(client, world.patient_a.user, body).get_json()["send_until"] == "21:00"


# --- a study's SMS settings ---------------------------------------------------------


def foreign_coordinator(db: Session, world: World) -> User:
    return make_staff(db, Role.COORDINATOR, sites=[make_site(db, world.other_study)])


def test_a_study_has_default_settings_until_its_coordinator_saves_them(client, db, world):
    for reader in ("coordinator_a", "coordinator_b", "monitor"):
        response = get_settings(client, user_of(world, reader), world.study.id)
        assert response.status_code == 200, reader
        assert response.get_json() == {
            "study_id": str(world.study.id),
            "sender_name": "Research",
            "help_contact": "",
            "rules": DEFAULT_RULES,
            "updated_at": None,
        }
    assert count(db, StudySmsSettings) == 0


def test_a_coordinator_saves_settings_and_the_change_is_audited(client, db, world):
    response = put_settings(client, world.coordinator_a, world.study.id, SETTINGS)

    assert response.status_code == 200
    body = response.get_json()
    rules = {**DEFAULT_RULES, "visit_morning": False, "reconsent_max": 2}
    assert (body["sender_name"], body["help_contact"], body["rules"]) == (
        "Brussels R1",
        "+32 2 555 12 34",
        rules,
    )
    assert body["updated_at"].endswith("Z")
    row = db.get(StudySmsSettings, world.study.id)
    assert (row.sender_name, row.rules) == ("Brussels R1", rules)
    (event,) = audit_events(db, "study.sms_settings", world.study.id)
    assert event.study_id == world.study.id
    assert event.before is None
    assert event.after == {**SETTINGS, "rules": rules}
    assert get_settings(client, world.monitor, world.study.id).get_json() == body


def test_a_later_save_replaces_the_rules_and_records_the_previous_settings(client, db, world):
    put_settings(client, world.coordinator_a, world.study.id, SETTINGS)
    change = {"sender_name": "  Team A ", "help_contact": "Reply to the study team"}

    response = put_settings(client, world.coordinator_b, world.study.id, change)

    assert response.status_code == 200
    assert response.get_json()["sender_name"] == "Team A"
    assert response.get_json()["rules"] == DEFAULT_RULES
    first, second = audit_events(db, "study.sms_settings", world.study.id)
    assert second.before == first.after
    assert count(db, StudySmsSettings) == 1


@pytest.mark.parametrize("who", ["nurse_a", "patient", "admin"])
def test_only_coordinators_and_monitors_read_the_settings(client, db, world, who):
    assert_problem(get_settings(client, user_of(world, who), world.study.id), 403)


@pytest.mark.parametrize("who", ["monitor", "nurse_a", "patient", "admin"])
def test_only_coordinators_change_the_settings(client, db, world, who):
    assert_problem(put_settings(client, user_of(world, who), world.study.id, SETTINGS), 403)
    assert count(db, StudySmsSettings) == 0


def test_another_studys_settings_are_not_found(client, db, world):
    outsider = foreign_coordinator(db, world)

    assert_problem(get_settings(client, outsider, world.study.id), 404)
    assert_problem(put_settings(client, outsider, world.study.id, SETTINGS), 404)
    assert_problem(get_settings(client, world.other_monitor, world.study.id), 404)
    assert_problem(put_settings(client, world.coordinator_a, world.other_study.id, SETTINGS), 404)
    assert_problem(get_settings(client, world.coordinator_a, random_id()), 404)
    assert count(db, StudySmsSettings) == 0


BAD_SETTINGS: dict[str, tuple[dict[str, Any], str]] = {
    "empty sender": ({"sender_name": "   "}, "sender_name"),
    "sender too long": ({"sender_name": "Brussels R12"}, "sender_name"),
    "sender with symbols": ({"sender_name": "Team-A"}, "sender_name"),
    "sender without a letter": ({"sender_name": "12345"}, "sender_name"),
    "sender naming a condition": ({"sender_name": "CardioCare"}, "sender_name"),
    "sender in capitals naming one": ({"sender_name": "MYHEART"}, "sender_name"),
    "sender naming a drug trial": ({"sender_name": "Insulin T2"}, "sender_name"),
    "empty contact": ({"help_contact": ""}, "help_contact"),
    "contact too long": ({"help_contact": "x" * 65}, "help_contact"),
    "contact on two lines": ({"help_contact": "call\nus"}, "help_contact"),
    "contact not a valid phone": ({"help_contact": "+32 12"}, "help_contact"),
    "contact naming a condition": ({"help_contact": "Oncology desk"}, "help_contact"),
    "unknown rule": ({"rules": {"visit_1h": True}}, "rules.visit_1h"),
    "rule not a boolean": ({"rules": {"visit_24h": "yes"}}, "rules.visit_24h"),
    "count not an integer": ({"rules": {"reconsent_max": True}}, "rules.reconsent_max"),
    "count too high": ({"rules": {"reconsent_max": 11}}, "rules.reconsent_max"),
    "interval zero": ({"rules": {"reconsent_every_days": 0}}, "rules.reconsent_every_days"),
    "rules not an object": ({"rules": [True]}, "rules"),
}


@pytest.mark.parametrize(("change", "field"), BAD_SETTINGS.values(), ids=BAD_SETTINGS)
def test_invalid_settings_are_refused_and_nothing_is_stored(client, db, world, change, field):
    response = put_settings(client, world.coordinator_a, world.study.id, {**SETTINGS, **change})

    assert field in assert_problem(response, 422)["errors"]
    assert count(db, StudySmsSettings) == 0
    assert audit_events(db, "study.sms_settings", world.study.id) == []


def test_a_sender_name_revealing_a_condition_says_what_it_found(client, db, world):
    body = {**SETTINGS, "sender_name": "Hart Studie"}

    response = put_settings(client, world.coordinator_a, world.study.id, body)

    assert "hart" in assert_problem(response, 422)["errors"]["sender_name"][0]


@pytest.mark.parametrize("missing", ["sender_name", "help_contact"])
def test_sender_and_contact_are_required(client, db, world, missing):
    body = {k: v for k, v in SETTINGS.items() if k != missing}

    response = put_settings(client, world.coordinator_a, world.study.id, body)

    assert missing in assert_problem(response, 422)["errors"]
    assert count(db, StudySmsSettings) == 0
