"""The SMS gateways: the real Twilio SDK against a local fake Twilio (exact form fields,
each error class, reconciliation after a lost answer) and the console gateway's log."""

from __future__ import annotations

import datetime as dt
import socket
import uuid

import pytest

from services.sms_gateway import (
    ConsoleGateway,
    PermanentSmsError,
    TransientSmsError,
    TwilioGateway,
    make_gateway,
    outbox_status,
)
from tests.checks import captured_logs
from tests.fake_twilio import MESSAGING_SERVICE_SID, FakeTwilio, twilio_settings

TO = "+32470123456"
BODY = "Trial: a questionnaire is waiting in the app."


@pytest.fixture
def gateway(fake_twilio: FakeTwilio) -> TwilioGateway:
    made = make_gateway(twilio_settings(fake_twilio))
    assert isinstance(made, TwilioGateway)
    return made


def test_send_posts_exactly_twilios_fields_with_the_messaging_service(gateway, fake_twilio):
    message_id = uuid.uuid4()

    result = gateway.send(TO, BODY, message_id)

    assert fake_twilio.requests == [
        {
            "To": TO,
            "Body": BODY,
            "MessagingServiceSid": MESSAGING_SERVICE_SID,
            "StatusCallback": "https://dct.example.org/api/v1/webhooks/twilio/status"
            f"?message_id={message_id}",
            "ValidityPeriod": "14400",
        }
    ]
    assert result.sid == fake_twilio.messages[0]["sid"]
    assert result.sid.startswith("SM") and len(result.sid) == 34
    assert result.status == "sent"  # Twilio's "queued": it has the message


def test_without_a_messaging_service_our_number_sends(fake_twilio):
    settings = twilio_settings(
        fake_twilio,
        TWILIO_MESSAGING_SERVICE_SID="",
        TWILIO_FROM_NUMBER="+3225550100",
        PUBLIC_BASE_URL="https://dct.example.org/",
        DCT_SMS_VALIDITY_SECONDS=600,
    )
    message_id = uuid.uuid4()

    make_gateway(settings).send(TO, BODY, message_id)

    sent = fake_twilio.requests[0]
    assert sent["From"] == "+3225550100"
    assert "MessagingServiceSid" not in sent
    assert sent["StatusCallback"] == (
        f"https://dct.example.org/api/v1/webhooks/twilio/status?message_id={message_id}"
    )
    assert sent["ValidityPeriod"] == "600"


@pytest.mark.parametrize(("status", "code"), [(429, 20429), (500, 20500), (503, 20503)])
def test_throttling_and_server_errors_are_transient(gateway, fake_twilio, status, code):
    fake_twilio.fail_next(status)

    with pytest.raises(TransientSmsError) as raised:
        gateway.send(TO, BODY, uuid.uuid4())

    assert raised.value.code == code
    assert not fake_twilio.messages
    assert gateway.send(TO, BODY, uuid.uuid4()).status == "sent"  # the SDK did not retry
    assert len(fake_twilio.requests) == 2


def test_a_late_answer_is_transient_and_reconciliation_finds_the_message(fake_twilio):
    gateway = TwilioGateway.from_settings(twilio_settings(fake_twilio), timeout=0.3)
    since = dt.datetime.now(dt.UTC)
    fake_twilio.answer_late(3)

    with pytest.raises(TransientSmsError, match="in time"):
        gateway.send(TO, BODY, uuid.uuid4())

    found = gateway.find_sent(TO, BODY, since)
    assert found is not None
    assert found.sid == fake_twilio.messages[0]["sid"]
    assert found.status == "sent"


def test_an_unreachable_twilio_is_transient(fake_twilio):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = twilio_settings(fake_twilio, TWILIO_API_BASE_URL=f"http://127.0.0.1:{port}")

    with pytest.raises(TransientSmsError, match="could not reach Twilio"):
        make_gateway(settings).send(TO, BODY, uuid.uuid4())


@pytest.mark.parametrize("code", [21211, 21610, 21614, 21408])
def test_number_and_request_errors_are_permanent_with_the_code(gateway, fake_twilio, code):
    fake_twilio.fail_next(400, code=code)

    with pytest.raises(PermanentSmsError) as raised:
        gateway.send(TO, BODY, uuid.uuid4())

    assert raised.value.code == code
    assert str(code) in raised.value.message
    # Twilio's own message quotes the number: it stays out of what we store and log.
    assert TO not in raised.value.message and TO not in str(raised.value)


def test_wrong_credentials_are_permanent(fake_twilio):
    settings = twilio_settings(fake_twilio, TWILIO_AUTH_TOKEN="not-the-token")

    with pytest.raises(PermanentSmsError) as raised:
        make_gateway(settings).send(TO, BODY, uuid.uuid4())

    assert raised.value.code == 20003
    assert not fake_twilio.messages


def test_find_sent_matches_number_body_and_time(gateway, fake_twilio):
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    first = gateway.send(TO, BODY, uuid.uuid4())
    gateway.send(TO, "Trial: another text", uuid.uuid4())
    gateway.send("+32470999999", BODY, uuid.uuid4())

    found = gateway.find_sent(TO, BODY, since)

    assert found is not None and found.sid == first.sid
    assert gateway.find_sent(TO, "Trial: never sent", since) is None
    assert gateway.find_sent(TO, BODY, since + dt.timedelta(minutes=5)) is None
    assert gateway.find_sent("+32470555555", BODY, since) is None
    query = fake_twilio.queries[0]
    assert query["To"] == TO
    assert query["DateSent>"] == since.strftime("%Y-%m-%dT00:00:00Z")  # Twilio filters by day


def test_find_sent_returns_the_latest_of_identical_messages(gateway, fake_twilio):
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    gateway.send(TO, BODY, uuid.uuid4())
    fake_twilio.messages[0]["_sent_at"] -= dt.timedelta(seconds=30)
    fake_twilio.messages[0]["date_created"] = "Mon, 01 Jan 2024 00:00:00 GMT"
    latest = gateway.send(TO, BODY, uuid.uuid4())

    found = gateway.find_sent(TO, BODY, since - dt.timedelta(days=3650))

    assert found is not None and found.sid == latest.sid


def test_twilio_gateway_logs_neither_number_nor_text(gateway):
    # The SDK logs each request's query (with To=) at INFO unless told not to. (urllib3
    # logs URLs at DEBUG, a level production does not run at.)
    with captured_logs("INFO") as logs:
        gateway.send(TO, BODY, uuid.uuid4())
        gateway.find_sent(TO, BODY, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))

    written = logs.getvalue()
    assert TO not in written and TO.lstrip("+") not in written
    assert "questionnaire" not in written


def test_console_gateway_logs_the_message_id_and_size_only():
    message_id = uuid.uuid4()

    with captured_logs("INFO") as logs:
        result = ConsoleGateway().send(TO, BODY, message_id)

    written = logs.getvalue()
    assert "sms sent" in written
    assert str(message_id) in written
    assert f"{len(BODY)} characters" in written and "1 segment" in written
    assert TO not in written and TO.lstrip("+") not in written
    assert "questionnaire" not in written
    assert result.sid.startswith("CONSOLE-") and result.status == "sent"
    assert ConsoleGateway().find_sent(TO, BODY, dt.datetime.now(dt.UTC)) is None


def test_console_is_the_default_gateway():
    assert isinstance(make_gateway({"DCT_SMS_GATEWAY": "console"}), ConsoleGateway)


@pytest.mark.parametrize(
    ("twilio", "outbox"),
    [
        ("accepted", "sent"),
        ("queued", "sent"),
        ("sending", "sent"),
        ("sent", "sent"),
        ("delivered", "delivered"),
        ("undelivered", "undelivered"),
        ("failed", "failed"),
        ("receiving", None),
    ],
)
def test_twilio_statuses_map_to_outbox_statuses(twilio, outbox):
    assert outbox_status(twilio) == outbox
