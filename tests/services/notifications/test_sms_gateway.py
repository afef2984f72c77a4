"""The SMS gateways: the real Twilio SDK against a local fake Twilio (exact form fields,
each error class, reconciliation after a lost answer, a connection per sending thread)
and the console gateway's log."""

from __future__ import annotations

import datetime as dt
import socket
import uuid

import pytest

from services.notifications.gateway import (
    PHONE_PROBLEMS,
    ConsoleGateway,
    GatewayConfigError,
    PermanentSmsError,
    TransientSmsError,
    TwilioGateway,
    make_gateway,
    outbox_status,
)
from tests.checks import captured_logs
from tests.fakes.twilio import MESSAGING_SERVICE_SID, FakeTwilio, twilio_settings

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

    (found,) = gateway.find_sent(TO, BODY, since)
    assert found.sid == fake_twilio.messages[0]["sid"]
    assert found.status == "sent"


def test_reconciliation_finds_a_message_still_in_twilios_queue(gateway, fake_twilio):
    """A message Twilio has not handed to the carrier yet has no date_sent: a
    `DateSent` filter would miss it and the message would be sent twice."""
    fake_twilio.queueing = True
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    sent = gateway.send(TO, BODY, uuid.uuid4())

    assert [found.sid for found in gateway.find_sent(TO, BODY, since)] == [sent.sid]
    assert fake_twilio.messages[0]["date_sent"] is None


def test_an_unreachable_twilio_is_transient(fake_twilio):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = twilio_settings(fake_twilio, TWILIO_API_BASE_URL=f"http://127.0.0.1:{port}")

    with pytest.raises(TransientSmsError, match="could not reach Twilio"):
        make_gateway(settings).send(TO, BODY, uuid.uuid4())


@pytest.mark.parametrize("code", [21211, 21610, 21614, 21408])
def test_errors_about_the_number_are_permanent_with_the_code(gateway, fake_twilio, code):
    fake_twilio.fail_next(400, code=code)

    with pytest.raises(PermanentSmsError) as raised:
        gateway.send(TO, BODY, uuid.uuid4())

    assert raised.value.code == code
    assert raised.value.message == f"{code}: {PHONE_PROBLEMS[code]}"
    # Twilio's own message quotes the number: it stays out of what we store and log.
    assert TO not in raised.value.message and TO not in str(raised.value)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, 21606),  # the From number cannot send
        (400, 21703),  # the messaging service has no sender
        (400, 21704),  # the messaging service's configuration
        (403, 20403),
        (404, 20404),
        (400, None),  # a 4xx Twilio did not explain
    ],
)
def test_errors_about_our_account_or_request_are_configuration_errors(
    gateway, fake_twilio, status, code
):
    fake_twilio.fail_next(status, code=code)

    with pytest.raises(GatewayConfigError) as raised:
        gateway.send(TO, BODY, uuid.uuid4())

    assert raised.value.code == code
    assert not isinstance(raised.value, PermanentSmsError)
    assert TO not in raised.value.message


def test_wrong_credentials_are_a_configuration_error_for_sends_and_lookups(fake_twilio):
    gateway = make_gateway(twilio_settings(fake_twilio, TWILIO_AUTH_TOKEN="not-the-token"))

    with pytest.raises(GatewayConfigError) as raised:
        gateway.send(TO, BODY, uuid.uuid4())
    with pytest.raises(GatewayConfigError):
        gateway.find_sent(TO, BODY, dt.datetime.now(dt.UTC))

    assert raised.value.code == 20003
    assert raised.value.message == "Twilio error 20003 (HTTP 401)"
    assert not fake_twilio.messages


def test_find_sent_matches_number_body_and_time(gateway, fake_twilio):
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    first = gateway.send(TO, BODY, uuid.uuid4())
    gateway.send(TO, "Trial: another text", uuid.uuid4())
    gateway.send("+32470999999", BODY, uuid.uuid4())

    found = gateway.find_sent(TO, BODY, since)

    assert [result.sid for result in found] == [first.sid]
    assert gateway.find_sent(TO, "Trial: never sent", since) == []
    assert gateway.find_sent(TO, BODY, since + dt.timedelta(minutes=5)) == []
    assert gateway.find_sent("+32470555555", BODY, since) == []
    # By number only, the latest page of it; the time is filtered here, on date_created.
    assert fake_twilio.queries[0] == {"To": TO, "PageSize": "50"}


def test_find_sent_returns_every_identical_message_newest_first(gateway, fake_twilio):
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    old = gateway.send(TO, BODY, uuid.uuid4())
    fake_twilio.messages[0]["date_created"] = "Mon, 01 Jan 2024 00:00:00 GMT"
    fake_twilio.messages[0]["_created_at"] -= dt.timedelta(days=800)
    first, latest = gateway.send(TO, BODY, uuid.uuid4()), gateway.send(TO, BODY, uuid.uuid4())
    fake_twilio.messages[2]["date_created"] = "Mon, 01 Jan 2120 00:00:00 GMT"  # to the second

    assert [found.sid for found in gateway.find_sent(TO, BODY, since)] == [latest.sid, first.sid]
    everything = gateway.find_sent(TO, BODY, since - dt.timedelta(days=3650))
    assert [found.sid for found in everything] == [latest.sid, first.sid, old.sid]


def test_the_gateway_keeps_a_connection_for_each_sending_thread(fake_twilio):
    settings = twilio_settings(fake_twilio, DCT_SMS_THREADS=100)

    gateway = TwilioGateway.from_settings(settings, timeout=2.5)

    session = gateway.client.http_client.session
    assert session.get_adapter("https://api.twilio.com")._pool_maxsize == 100
    assert session.get_adapter(fake_twilio.url)._pool_maxsize == 100
    assert gateway.timeout_seconds == 2.5
    assert ConsoleGateway.timeout_seconds == 0


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
    assert ConsoleGateway().find_sent(TO, BODY, dt.datetime.now(dt.UTC)) == []


def test_the_console_inbox_holds_the_text_the_log_never_shows(tmp_path):
    inbox = tmp_path / "sms" / "console-sms.txt"
    gateway = make_gateway({"DCT_SMS_GATEWAY": "console", "DCT_CONSOLE_SMS_INBOX": str(inbox)})

    with captured_logs("INFO") as logs:
        gateway.send(TO, BODY, uuid.uuid4())
        gateway.send(TO, "second text", uuid.uuid4())

    lines = inbox.read_text().splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == [BODY, "second text"]
    assert TO not in inbox.read_text()
    assert BODY not in logs.getvalue()
    assert inbox.stat().st_mode & 0o777 == 0o600


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
