"""Twilio's webhooks: signatures checked against PUBLIC_BASE_URL, status callbacks that
never move a message backwards, and STOP/START/HELP replies (an opt-out is not a
withdrawal)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from twilio.request_validator import RequestValidator
from werkzeug.test import TestResponse

from services.db import utcnow
from services.models import (
    AuditEvent,
    NotificationPreference,
    SmsEvent,
    SmsMessage,
    StudySmsSettings,
)
from services.notifications import content as sms_content
from services.notifications import inbound as sms_inbound
from services.notifications.gateway import STATUS_CALLBACK_PATH
from services.notifications.settings import DEFAULT_SENDER_NAME
from tests.checks import assert_problem, audit_events, captured_logs, count
from tests.factories.people import Patient, headers_for

BASE = "https://dct.example.org"
TOKEN = "webhook-test-auth-token"
STATUS = "/api/v1/webhooks/twilio/status"
INBOUND = "/api/v1/webhooks/twilio/inbound"
SENDER = DEFAULT_SENDER_NAME  # no StudySmsSettings row
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'


@pytest.fixture
def hook_app(make_app) -> Flask:
    return make_app(PUBLIC_BASE_URL=BASE, TWILIO_AUTH_TOKEN=TOKEN)


@pytest.fixture
def hooks(hook_app: Flask) -> FlaskClient:
    return hook_app.test_client()


def signature(url: str, form: dict[str, str], token: str = TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, form)


def post_signed(
    client: FlaskClient, path: str, form: dict[str, str], *, query: str = "", **headers: str
) -> TestResponse:
    """Post as Twilio does: the form, signed for our public URL."""
    headers.setdefault("X-Twilio-Signature", signature(BASE + path + query, form))
    return client.post(path + query, data=form, headers=headers)


def outbox_row(db: Session, patient: Patient, **fields: Any) -> SmsMessage:
    now = utcnow()
    values: dict[str, Any] = {
        "dedupe_key": f"test:{uuid.uuid4()}",
        "user_id": patient.user.id,
        "participant_id": patient.participant.id,
        "study_id": patient.participant.study_id,
        "template": "epro_open",
        "params": json.dumps({}),
        "relevance": {},
        "due_at": now,
        "next_attempt_at": now,
        "status": "sending",
        **fields,
    }
    message = SmsMessage(**values)
    db.add(message)
    db.flush()
    return message


def status_form(sid: str, status: str, error_code: int | None = None) -> dict[str, str]:
    form = {
        "AccountSid": "AC" + "f" * 32,
        "ApiVersion": "2010-04-01",
        "From": "+3225550100",
        "MessageSid": sid,
        "MessageStatus": status,
        "SmsSid": sid,
        "SmsStatus": status,
        "To": "+32470123456",
    }
    if error_code is not None:
        form["ErrorCode"] = str(error_code)
    return form


def callback(client: FlaskClient, message: SmsMessage, status: str, **kw: Any) -> TestResponse:
    sid = kw.pop("sid", None) or message.twilio_sid or "SM" + "a" * 32
    return post_signed(
        client, STATUS, status_form(sid, status, **kw), query=f"?message_id={message.id}"
    )


def inbound(client: FlaskClient, phone: str, body: str, sid: str | None = None) -> TestResponse:
    """An SMS to our number, as Twilio posts it: each a new MessageSid unless given."""
    form = {
        "AccountSid": "AC" + "f" * 32,
        "MessageSid": sid or "SM" + uuid.uuid4().hex,
        "From": phone,
        "To": "+3225550100",
        "Body": body,
    }
    return post_signed(client, INBOUND, form)


def reloaded(db: Session, message: SmsMessage) -> SmsMessage:
    db.expire_all()
    return db.get_one(SmsMessage, message.id)


def pending_of(db: Session, user_id: uuid.UUID) -> int:
    db.expire_all()
    query = select(func.count()).where(
        SmsMessage.user_id == user_id, SmsMessage.status == "pending"
    )
    return db.scalar(query) or 0


def preference(db: Session, user_id: uuid.UUID) -> NotificationPreference | None:
    db.expire_all()
    return db.get(NotificationPreference, user_id)


# --- signatures -----------------------------------------------------------------------


def test_the_gateways_callback_url_is_this_endpoint():
    assert STATUS_CALLBACK_PATH == STATUS


def test_a_valid_signature_for_the_public_url_is_accepted_behind_a_proxy(hooks, db, world):
    message = outbox_row(db, world.patient_a, twilio_sid="SM" + "1" * 32)

    # The app is reached as http://localhost; Twilio signed https://dct.example.org.
    response = callback(hooks, message, "delivered")

    assert response.status_code == 204
    assert reloaded(db, message).status == "delivered"


@pytest.mark.parametrize(
    "forge",
    ["tampered param", "tampered query", "other host", "host header", "wrong token", "missing"],
)
@pytest.mark.requirement("X-OPEN-SYSTEM")
def test_requests_not_signed_for_this_url_and_form_are_refused(hooks, db, world, forge):
    message = outbox_row(db, world.patient_a, twilio_sid="SM" + "1" * 32)
    query = f"?message_id={message.id}"
    form = status_form(message.twilio_sid, "delivered")
    url = BASE + STATUS + query
    sent, path, headers = dict(form), STATUS + query, {}
    if forge == "tampered param":
        sent["MessageStatus"] = "failed"
    elif forge == "tampered query":
        path = f"{STATUS}?message_id={uuid.uuid4()}"
    elif forge == "other host":
        url = "https://attacker.example" + STATUS + query
    elif forge == "host header":  # signed for the Host the request claims: not trusted
        url = "https://attacker.example" + STATUS + query
        headers["Host"] = "attacker.example"
    elif forge == "wrong token":
        headers["X-Twilio-Signature"] = signature(url, form, token="another-token")
    if forge != "missing":
        headers.setdefault("X-Twilio-Signature", signature(url, form))

    response = hooks.post(path, data=sent, headers=headers)

    assert_problem(response, 403)
    assert reloaded(db, message).status == "sending"
    assert count(db, SmsEvent) == 0


def test_without_a_configured_auth_token_nothing_is_accepted(make_app, db, world):
    client = make_app(PUBLIC_BASE_URL=BASE, TWILIO_AUTH_TOKEN="").test_client()
    form = {"From": world.patient_a.user.phone, "Body": "STOP"}

    response = post_signed(
        client, INBOUND, form, **{"X-Twilio-Signature": signature(BASE + INBOUND, form, token="")}
    )

    assert_problem(response, 403)
    assert preference(db, world.patient_a.user.id) is None


def test_a_body_that_is_not_a_form_is_refused(hooks):
    response = hooks.post(STATUS, json={"MessageSid": "SM1", "MessageStatus": "sent"})

    assert_problem(response, 415)


def test_a_signed_callback_without_a_status_is_invalid(hooks, db, world):
    message = outbox_row(db, world.patient_a)
    form = {"MessageSid": "SM" + "2" * 32}

    response = post_signed(hooks, STATUS, form, query=f"?message_id={message.id}")

    body = assert_problem(response, 422)
    assert "MessageStatus" in body["errors"]
    assert count(db, SmsEvent) == 0


# --- status callbacks -----------------------------------------------------------------


def test_a_callback_before_the_dispatcher_recorded_the_sid_records_it(hooks, db, world):
    message = outbox_row(db, world.patient_a)
    sid = "SM" + "3" * 32

    assert callback(hooks, message, "queued", sid=sid).status_code == 204

    stored = reloaded(db, message)
    assert (stored.status, stored.twilio_sid) == ("sent", sid)
    assert stored.sent_at is not None
    [event] = audit_events(db, "sms.status", message.id)
    assert (event.before, event.after) == (
        {"status": "sending"},
        {"status": "sent", "error_code": None},
    )
    assert event.participant_id == world.patient_a.participant.id
    assert event.site_id == world.site_a.id


def test_delivered_stays_delivered_and_late_callbacks_change_nothing(hooks, db, world):
    message = outbox_row(db, world.patient_a, status="sent", twilio_sid="SM" + "4" * 32)

    for status in ("delivered", "sent", "queued", "undelivered", "failed"):
        assert callback(hooks, message, status).status_code == 204

    stored = reloaded(db, message)
    assert stored.status == "delivered"
    assert stored.delivered_at is not None
    assert stored.error_code is None
    assert len(audit_events(db, "sms.status", message.id)) == 1
    assert count(db, SmsEvent) == 5  # every callback is kept, as received


def test_a_replayed_status_callback_is_acknowledged_and_kept_once(hooks, db, world):
    """One message gets one callback per status (queued, sent, delivered); the same
    (MessageSid, MessageStatus) again is a replay: 204 so Twilio stops, nothing kept."""
    message = outbox_row(db, world.patient_a, status="sending", twilio_sid="SM" + "e" * 32)

    for status in ("sent", "delivered", "delivered", "sent", "delivered"):
        assert callback(hooks, message, status).status_code == 204

    db.expire_all()
    kept = db.scalars(select(SmsEvent.status).order_by(SmsEvent.received_at)).all()
    assert sorted(kept) == ["delivered", "sent"]
    assert reloaded(db, message).status == "delivered"
    assert len(audit_events(db, "sms.status", message.id)) == 2


def test_a_replayed_failure_does_not_flag_the_phone_again(hooks, db, world):
    """A captured "undelivered, 21610" replayed after the person's START: the phone
    stays cleared."""
    user_id = world.patient_a.user.id
    message = outbox_row(db, world.patient_a, status="sent", twilio_sid="SM" + "f" * 32)
    assert callback(hooks, message, "undelivered", error_code=21610).status_code == 204
    inbound(hooks, world.patient_a.user.phone, "START")
    assert preference(db, user_id).phone_problem is None

    assert callback(hooks, message, "undelivered", error_code=21610).status_code == 204

    assert preference(db, user_id).phone_problem is None
    assert len(audit_events(db, "sms.phone_problem", user_id)) == 1


@pytest.mark.parametrize("sid", ["", "SM" + "0" * 80])
def test_a_callback_without_a_usable_sid_is_invalid(hooks, db, world, sid):
    message = outbox_row(db, world.patient_a)
    form = {"MessageSid": sid, "MessageStatus": "sent"}

    response = post_signed(hooks, STATUS, form, query=f"?message_id={message.id}")

    body = assert_problem(response, 422)
    assert "MessageSid" in body["errors"]
    assert count(db, SmsEvent) == 0


def test_an_error_code_beyond_its_column_is_invalid(hooks, db, world):
    """A signed callback is still input: an ErrorCode past int4 is 422, not a 500."""
    message = outbox_row(db, world.patient_a)
    form = status_form("SM" + "6" * 32, "failed", error_code=2**31)

    response = post_signed(hooks, STATUS, form, query=f"?message_id={message.id}")

    assert "ErrorCode" in assert_problem(response, 422)["errors"]
    assert count(db, SmsEvent) == 0


@pytest.mark.parametrize("field", ["MessageSid", "MessageStatus", "To"])
def test_a_nul_in_a_form_field_is_invalid(hooks, db, world, field):
    """PostgreSQL refuses NUL in text: caught at the edge as 422, before any view."""
    message = outbox_row(db, world.patient_a)
    form = {**status_form("SM" + "7" * 32, "sent"), field: "sent\x00"}

    response = post_signed(hooks, STATUS, form, query=f"?message_id={message.id}")

    assert field in assert_problem(response, 422)["errors"]
    assert count(db, SmsEvent) == 0


def test_a_callback_found_by_sid_alone(hooks, db, world):
    sid = "SM" + "5" * 32
    message = outbox_row(db, world.patient_a, status="sent", twilio_sid=sid)

    response = post_signed(hooks, STATUS, status_form(sid, "delivered"))

    assert response.status_code == 204
    assert reloaded(db, message).status == "delivered"


def test_a_callback_for_an_unknown_message_is_kept_and_acknowledged(hooks, db):
    response = post_signed(
        hooks, STATUS, status_form("SM" + "6" * 32, "sent"), query=f"?message_id={uuid.uuid4()}"
    )

    assert response.status_code == 204
    [event] = db.scalars(select(SmsEvent)).all()
    assert event.message_id is None and event.status == "sent"


def test_a_callback_for_another_send_of_the_row_is_ignored(hooks, db, world):
    message = outbox_row(db, world.patient_a, status="sent", twilio_sid="SM" + "7" * 32)

    callback(hooks, message, "failed", sid="SM" + "8" * 32, error_code=30005)

    stored = reloaded(db, message)
    assert (stored.status, stored.twilio_sid) == ("sent", "SM" + "7" * 32)
    assert preference(db, world.patient_a.user.id) is None


@pytest.mark.parametrize("code", [21610, 30003, 30004, 30005, 30006])
def test_undelivered_to_a_bad_phone_flags_it_for_the_coordinator(hooks, db, world, code):
    message = outbox_row(db, world.patient_a, status="sent", twilio_sid="SM" + "9" * 32)

    callback(hooks, message, "undelivered", error_code=code)

    stored = reloaded(db, message)
    assert (stored.status, stored.error_code) == ("undelivered", code)
    flagged = preference(db, world.patient_a.user.id)
    assert flagged is not None and flagged.phone_problem.startswith(str(code))
    assert flagged.phone_problem_at is not None
    [event] = audit_events(db, "sms.phone_problem", world.patient_a.user.id)
    assert event.site_id == world.site_a.id and event.after == {"error_code": code}


def test_undelivered_for_a_carrier_reason_does_not_flag_the_phone(hooks, db, world):
    message = outbox_row(db, world.patient_a, status="sent", twilio_sid="SM" + "a" * 32)

    callback(hooks, message, "undelivered", error_code=30008)

    assert reloaded(db, message).error_code == 30008
    assert preference(db, world.patient_a.user.id) is None


@pytest.mark.parametrize(
    ("current", "incoming", "expected"),
    [
        ("pending", "sent", "sent"),  # the answer was lost, Twilio has it: no resend
        ("sending", "delivered", "delivered"),
        ("sent", "sending", "sent"),
        ("sent", "undelivered", "undelivered"),
        ("undelivered", "failed", "undelivered"),
        ("failed", "delivered", "delivered"),
        ("delivered", "failed", "delivered"),
        ("sent", "receiving", "sent"),  # not a status we track
    ],
)
def test_status_only_moves_forward(db, world, current, incoming, expected):
    message = outbox_row(db, world.patient_a, status=current, twilio_sid="SM" + "b" * 32)

    found = sms_inbound.record_status(db, message.id, message.twilio_sid, incoming, None)

    assert found is message
    assert message.status == expected


def test_a_nurses_message_changes_without_a_participant_audit(db, world):
    now = utcnow()
    message = SmsMessage(
        dedupe_key=f"nurse:{uuid.uuid4()}",
        user_id=world.nurse_a.id,
        template="nurse_next_day",
        params=json.dumps({}),
        relevance={},
        due_at=now,
        next_attempt_at=now,
        status="sent",
        twilio_sid="SM" + "c" * 32,
    )
    db.add(message)
    db.flush()

    sms_inbound.record_status(db, message.id, message.twilio_sid, "delivered", None)

    assert message.status == "delivered"
    assert audit_events(db, "sms.status", message.id) == []


# --- inbound: STOP, START, HELP ------------------------------------------------------


def reply_of(response: TestResponse) -> str:
    assert response.status_code == 200
    assert response.mimetype == "text/xml"
    return response.get_data(as_text=True)


def twiml(text: str) -> str:
    return f'<?xml version="1.0" encoding="UTF-8"?><Response><Message>{text}</Message></Response>'


@pytest.mark.parametrize(
    "body",
    [
        "STOP",
        "STOPALL",
        "UNSUBSCRIBE",
        "END",
        "QUIT",
        "CANCEL",
        "OPTOUT",
        "REVOKE",
        "stop",
        "Stop",
        "  stop \n",
        "\tOptOut ",
    ],
)
@pytest.mark.requirement("SMS-3")
def test_stop_opts_the_number_out_and_confirms_once(hooks, db, world, body):
    """Planned reminders stay planned: the dispatcher skips those due while opted out,
    and those due after a START still go."""
    patient = world.patient_a
    pending = outbox_row(db, patient, status="pending")
    sent = outbox_row(db, patient, status="sent", twilio_sid="SM" + "d" * 32)
    planned = pending_of(db, patient.user.id)  # with the activation code SMS

    response = inbound(hooks, patient.user.phone, body)

    assert reply_of(response) == twiml(sms_content.render("opt_out_confirm", "nl", {}, SENDER))
    assert preference(db, patient.user.id).opted_out_at is not None
    assert (reloaded(db, pending).status, reloaded(db, pending).status_reason) == (
        "pending",
        None,
    )
    assert reloaded(db, sent).status == "sent"
    assert pending_of(db, patient.user.id) == planned
    [event] = audit_events(db, "sms.opt_out", patient.user.id)
    assert event.participant_id == patient.participant.id
    assert event.site_id == world.site_a.id  # the site's coordinators see it
    assert event.after == {"opted_out": True}
    assert db.scalars(select(SmsEvent.keyword)).all() == [body.strip().upper()]


@pytest.mark.requirement("SMS-7")
def test_opting_out_is_not_a_withdrawal(hooks, db, world):
    participant = world.patient_a.participant
    participant.status, participant.consent_state = "enrolled", "complete"
    db.flush()
    chain = f"participant:{participant.id}"
    before = set(db.scalars(select(AuditEvent.id).where(AuditEvent.chain == chain)))

    inbound(hooks, world.patient_a.user.phone, "STOP")

    db.refresh(participant)
    assert (participant.status, participant.consent_state) == ("enrolled", "complete")
    assert participant.contact_allowed is True
    new = db.scalars(
        select(AuditEvent.action).where(AuditEvent.chain == chain, AuditEvent.id.not_in(before))
    ).all()
    assert new == ["sms.opt_out"]
    assert preference(db, world.patient_a.user.id).sms_enabled is True


@pytest.mark.requirement("SMS-3")
def test_a_replayed_stop_after_start_changes_nothing(hooks, db, world):
    """A signed STOP captured and sent again after the person's START: acknowledged
    with an empty answer (no second confirmation), the number stays opted in."""
    phone, user_id = world.patient_a.user.phone, world.patient_a.user.id
    stop_sid = "SM" + "5" * 32
    assert "<Message>" in reply_of(inbound(hooks, phone, "STOP", sid=stop_sid))
    assert "<Message>" in reply_of(inbound(hooks, phone, "START"))

    replayed = inbound(hooks, phone, "STOP", sid=stop_sid)

    assert reply_of(replayed) == EMPTY_TWIML
    assert preference(db, user_id).opted_out_at is None
    assert len(audit_events(db, "sms.opt_out", user_id)) == 1
    assert len(audit_events(db, "sms.opt_in", user_id)) == 1
    db.expire_all()
    kept = db.scalars(select(SmsEvent.twilio_sid).where(SmsEvent.kind == "inbound")).all()
    assert len(kept) == 2 and stop_sid in kept


def test_a_replayed_message_that_is_not_a_keyword_is_kept_once(hooks, db, world):
    sid = "SM" + "6" * 32

    for _ in range(3):
        assert reply_of(inbound(hooks, world.patient_a.user.phone, "hello", sid=sid)) == EMPTY_TWIML

    assert count(db, SmsEvent) == 1


@pytest.mark.parametrize("sid", [None, "", "SM" + "0" * 80])
def test_an_inbound_sms_without_a_usable_sid_is_invalid(hooks, db, world, sid):
    form = {"From": world.patient_a.user.phone, "Body": "STOP"}
    if sid is not None:
        form["MessageSid"] = sid

    response = post_signed(hooks, INBOUND, form)

    body = assert_problem(response, 422)
    assert "MessageSid" in body["errors"]
    assert preference(db, world.patient_a.user.id) is None
    assert count(db, SmsEvent) == 0


def test_a_second_stop_confirms_again_without_a_second_audit(hooks, db, world):
    phone = world.patient_a.user.phone

    inbound(hooks, phone, "STOP")
    response = inbound(hooks, phone, "stop")

    assert "<Message>" in reply_of(response)
    assert len(audit_events(db, "sms.opt_out", world.patient_a.user.id)) == 1


@pytest.mark.parametrize(
    "body", ["stop please", "STOP!", "please stop", "STOP STOP", "", "Yes please", "helpme"]
)
def test_anything_but_a_whole_keyword_gets_no_reply(hooks, db, world, body):
    response = inbound(hooks, world.patient_a.user.phone, body)

    assert reply_of(response) == EMPTY_TWIML
    assert preference(db, world.patient_a.user.id) is None
    assert audit_events(db, "sms.opt_out", world.patient_a.user.id) == []


@pytest.mark.parametrize("body", ["START", "yes", " Unstop "])
def test_start_opts_back_in(hooks, db, world, body):
    phone, user_id = world.patient_a.user.phone, world.patient_a.user.id
    inbound(hooks, phone, "STOP")

    response = inbound(hooks, phone, body)

    assert reply_of(response) == twiml(sms_content.render("opt_in_confirm", "nl", {}, SENDER))
    assert preference(db, user_id).opted_out_at is None
    [event] = audit_events(db, "sms.opt_in", user_id)
    assert event.participant_id == world.patient_a.participant.id


def test_start_lifts_a_carrier_unsubscription_but_not_other_phone_problems(db, world):
    user_id = world.patient_a.user.id
    sms_inbound.handle_inbound(db, world.patient_a.user.phone, "STOP")
    sms_inbound.flag_phone(db, user_id, 21610)

    sms_inbound.handle_inbound(db, world.patient_a.user.phone, "START")

    assert db.get_one(NotificationPreference, user_id).phone_problem is None
    sms_inbound.handle_inbound(db, world.patient_a.user.phone, "STOP")
    sms_inbound.flag_phone(db, user_id, 30005)
    sms_inbound.handle_inbound(db, world.patient_a.user.phone, "START")
    assert db.get_one(NotificationPreference, user_id).phone_problem.startswith("30005")


def test_start_lifts_a_21610_flag_without_an_opt_out_of_ours(hooks, db, world):
    """The STOP reached Twilio only (its own opt-out handling): a send then failed
    with 21610 and flagged the phone. START lifts it all the same."""
    user_id = world.patient_a.user.id
    sms_inbound.flag_phone(db, user_id, 21610)
    db.flush()

    response = inbound(hooks, world.patient_a.user.phone, "START")

    assert reply_of(response) == twiml(sms_content.render("opt_in_confirm", "nl", {}, SENDER))
    flagged = preference(db, user_id)
    assert (flagged.phone_problem, flagged.phone_problem_at, flagged.opted_out_at) == (
        None,
        None,
        None,
    )
    [event] = audit_events(db, "sms.opt_in", user_id)
    assert event.after == {"opted_out": False, "phone_problem_cleared": True}


def test_start_without_an_opt_out_or_a_21610_changes_nothing(hooks, db, world):
    user_id = world.patient_a.user.id
    sms_inbound.flag_phone(db, user_id, 21211)
    db.flush()

    inbound(hooks, world.patient_a.user.phone, "START")

    assert preference(db, user_id).phone_problem == "21211: not a valid phone number"
    assert audit_events(db, "sms.opt_in", user_id) == []


@pytest.mark.requirement("SMS-4")
def test_help_answers_the_studys_contact(hooks, db, world):
    db.add(
        StudySmsSettings(
            study_id=world.study.id, sender_name="Kestrel", help_contact="+32 2 555 01 23", rules={}
        )
    )
    db.flush()

    response = inbound(hooks, world.patient_a.user.phone, " help ")

    expected = sms_content.render("help", "nl", {"contact": "+32 2 555 01 23"}, "Kestrel")
    assert reply_of(response) == twiml(expected)
    assert preference(db, world.patient_a.user.id) is None  # HELP changes nothing


@pytest.mark.requirement("SMS-4")
def test_help_without_study_settings_uses_the_defaults(hooks, db, world):
    response = inbound(hooks, world.patient_a.user.phone, "HELP")

    expected = sms_content.render("help", "nl", {"contact": "your study team"}, SENDER)
    assert reply_of(response) == twiml(expected)


def test_the_reply_is_in_the_recipients_preferred_language(hooks, db, world):
    db.add(NotificationPreference(user_id=world.patient_a.user.id, locale="fr"))
    db.flush()

    response = inbound(hooks, world.patient_a.user.phone, "STOP")

    assert reply_of(response) == twiml(sms_content.render("opt_out_confirm", "fr", {}, SENDER))


def test_an_unknown_number_gets_no_reply_and_changes_nothing(hooks, db, world):
    response = inbound(hooks, "+32470000042", "STOP")

    assert reply_of(response) == EMPTY_TWIML
    assert count(db, NotificationPreference) == 0


def test_a_sender_that_is_not_a_phone_number_gets_no_reply(db):
    assert sms_inbound.handle_inbound(db, "TWILIO", "STOP") is None


def test_stop_opts_out_every_account_with_that_phone(hooks, db, world):
    patient, nurse = world.patient_a.user, world.nurse_a
    nurse.phone, nurse.phone_index = patient.phone, patient.phone_index
    db.flush()

    inbound(hooks, patient.phone, "STOP")

    assert preference(db, patient.id).opted_out_at is not None
    assert preference(db, nurse.id).opted_out_at is not None
    [event] = audit_events(db, "sms.opt_out", nurse.id)
    assert event.chain == f"user:{nurse.id}"


def test_the_senders_number_is_never_logged(hook_app, hooks, world):
    phone = world.patient_a.user.phone

    with captured_logs("DEBUG") as logs:
        inbound(hooks, phone, "STOP")
        inbound(hooks, phone, "something else")

    written = logs.getvalue()
    assert "/webhooks/twilio/inbound" in written  # the access line is there
    assert phone not in written and phone.lstrip("+") not in written


@pytest.mark.requirement("SMS-7")
def test_the_site_sees_the_opt_out_on_the_participant(hooks, db, world):
    """A STOP shows on the participant for their coordinator, not for a monitor."""
    patient = world.patient_a
    assert inbound(hooks, patient.user.phone, "STOP").status_code == 200
    url = f"/api/v1/participants/{patient.participant.id}"

    seen = hooks.get(url, headers=headers_for(hooks, world.coordinator_a)).get_json()
    pseudonymised = hooks.get(url, headers=headers_for(hooks, world.monitor)).get_json()

    assert seen["sms"]["opted_out_at"] is not None
    assert seen["sms"]["phone_problem"] is None
    assert seen["status"] == patient.participant.status  # not a withdrawal
    assert "sms" not in pseudonymised
