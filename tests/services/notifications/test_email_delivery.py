"""Reset codes by e-mail: the outbox, the `dispatch-email` job and the SMTP gateway,
against a real SMTP server on loopback."""

from __future__ import annotations

import datetime as dt
import stat

import pytest
from flask import Flask
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from api.config import load
from scheduling import email_dispatch
from scheduling.jobs import job_specs
from services.actor import Actor
from services.db import utcnow
from services.models import EmailMessage, PasswordResetCode
from services.notifications.email_content import Email, render
from services.notifications.email_gateway import ConsoleMailGateway, EmailGatewayError, SmtpGateway
from tests.checks import assert_problem, audit_events
from tests.conftest import AppFactory, joined_sessions
from tests.factories.people import World, headers_for
from tests.fakes.smtp import SmtpServer, free_port

SYSTEM = Actor.system("test-email")
NEW_PASSWORD = "a brand new passphrase 2026"


@pytest.fixture
def mail_app(make_app: AppFactory, smtp_server: SmtpServer) -> Flask:
    return make_app(**smtp_server.settings())


def run_dispatch(app: Flask, connection, now: dt.datetime | None = None) -> int:
    (spec,) = [s for s in job_specs(app.config) if s.id == "dispatch-email"]
    return spec.func(joined_sessions(connection), SYSTEM, now=now)  # type: ignore[call-arg]


def outbox(db: Session) -> list[EmailMessage]:
    db.expire_all()
    return list(db.scalars(select(EmailMessage).order_by(EmailMessage.created_at)))


def trigger_for_coordinator(app: Flask, world: World):
    client = app.test_client()
    return client.post(
        f"/api/v1/users/{world.coordinator_b.id}/password-reset",
        json={"reason": "forgot password"},
        headers=headers_for(client, world.admin),
    )


def test_a_staff_member_without_a_phone_gets_the_code_by_e_mail(
    mail_app, connection, db, world, smtp_server
):
    response = trigger_for_coordinator(mail_app, world)

    assert response.status_code == 202
    assert response.get_json()["channel"] == "email"
    assert run_dispatch(mail_app, connection) == 1
    ((recipients, message),) = smtp_server.inbox.received
    assert recipients == [world.coordinator_b.email]
    assert message["To"] == world.coordinator_b.email
    body = message.get_content()
    code = body.split("is: ", 1)[1].split()[0]
    assert code not in message["Subject"]
    assert code not in response.get_data(as_text=True)
    client = mail_app.test_client()
    confirmed = client.post(
        "/api/v1/auth/password-reset/confirm", json={"code": code, "password": NEW_PASSWORD}
    )
    assert confirmed.status_code == 200
    (row,) = outbox(db)
    assert (row.status, row.attempts) == ("sent", 1)
    assert len(audit_events(db, "email.sent", row.id)) == 1


def test_a_self_service_reset_goes_by_e_mail_once(mail_app, connection, db, world, smtp_server):
    client = mail_app.test_client()
    client.post("/api/v1/auth/password-reset", json={"email": world.nurse_a.email})

    assert run_dispatch(mail_app, connection) == 1
    assert run_dispatch(mail_app, connection) == 0
    assert len(smtp_server.inbox.received) == 1


def test_the_code_is_not_stored_in_clear(mail_app, connection, world, smtp_server):
    trigger_for_coordinator(mail_app, world)
    run_dispatch(mail_app, connection)
    ((_, message),) = smtp_server.inbox.received
    code = message.get_content().split("is: ", 1)[1].split()[0]

    rows = connection.exec_driver_sql("SELECT params FROM email_outbox").all()

    assert rows and all(code not in str(row) for row in rows)


def test_a_message_whose_code_was_replaced_is_skipped(mail_app, connection, db, world):
    client = mail_app.test_client()
    for _ in range(2):
        client.post("/api/v1/auth/password-reset", json={"email": world.nurse_a.email})

    assert run_dispatch(mail_app, connection) == 1
    first, second = outbox(db)
    assert (first.status, first.status_reason) == ("skipped", "reset code replaced by a newer one")
    assert second.status == "sent"


def test_an_unreachable_server_is_retried_with_backoff_then_failed(make_app, connection, db, world):
    app = make_app(
        DCT_EMAIL_GATEWAY="smtp",
        DCT_SMTP_HOST="127.0.0.1",
        DCT_SMTP_PORT=free_port(),  # nothing listens there
        DCT_EMAIL_MAX_ATTEMPTS=2,
    )
    trigger_for_coordinator(app, world)
    now = utcnow()

    assert run_dispatch(app, connection, now) == 0
    (row,) = outbox(db)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.status_reason == "SMTP delivery failed: ConnectionRefusedError"
    assert row.next_attempt_at == now + email_dispatch.BACKOFF
    assert run_dispatch(app, connection, now) == 0  # not due yet
    db.execute(update(PasswordResetCode).values(expires_at=now + dt.timedelta(hours=1)))

    run_dispatch(app, connection, now + dt.timedelta(minutes=1))

    (row,) = outbox(db)
    assert (row.status, row.attempts) == ("failed", 2)


def test_without_an_e_mail_gateway_there_is_no_e_mail_job_and_codes_go_by_sms(app, client, world):
    assert "dispatch-email" not in {spec.id for spec in job_specs(app.config)}

    response = client.post(
        f"/api/v1/users/{world.coordinator_b.id}/password-reset",
        json={"reason": "forgot password"},
        headers=headers_for(client, world.admin),
    )

    assert "no phone on file" in assert_problem(response, 409)["detail"]


def test_the_smtp_gateway_raises_a_gateway_error_without_the_address():
    gateway = SmtpGateway("127.0.0.1", free_port(), "no-reply@dct.example", starttls=False)

    with pytest.raises(EmailGatewayError) as failed:
        gateway.send("someone@example.org", Email("subject", "body"))

    assert "someone" not in str(failed.value)


def test_the_console_mail_gateway_writes_a_private_file(tmp_path):
    inbox = tmp_path / "mail" / "console-mail.txt"
    gateway = ConsoleMailGateway(inbox, "no-reply@dct.example")

    gateway.send(
        "nurse@example.org",
        render("password_reset", "de", {"code": "ABCD-EFGH-JKLM", "name": "An", "minutes": 30}),
    )

    text = inbox.read_text()
    assert "To: nurse@example.org" in text
    assert "ABCD-EFGH-JKLM" in text
    assert stat.S_IMODE(inbox.stat().st_mode) == 0o600


@pytest.mark.parametrize("locale", ["nl", "fr", "de", "en", "nl-BE", "es"])
def test_every_language_has_the_code_in_the_body_only(locale):
    email = render(
        "password_reset", locale, {"code": "ABCD-EFGH-JKLM", "name": "An", "minutes": 30}
    )

    assert "ABCD-EFGH-JKLM" in email.body and "ABCD" not in email.subject
    assert "30" in email.body


def test_production_refuses_the_console_mail_gateway_and_smtp_needs_a_host():
    with pytest.raises(RuntimeError, match="DCT_SMTP_HOST"):
        load({"DCT_EMAIL_GATEWAY": "smtp", "DCT_SMTP_HOST": ""})
    with pytest.raises(RuntimeError, match="DCT_EMAIL_GATEWAY"):
        load({"DCT_EMAIL_GATEWAY": "pigeon"})
    with pytest.raises(RuntimeError, match="DCT_EMAIL_GATEWAY must be smtp or none"):
        load({"DCT_ENV": "production", "DCT_EMAIL_GATEWAY": "console"})


def test_no_e_mail_goes_to_a_participant_who_wants_no_contact(
    mail_app, connection, db, world, smtp_server
):
    patient = world.patient_a
    mail_app.test_client().post("/api/v1/auth/password-reset", json={"email": patient.user.email})
    patient.participant.contact_allowed = False
    db.flush()

    assert run_dispatch(mail_app, connection) == 0

    assert smtp_server.inbox.received == []
    (row,) = outbox(db)
    assert (row.status, row.status_reason) == (
        "skipped",
        "participant does not wish to be contacted",
    )
