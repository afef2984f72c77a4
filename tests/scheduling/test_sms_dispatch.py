"""The SMS dispatcher against the real Twilio SDK and a local fake Twilio: what is sent
when, what waits (quiet hours, the daily cap, backoff), what never goes, and how a
dispatcher that died mid-send is reconciled without sending twice.

The dispatcher's sessions join the test's transaction (`joined_sessions`), so every
commit it makes is rolled back with the test. Times are fixed instants unless a test
needs the fake's real clock (reconciliation asks Twilio what it sent since when).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from zoneinfo import ZoneInfo

import click
import pytest
from flask import Flask
from flask.cli import run_command
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session, sessionmaker

from api import cli
from scheduling import jobs, sms_dispatch, sms_outcomes
from scheduling.jobs import job_specs
from scheduling.runner import build_scheduler, run_job
from services.actor import Actor
from services.db import utcnow
from services.models import (
    NotificationPreference,
    SmsMessage,
    StudySmsSettings,
    Visit,
    VisitStatus,
)
from services.notifications import inbound as sms_inbound
from services.notifications.gateway import (
    PermanentSmsError,
    SendResult,
    TransientSmsError,
    TwilioGateway,
    error_text,
)
from services.notifications.settings import DEFAULT_SENDER_NAME
from services.visits import booking as visits
from tests.checks import audit_events, captured_logs
from tests.conftest import AppFactory, joined_sessions
from tests.factories.people import Patient, World, headers_for
from tests.factories.visits import coordinator_actor, enrolled_with_visits, make_nurse_ready
from tests.fakes.twilio import FakeTwilio, twilio_settings

BRUSSELS = ZoneInfo("Europe/Brussels")
SENDER = "HomeTeam"
CONTACT = "02 555 01 23"
# The `help` template in Dutch (the factories' patients read Dutch) with SENDER and CONTACT.
HELP_NL = f"{SENDER}: hulp: {CONTACT}. STOP om geen sms meer te krijgen, START om ze te hervatten."
LEASE = dt.timedelta(seconds=120)


def local(day: str, hhmm: str) -> dt.datetime:
    """A Brussels wall-clock time as the UTC instant it is."""
    return dt.datetime.fromisoformat(f"{day}T{hhmm}").replace(tzinfo=BRUSSELS).astimezone(dt.UTC)


def daytime_zone(at: dt.datetime) -> str:
    """A zone where `at` is early afternoon: tests on the real clock (the fake Twilio
    stamps messages with it) are then never inside quiet hours."""
    offset = 13 - at.astimezone(dt.UTC).hour  # -10 to +13; Etc/GMT-3 is UTC+3
    return f"Etc/GMT{-offset:+d}"


def add_message(
    db: Session,
    patient: Patient,
    due: dt.datetime,
    *,
    template: str = "help",
    params: dict | None = None,
) -> SmsMessage:
    """A planned row. `help` has no relevance rule, so only the dispatcher's own checks
    apply to it."""
    message = SmsMessage(
        dedupe_key=f"test:{uuid.uuid4()}",
        user_id=patient.user.id,
        participant_id=patient.participant.id,
        study_id=patient.participant.study_id,
        template=template,
        params=json.dumps({"contact": CONTACT} if params is None else params),
        relevance={},
        due_at=due,
        next_attempt_at=due,
    )
    db.add(message)
    db.flush()
    return message


def reread(db: Session, message: SmsMessage) -> SmsMessage:
    db.expire_all()
    return db.get_one(SmsMessage, message.id)


def bodies(fake: FakeTwilio) -> list[str]:
    return [form["Body"] for form in fake.requests]


@pytest.fixture
def sessions(connection: Connection) -> sessionmaker[Session]:
    return joined_sessions(connection)


@pytest.fixture
def settings(app: Flask, fake_twilio: FakeTwilio) -> dict:
    return {**app.config, **twilio_settings(fake_twilio)}


@pytest.fixture
def gateway(settings: dict) -> TwilioGateway:
    return TwilioGateway.from_settings(settings)


@pytest.fixture
def patient(db: Session, world: World) -> Patient:
    db.add(
        StudySmsSettings(
            study_id=world.study.id, sender_name=SENDER, help_contact=CONTACT, rules={}
        )
    )
    db.flush()
    return world.patient_a


def send_round(sessions, gateway, settings, now: dt.datetime) -> int:
    dispatcher = sms_dispatch.Dispatcher(sessions, gateway, settings, worker="test-worker")
    return dispatcher.dispatch(now=now)


# --- sending --------------------------------------------------------------------------


def test_a_due_row_is_sent_once_with_the_exact_text(
    db, sessions, gateway, settings, fake_twilio, patient
):
    now = local("2027-01-14", "10:00")
    message = add_message(db, patient, now - dt.timedelta(minutes=5))

    assert send_round(sessions, gateway, settings, now) == 1
    assert send_round(sessions, gateway, settings, now + dt.timedelta(hours=1)) == 0

    (form,) = fake_twilio.requests
    assert form["Body"] == HELP_NL
    assert form["To"] == patient.user.phone
    assert form["StatusCallback"].endswith(f"?message_id={message.id}")
    row = reread(db, message)
    assert (row.status, row.attempts, row.sent_at) == ("sent", 1, now)
    assert row.twilio_sid == fake_twilio.messages[0]["sid"]
    assert (row.body, row.segments) == (HELP_NL, 1)
    assert (row.lease_until, row.status_reason, row.error_code) == (None, None, None)
    (event,) = audit_events(db, "sms.sent", message.id)
    assert event.participant_id == patient.participant.id
    assert event.after == {"template": "help", "attempts": 1, "twilio_sid": row.twilio_sid}


def test_a_row_not_yet_due_is_left_alone(db, sessions, gateway, settings, fake_twilio, patient):
    now = local("2027-01-14", "10:00")
    message = add_message(db, patient, now + dt.timedelta(seconds=1))

    assert send_round(sessions, gateway, settings, now) == 0

    assert fake_twilio.requests == []
    row = reread(db, message)
    assert (row.status, row.attempts, row.claimed_by, row.body) == ("pending", 0, None, None)


def test_without_sms_settings_the_study_signs_with_the_neutral_default(
    db, sessions, gateway, settings, fake_twilio, world
):
    now = local("2027-01-14", "10:00")
    add_message(db, world.patient_a, now)

    send_round(sessions, gateway, settings, now)

    assert bodies(fake_twilio) == [HELP_NL.replace(SENDER, DEFAULT_SENDER_NAME)]


# --- quiet hours and the daily cap ----------------------------------------------------


@pytest.mark.requirement("SMS-5")
def test_quiet_hours_defer_past_midnight_to_the_first_allowed_minute(
    db, sessions, gateway, settings, fake_twilio, patient
):
    late = local("2027-01-14", "22:30")
    message = add_message(db, patient, late - dt.timedelta(minutes=10))

    assert send_round(sessions, gateway, settings, late) == 0

    row = reread(db, message)
    morning = local("2027-01-15", "08:00")
    assert (row.status, row.next_attempt_at, row.attempts) == ("pending", morning, 0)
    assert row.status_reason == "deferred: quiet hours"
    assert send_round(sessions, gateway, settings, morning - dt.timedelta(minutes=1)) == 0
    assert fake_twilio.requests == []
    assert send_round(sessions, gateway, settings, morning) == 1
    row = reread(db, message)
    assert (row.status, row.attempts, row.sent_at) == ("sent", 1, morning)


@pytest.mark.parametrize(
    ("now", "opens"),
    [
        # Spring forward: 08:00 on 28 March 2027 is 06:00 UTC, the evening before 22:30 UTC.
        (local("2027-03-27", "23:30"), dt.datetime(2027, 3, 28, 6, 0, tzinfo=dt.UTC)),
        (local("2027-03-28", "03:30"), dt.datetime(2027, 3, 28, 6, 0, tzinfo=dt.UTC)),
        # Fall back: 08:00 on 31 October 2027 is 07:00 UTC again.
        (local("2027-10-30", "22:00"), dt.datetime(2027, 10, 31, 7, 0, tzinfo=dt.UTC)),
    ],
)
def test_quiet_hours_on_a_dst_day_open_at_eight_local(
    db, sessions, gateway, settings, fake_twilio, patient, now, opens
):
    message = add_message(db, patient, now)

    send_round(sessions, gateway, settings, now)

    assert reread(db, message).next_attempt_at == opens
    assert send_round(sessions, gateway, settings, opens) == 1


def test_a_recipients_narrower_hours_hold(db, sessions, gateway, settings, fake_twilio, patient):
    db.add(NotificationPreference(user_id=patient.user.id, send_from="09:30", send_until="18:00"))
    db.flush()
    early, evening = local("2027-01-14", "09:00"), local("2027-01-14", "18:00")
    first, second = add_message(db, patient, early), add_message(db, patient, evening)

    send_round(sessions, gateway, settings, early)
    assert reread(db, first).next_attempt_at == local("2027-01-14", "09:30")
    first.next_attempt_at = evening + dt.timedelta(hours=1)  # out of the way
    db.flush()
    send_round(sessions, gateway, settings, evening)
    assert reread(db, second).next_attempt_at == local("2027-01-15", "09:30")
    assert fake_twilio.requests == []


def test_the_fourth_sms_of_a_day_waits_for_the_next_morning(
    db, sessions, gateway, settings, fake_twilio, patient
):
    now = local("2027-01-14", "10:00")
    messages = [add_message(db, patient, now - dt.timedelta(minutes=n)) for n in (4, 3, 2, 1)]

    assert send_round(sessions, gateway, settings, now) == 3

    fourth = reread(db, messages[-1])
    morning = local("2027-01-15", "08:00")
    assert (fourth.status, fourth.next_attempt_at, fourth.attempts) == ("pending", morning, 0)
    assert fourth.status_reason == "deferred: daily cap"
    assert [reread(db, m).status for m in messages[:3]] == ["sent"] * 3
    assert send_round(sessions, gateway, settings, morning) == 1
    assert len(fake_twilio.requests) == 4


def test_the_daily_cap_counts_a_message_another_dispatcher_is_sending(
    db, sessions, gateway, settings, fake_twilio, patient
):
    now = local("2027-01-14", "10:00")
    for minutes in (60, 30):
        earlier = add_message(db, patient, now - dt.timedelta(minutes=minutes))
        earlier.status, earlier.sent_at = "sent", earlier.due_at
    in_flight = add_message(db, patient, now - dt.timedelta(minutes=1))
    # Checked and being sent right now by another dispatcher: it has its body.
    in_flight.status, in_flight.claimed_by, in_flight.body = "sending", "other", HELP_NL
    in_flight.lease_until = now + LEASE
    fourth = add_message(db, patient, now)

    assert send_round(sessions, gateway, settings, now) == 0

    assert fake_twilio.requests == []
    row = reread(db, fourth)
    assert (row.status, row.status_reason) == ("pending", "deferred: daily cap")
    assert row.next_attempt_at == local("2027-01-15", "08:00")


# --- what never goes ------------------------------------------------------------------


def opted_out(db: Session, patient: Patient) -> None:
    db.add(NotificationPreference(user_id=patient.user.id, opted_out_at=utcnow()))


def switched_off(db: Session, patient: Patient) -> None:
    db.add(NotificationPreference(user_id=patient.user.id, sms_enabled=False))


def no_phone(db: Session, patient: Patient) -> None:
    patient.user.phone, patient.user.phone_index = None, None


def no_contact(db: Session, patient: Patient) -> None:
    patient.participant.contact_allowed = False


def withdrawn(db: Session, patient: Patient) -> None:
    patient.participant.status = "withdrawn"


@pytest.mark.parametrize(
    ("change", "status", "reason"),
    [
        (opted_out, "skipped", "opted out"),
        (switched_off, "skipped", "opted out"),
        (no_phone, "skipped", "no phone number"),
        (no_contact, "cancelled", "contact not allowed"),
        (withdrawn, "cancelled", "participant withdrawn"),
    ],
)
@pytest.mark.requirement("SMS-3")
def test_a_recipient_who_must_not_get_sms_gets_none(
    db, sessions, gateway, settings, fake_twilio, patient, change, status, reason
):
    now = local("2027-01-14", "10:00")
    message = add_message(db, patient, now)
    change(db, patient)
    db.flush()

    assert send_round(sessions, gateway, settings, now) == 0

    assert fake_twilio.requests == []
    row = reread(db, message)
    assert (row.status, row.status_reason, row.lease_until, row.body) == (
        status,
        reason,
        None,
        None,
    )


def test_reminders_planned_before_a_stop_go_after_the_start(
    db, sessions, gateway, settings, fake_twilio, patient
):
    """STOP keeps the outbox: what falls due while opted out is skipped, what falls due
    after START goes."""
    now = local("2027-01-14", "10:00")
    while_out = add_message(db, patient, now)
    after_start = add_message(db, patient, now + dt.timedelta(days=1))
    sms_inbound.handle_inbound(db, patient.user.phone, "STOP")
    db.flush()

    send_round(sessions, gateway, settings, now)
    assert reread(db, after_start).status == "pending"
    sms_inbound.handle_inbound(db, patient.user.phone, "START")
    db.flush()
    assert send_round(sessions, gateway, settings, now + dt.timedelta(days=1)) == 1

    skipped = reread(db, while_out)
    assert (skipped.status, skipped.status_reason) == ("skipped", "opted out")
    assert reread(db, after_start).status == "sent"
    assert len(fake_twilio.requests) == 1


def booked_visit(db: Session, world: World) -> Visit:
    """V1 booked at 10:00 on a Monday at least two weeks ahead: its reminders are planned."""
    make_nurse_ready(db, world)
    today = dt.date.today()
    baseline = today + dt.timedelta(days=14 + (7 - today.weekday()) % 7)
    v1 = enrolled_with_visits(db, world, baseline=baseline)[0]
    start = local(baseline.isoformat(), "10:00")
    return visits.book(
        db,
        coordinator_actor(db, world.coordinator_a),
        v1.id,
        visits.Booking(world.nurse_a.id, start, start + dt.timedelta(hours=1)),
    )


def visit_reminders(db: Session, visit: Visit) -> list[SmsMessage]:
    db.expire_all()
    return list(
        db.scalars(
            select(SmsMessage)
            .where(SmsMessage.dedupe_key.startswith(f"visit:{visit.id}:"))
            .order_by(SmsMessage.due_at)
        )
    )


def test_a_visit_cancelled_after_planning_sends_nothing(
    db, sessions, gateway, settings, fake_twilio, world, patient
):
    visit = booked_visit(db, world)
    assert [m.template for m in visit_reminders(db, visit)] == ["visit_24h", "visit_morning"]

    visits.transition(
        db,
        coordinator_actor(db, world.coordinator_a),
        visit.id,
        VisitStatus.CANCELLED,
        reason="ill",
    )
    for reminder in visit_reminders(db, visit):
        send_round(sessions, gateway, settings, reminder.due_at)

    assert fake_twilio.requests == []
    assert {(m.status, m.status_reason) for m in visit_reminders(db, visit)} == {
        ("cancelled", "visit cancelled")
    }


def test_a_visit_completed_early_cancels_its_reminders_and_sends_none(
    client, db, sessions, gateway, settings, fake_twilio, world, patient
):
    """Done days before its time (a deviation the nurse gave a reason for), the visit
    must not be announced afterwards as still to come."""
    visit = booked_visit(db, world)
    nurse = headers_for(client, world.nurse_a)
    early = {"override_reason": "participant admitted to hospital on the booked day"}
    started = client.post(f"/api/v1/visits/{visit.id}/check-in", json=early, headers=nurse)
    assert started.status_code == 200, started.get_json()
    assert {m.status for m in visit_reminders(db, visit)} == {"pending"}

    done = client.post(
        f"/api/v1/visits/{visit.id}/check-out",
        json={"completed_procedures": ["vitals"]},
        headers=nurse,
    )

    assert done.status_code == 200, done.get_json()
    reminders = visit_reminders(db, visit)
    assert [m.template for m in reminders] == ["visit_24h", "visit_morning"]
    assert {(m.status, m.status_reason) for m in reminders} == {("cancelled", "visit completed")}
    for reminder in reminders:
        assert send_round(sessions, gateway, settings, reminder.due_at) == 0
    assert fake_twilio.requests == []


def test_a_visit_cancelled_while_its_reminder_is_claimed_is_skipped_at_sending(
    db, sessions, gateway, settings, fake_twilio, world, patient
):
    """Cancelling replans only pending rows; the claimed one is caught by the relevance
    check just before sending."""
    visit = booked_visit(db, world)
    reminder = visit_reminders(db, visit)[0]
    due = reminder.due_at
    dispatcher = sms_dispatch.Dispatcher(sessions, gateway, settings, worker="w")
    claimed, _ = dispatcher.claim(now=due, batch=50)
    assert reminder.id in claimed

    visits.transition(
        db,
        coordinator_actor(db, world.coordinator_a),
        visit.id,
        VisitStatus.CANCELLED,
        reason="ill",
    )
    db.flush()
    assert dispatcher.prepare(reminder.id, now=due) is None

    row = reread(db, reminder)
    assert (row.status, row.status_reason) == ("skipped", "visit no longer scheduled at that time")
    assert fake_twilio.requests == []


def test_a_booked_visit_reminder_goes_out_at_its_time(
    db, sessions, gateway, settings, fake_twilio, world, patient
):
    visit = booked_visit(db, world)
    reminder = visit_reminders(db, visit)[0]

    assert send_round(sessions, gateway, settings, reminder.due_at) == 1

    (body,) = bodies(fake_twilio)
    assert body.startswith(f"{SENDER}: herinnering aan uw afspraak morgen") and "10:00" in body


# --- gateway errors -------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
def test_transient_errors_back_off_exponentially_then_fail_at_the_limit(
    db, sessions, gateway, settings, fake_twilio, patient, status
):
    fake_twilio.fail_next(status, times=settings["DCT_SMS_MAX_ATTEMPTS"])
    now = local("2027-01-14", "10:00")
    message = add_message(db, patient, now)

    for attempt in range(1, settings["DCT_SMS_MAX_ATTEMPTS"]):
        assert send_round(sessions, gateway, settings, now) == 0
        row = reread(db, message)
        assert (row.status, row.attempts, row.error_code) == ("pending", attempt, 20000 + status)
        expected = 30 * 2 ** (attempt - 1)
        assert 0.9 * expected <= (row.next_attempt_at - now).total_seconds() <= 1.1 * expected
        assert (
            send_round(sessions, gateway, settings, row.next_attempt_at - dt.timedelta(seconds=1))
            == 0
        )
        assert len(fake_twilio.requests) == attempt
        now = row.next_attempt_at

    assert send_round(sessions, gateway, settings, now) == 0
    row = reread(db, message)
    assert (row.status, row.attempts, row.status_reason) == (
        "failed",
        6,
        "gave up after 6 attempts: gateway unavailable",
    )
    assert len(fake_twilio.requests) == 6
    (event,) = audit_events(db, "sms.failed", message.id)
    assert event.after["error_code"] == 20000 + status
    assert db.get(NotificationPreference, patient.user.id) is None  # not the phone's fault


def test_the_backoff_stops_growing_at_an_hour():
    assert all(3240 <= sms_outcomes.backoff(n).total_seconds() <= 3960 for n in (8, 12, 30))


def test_a_retry_after_a_lost_answer_asks_twilio_before_sending_again(
    db, sessions, settings, fake_twilio, patient
):
    """Twilio accepted the message but the answer came too late: the next attempt finds
    it in Twilio's message list and records it instead of sending it again."""
    gateway = TwilioGateway.from_settings(settings, timeout=0.3)
    fake_twilio.answer_late(1.0)
    now = utcnow()
    patient.user.timezone = daytime_zone(now)
    message = add_message(db, patient, now - dt.timedelta(minutes=1))

    assert send_round(sessions, gateway, settings, now) == 0
    row = reread(db, message)
    assert (row.status, row.error_code) == ("pending", None)
    assert send_round(sessions, gateway, settings, row.next_attempt_at) == 1

    row = reread(db, message)
    assert (row.status, row.twilio_sid) == ("sent", fake_twilio.messages[0]["sid"])
    assert len(fake_twilio.requests) == 1
    assert len(fake_twilio.queries) == 1


@pytest.mark.parametrize("code", [21211, 21610, 21614, 21408])
def test_a_permanent_error_fails_at_once_and_flags_the_phone(
    db, sessions, gateway, settings, fake_twilio, patient, code
):
    fake_twilio.fail_next(400, code=code)
    now = local("2027-01-14", "10:00")
    message = add_message(db, patient, now)

    assert send_round(sessions, gateway, settings, now) == 0
    assert send_round(sessions, gateway, settings, now + dt.timedelta(hours=2)) == 0

    assert len(fake_twilio.requests) == 1
    row = reread(db, message)
    assert (row.status, row.attempts, row.error_code) == ("failed", 1, code)
    assert patient.user.phone not in row.error_message
    preference = db.get_one(NotificationPreference, patient.user.id)
    assert preference.phone_problem == error_text(code)  # the text START recognises
    assert preference.phone_problem_at == now
    (flagged,) = audit_events(db, "sms.phone_problem", patient.user.id)
    assert flagged.after == {"error_code": code}
    (event,) = audit_events(db, "sms.failed", message.id)
    assert event.after == {
        "template": "help",
        "attempts": 1,
        "error_code": code,
        "phone_flagged": True,
    }


def test_start_lifts_the_unsubscription_twilio_reported_at_sending(
    db, sessions, gateway, settings, fake_twilio, patient
):
    """The person replied STOP to Twilio alone (we never saw it): the send fails with
    21610 and flags the phone; their START lifts it."""
    fake_twilio.fail_next(400, code=21610)
    now = local("2027-01-14", "10:00")
    add_message(db, patient, now)
    send_round(sessions, gateway, settings, now)
    db.expire_all()
    assert db.get_one(NotificationPreference, patient.user.id).phone_problem == error_text(21610)

    sms_inbound.handle_inbound(db, patient.user.phone, "START")

    preference = db.get_one(NotificationPreference, patient.user.id)
    assert (preference.phone_problem, preference.phone_problem_at) == (None, None)
    assert preference.opted_out_at is None
    (event,) = audit_events(db, "sms.opt_in", patient.user.id)
    assert event.after == {"opted_out": False, "phone_problem_cleared": True}


@pytest.mark.parametrize(
    ("status", "code"), [(401, 20003), (400, 21606), (400, 21703), (400, 21704), (400, 21602)]
)
def test_a_refused_configuration_fails_nothing_and_holds_every_row_for_the_fix(
    db, sessions, gateway, settings, fake_twilio, patient, status, code
):
    fake_twilio.fail_next(status, code=code)
    now = local("2027-01-14", "10:00")
    messages = [add_message(db, patient, now - dt.timedelta(minutes=n)) for n in (2, 1)]

    with captured_logs("INFO") as logs:
        assert send_round(sessions, gateway, settings, now) == 0

    assert len(fake_twilio.requests) == 1  # the rest of the round did not try
    for message in messages:
        row = reread(db, message)
        assert (row.status, row.attempts, row.error_code) == ("pending", 0, None)
        assert row.next_attempt_at == now + sms_dispatch.CONFIG_RETRY
        assert row.status_reason.startswith("waiting: Twilio refused the SMS configuration")
        assert audit_events(db, "sms.failed", message.id) == []
    assert db.get(NotificationPreference, patient.user.id) is None  # not the phone's fault
    written = logs.getvalue()
    assert "refused the SMS configuration" in written and f"Twilio error {code}" in written
    assert patient.user.phone not in written and CONTACT not in written
    # Once the configuration is fixed, nothing was lost.
    assert send_round(sessions, gateway, settings, now + sms_dispatch.CONFIG_RETRY) == 2
    assert bodies(fake_twilio) == [HELP_NL] * 3


class BlindGateway:
    """Sends through Twilio but cannot look anything up."""

    name = "blind"

    def __init__(self, real: TwilioGateway, error: Exception) -> None:
        self.real, self.error, self.timeout_seconds = real, error, real.timeout_seconds

    def send(self, to: str, body: str, message_id: uuid.UUID) -> SendResult:
        return self.real.send(to, body, message_id)

    def find_sent(self, to: str, body: str, since: dt.datetime) -> list[SendResult]:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [TransientSmsError("Twilio did not answer in time"), PermanentSmsError("21211: ...", 21211)],
)
def test_a_lookup_that_fails_neither_fails_the_row_nor_sends_it_blind(
    db, sessions, gateway, settings, fake_twilio, patient, error
):
    now = local("2027-01-14", "10:00")
    message = add_message(db, patient, now)
    # An earlier attempt got no answer, and this is the last attempt allowed.
    last = settings["DCT_SMS_MAX_ATTEMPTS"] - 1
    message.attempts, message.error_message = last, "Twilio did not answer in time"
    db.flush()

    assert send_round(sessions, BlindGateway(gateway, error), settings, now) == 0

    assert fake_twilio.requests == []
    row = reread(db, message)
    assert (row.status, row.attempts) == ("pending", last)
    assert row.status_reason == "retrying: the gateway could not say whether it was sent"
    assert row.next_attempt_at > now
    assert db.get(NotificationPreference, patient.user.id) is None
    assert send_round(sessions, gateway, settings, row.next_attempt_at) == 1


def test_a_lost_message_is_told_from_an_identical_one_another_row_recorded(
    db, sessions, settings, fake_twilio, patient
):
    """Two rows with the same text to the same number: the first's answer is lost (and
    Twilio still queues its message), the second's is recorded. Twilio lists both; the
    retry takes the one no row recorded instead of sending a third."""
    gateway = TwilioGateway.from_settings(settings, timeout=0.3)
    fake_twilio.queueing = True
    fake_twilio.answer_late(1.0)
    now = utcnow()
    patient.user.timezone = daytime_zone(now)
    lost = add_message(db, patient, now - dt.timedelta(minutes=2))
    other = add_message(db, patient, now - dt.timedelta(minutes=1))

    assert send_round(sessions, gateway, settings, now) == 1
    first, second = fake_twilio.messages
    assert reread(db, other).twilio_sid == second["sid"]
    retry = reread(db, lost)
    assert (retry.status, retry.twilio_sid) == ("pending", None)

    assert send_round(sessions, gateway, settings, retry.next_attempt_at) == 1

    assert reread(db, lost).twilio_sid == first["sid"]
    assert len(fake_twilio.requests) == 2


def test_a_row_that_cannot_be_prepared_neither_blocks_the_round_nor_comes_back_forever(
    db, sessions, gateway, settings, fake_twilio, patient
):
    now = local("2027-01-14", "10:00")
    broken = add_message(db, patient, now - dt.timedelta(minutes=1), params={})  # no contact
    fine = add_message(db, patient, now)

    with captured_logs("INFO") as logs:
        assert send_round(sessions, gateway, settings, now) == 1

    assert bodies(fake_twilio) == [HELP_NL]
    assert reread(db, fine).status == "sent"
    row = reread(db, broken)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.status_reason == "retrying: could not be prepared"
    assert "could not be prepared" in logs.getvalue()
    for _ in range(settings["DCT_SMS_MAX_ATTEMPTS"] - 1):
        send_round(sessions, gateway, settings, row.next_attempt_at)
        row = reread(db, broken)
    assert (row.status, row.attempts) == ("failed", 6)
    assert row.status_reason == "gave up after 6 attempts: could not be prepared"
    assert len(audit_events(db, "sms.failed", broken.id)) == 1
    assert len(fake_twilio.requests) == 1


def test_twilios_error_text_never_keeps_the_number():
    text = "The 'To' number +32 470 12 34 56 is not a valid phone number."
    assert sms_outcomes.scrub(text) == "The 'To' number [number] is not a valid phone number."


# --- leases ---------------------------------------------------------------------------


def test_the_lease_runs_from_the_claim_not_from_the_rounds_start(
    db, sessions, gateway, settings, patient
):
    started = utcnow() - dt.timedelta(minutes=5)  # a round that began long ago
    message = add_message(db, patient, started - dt.timedelta(minutes=1))

    before = utcnow()
    dispatcher = sms_dispatch.Dispatcher(sessions, gateway, settings, worker="w")
    claimed, lease = dispatcher.claim(now=started, batch=50)
    after = utcnow()

    assert message.id in claimed
    assert before + LEASE <= lease.until <= after + LEASE
    assert reread(db, message).lease_until == lease.until


@pytest.mark.parametrize(("lease_seconds", "sent"), [(10, 0), (30, 1)])
def test_a_send_starts_only_while_the_lease_outlasts_the_gateways_timeout(
    db, sessions, gateway, settings, fake_twilio, patient, lease_seconds, sent
):
    assert gateway.timeout_seconds == 10
    now = local("2027-01-14", "10:00")
    message = add_message(db, patient, now)
    leased = {**settings, "DCT_SMS_LEASE_SECONDS": lease_seconds}

    assert send_round(sessions, gateway, leased, now) == sent

    assert len(fake_twilio.requests) == sent
    row = reread(db, message)
    if not sent:  # handed back unsent and uncounted, due again at once
        assert (row.status, row.attempts, row.claimed_by) == ("pending", 0, None)
        assert (row.lease_until, row.next_attempt_at) == (None, now)


# --- a dispatcher that died mid-send --------------------------------------------------


class Killed(BaseException):
    """What a SIGKILL looks like from inside: nothing after it runs."""


class DyingGateway:
    """Dies in the middle of a send: after Twilio accepted the message, or before."""

    name = "dying"

    def __init__(self, real: TwilioGateway, *, after_twilio_has_it: bool) -> None:
        self.real, self.after_twilio_has_it = real, after_twilio_has_it
        self.timeout_seconds = real.timeout_seconds

    def send(self, to: str, body: str, message_id: uuid.UUID) -> SendResult:
        if self.after_twilio_has_it:
            self.real.send(to, body, message_id)
        raise Killed

    def find_sent(self, to: str, body: str, since: dt.datetime) -> list[SendResult]:
        return self.real.find_sent(to, body, since)


@pytest.mark.parametrize("twilio_has_it", [True, False])
def test_an_expired_lease_is_reconciled_before_any_resend(
    db, sessions, gateway, settings, fake_twilio, patient, twilio_has_it
):
    now = utcnow()
    patient.user.timezone = daytime_zone(now)
    message = add_message(db, patient, now - dt.timedelta(minutes=1))
    dying = DyingGateway(gateway, after_twilio_has_it=twilio_has_it)
    with pytest.raises(Killed):
        sms_dispatch.Dispatcher(sessions, dying, settings, worker="doomed").dispatch(now=now)
    row = reread(db, message)
    assert (row.status, row.claimed_by, row.body) == ("sending", "doomed", HELP_NL)

    assert send_round(sessions, gateway, settings, now + LEASE - dt.timedelta(seconds=1)) == 0
    assert reread(db, message).status == "sending"  # the lease still holds
    later = now + LEASE + dt.timedelta(seconds=1)
    send_round(sessions, gateway, settings, later)

    row = reread(db, message)
    assert bodies(fake_twilio) == [HELP_NL]  # one SMS, whoever sent it
    assert (row.status, row.twilio_sid) == ("sent", fake_twilio.messages[0]["sid"])
    if twilio_has_it:  # sent when it was claimed, a moment after `now`
        assert now <= row.sent_at < now + dt.timedelta(seconds=1)
    else:
        assert row.sent_at == later
    assert len(audit_events(db, "sms.sent", message.id)) == 1


def test_a_row_whose_dispatchers_keep_dying_fails_when_its_attempts_run_out(
    db, sessions, gateway, settings, fake_twilio, patient
):
    now = local("2027-01-14", "10:00")
    message = add_message(db, patient, now - dt.timedelta(minutes=10))
    message.status, message.claimed_by = "sending", "dead"
    message.attempts = settings["DCT_SMS_MAX_ATTEMPTS"]
    message.lease_until = now - dt.timedelta(minutes=1)
    db.flush()

    assert send_round(sessions, gateway, settings, now) == 0

    row = reread(db, message)
    assert (row.status, row.claimed_by) == ("failed", None)
    assert row.status_reason == "gave up after 6 attempts: dispatcher lost"
    assert fake_twilio.requests == [] and fake_twilio.queries == []  # never rendered: never sent
    assert len(audit_events(db, "sms.failed", message.id)) == 1


# --- the scheduler --------------------------------------------------------------------


def test_the_scheduler_plans_every_minute_and_dispatches_every_few_seconds(app):
    scheduler = build_scheduler(app.extensions["db"].sessions, app.config, blocking=False)

    plan, dispatch = scheduler.get_job("plan-sms"), scheduler.get_job("dispatch-sms")

    assert plan.trigger.interval == dt.timedelta(minutes=1)
    assert dispatch.trigger.interval == dt.timedelta(seconds=app.config["DCT_SMS_DISPATCH_SECONDS"])
    assert all(job.coalesce and job.max_instances == 1 for job in (plan, dispatch))


def test_the_dispatch_job_sends_from_the_configured_threads_with_work_for_each(app, fake_twilio):
    settings = {**app.config, **twilio_settings(fake_twilio), "DCT_SMS_THREADS": 12}

    (spec,) = [s for s in job_specs(settings) if s.id == "dispatch-sms"]

    assert app.config["DCT_SMS_THREADS"] == 8  # the default
    assert spec.func.keywords["threads"] == 12
    assert spec.func.keywords["batch"] == 120
    pool = spec.func.keywords["gateway"].client.http_client.session.get_adapter(fake_twilio.url)
    assert pool._pool_maxsize == 12  # one connection per thread


def test_the_dispatch_job_drains_every_due_row_through_the_configured_gateway(
    db, app, connection, patient
):
    """The development default, the console gateway, logs each SMS and marks it sent;
    one run goes on past its first batch until nothing is due."""
    # One thread: these sessions share the test's one connection.
    settings = {**app.config, "DCT_SMS_DAILY_CAP": 1000, "DCT_SMS_THREADS": 1}
    (spec,) = [s for s in job_specs(settings) if s.id == "dispatch-sms"]
    now = utcnow()
    patient.user.timezone = daytime_zone(now)
    messages = [add_message(db, patient, now - dt.timedelta(minutes=1)) for _ in range(120)]

    run_job(joined_sessions(connection), spec.id, spec.func, spec.own_transactions)

    rows = [reread(db, message) for message in messages]
    assert {row.status for row in rows} == {"sent"}
    assert all(row.twilio_sid.startswith("CONSOLE-") for row in rows)


def test_the_plan_job_plans_through_the_rules(db, world):
    assert jobs.plan_sms(db, Actor.system("test")) == "0 SMS planned"


@pytest.mark.parametrize(
    ("command", "params", "enabled", "reloader_child", "starts"),
    [
        (run_command, {"reload": False}, True, False, True),
        (run_command, {"reload": True}, True, False, False),  # the reloader's watcher
        (run_command, {"reload": True}, True, True, True),  # the reloader's server
        (run_command, {"reload": False}, False, False, False),
        (cli.scheduler_run, {}, True, False, False),  # starts its own, blocking
    ],
)
def test_flask_run_starts_the_scheduler_in_the_process_that_serves(
    make_app: AppFactory, monkeypatch, command, params, enabled, reloader_child, starts
):
    other = make_app(DCT_SCHEDULER_ENABLED=enabled)
    if reloader_child:
        monkeypatch.setenv("WERKZEUG_RUN_MAIN", "true")
    with click.Context(command, info_name=command.name) as ctx:
        ctx.params = params
        scheduler = cli.start_scheduler_under_flask_run(other)
    try:
        assert (scheduler is not None) == starts
        assert scheduler is None or scheduler.running
    finally:
        if scheduler is not None:
            scheduler.shutdown()


def test_an_app_loaded_outside_the_cli_never_starts_the_scheduler(make_app: AppFactory):
    """As gunicorn loads it."""
    assert cli.start_scheduler_under_flask_run(make_app(DCT_SCHEDULER_ENABLED=True)) is None
