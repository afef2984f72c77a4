"""SMS rules: which reminders are planned when, in the transaction of what needs them,
never twice, with local times only, and whether each still matters at sending.

Planning compares with `sms_rules.utcnow`, frozen here before the visits of 2027 (the
spring-forward Sunday in Brussels is 28 March), so the tests do not age.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.actor import Actor, Role
from services.audit import chain as audit
from services.models import (
    AuditEvent,
    ConsentState,
    InstanceStatus,
    SmsMessage,
    SmsStatus,
    StudySmsSettings,
    User,
    Visit,
    VisitStatus,
)
from services.notifications import planning as sms_rules
from services.notifications import sending
from services.people import participants as people
from services.visits import booking as visits
from tests.concurrency import at_once, fresh_postgres_database
from tests.factories.consent import withdraw_from_study
from tests.factories.epro import make_instance, make_questionnaire
from tests.factories.people import (
    Patient,
    World,
    activate,
    headers_for,
    make_participant,
    make_world,
)
from tests.factories.visits import (
    book_via_api,
    coordinator_actor,
    enrolled_with_visits,
    make_nurse_ready,
)

BRUSSELS = ZoneInfo("Europe/Brussels")
BEFORE = dt.datetime(2027, 3, 1, tzinfo=dt.UTC)
BASELINE = dt.date(2027, 3, 15)  # D14 is due 27 to 31 March, across the DST change
SUNDAY, MONDAY = dt.date(2027, 3, 28), dt.date(2027, 3, 29)
ALL_WEEK = tuple({"weekday": d, "start": "07:00", "end": "20:00"} for d in range(7))
SYSTEM = Actor.system("test")
# The only parameters each template may carry: times and counts, never health data.
PARAM_KEYS = {
    "activation_code": {"code"},
    "visit_24h": {"time", "date"},
    "visit_morning": {"time"},
    "epro_open": set(),
    "epro_closing": {"time"},
    "reconsent_pending": set(),
    "nurse_next_day": {"count", "first_time"},
}


def at(day: dt.date, clock: str) -> dt.datetime:
    """A Brussels wall-clock time as a UTC instant."""
    hours, minutes = map(int, clock.split(":"))
    return dt.datetime.combine(day, dt.time(hours, minutes), tzinfo=BRUSSELS).astimezone(dt.UTC)


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def outbox(db: Session, **where: object) -> list[SmsMessage]:
    db.expire_all()
    query = select(SmsMessage).filter_by(**where).order_by(SmsMessage.due_at, SmsMessage.id)
    return list(db.scalars(query))


def of_visit(db: Session, visit: Visit, status: SmsStatus | None = None) -> list[SmsMessage]:
    rows = outbox(db, **({"status": status.value} if status else {}))
    return [row for row in rows if row.dedupe_key.startswith(f"visit:{visit.id}:")]


def params(message: SmsMessage) -> dict:
    return json.loads(message.params)


def book(db: Session, world: World, visit: Visit, start: dt.datetime) -> Visit:
    end = start + dt.timedelta(minutes=visit.duration_minutes)
    booking = visits.Booking(world.nurse_a.id, start, end)
    return visits.book(db, coordinator_actor(db, world.coordinator_a), visit.id, booking)


def d14_of(db: Session, world: World, patient: Patient | None = None) -> Visit:
    planned = enrolled_with_visits(db, world, patient, baseline=BASELINE)
    return next(visit for visit in planned if visit.code == "D14")


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> dt.datetime:
    monkeypatch.setattr(sms_rules, "utcnow", lambda: BEFORE)
    return BEFORE


@pytest.fixture
def d14(db: Session, world: World, frozen: dt.datetime) -> Visit:
    make_nurse_ready(db, world, hours=ALL_WEEK)
    return d14_of(db, world)


# --- visits ------------------------------------------------------------------------------


def test_booking_plans_24h_and_morning_reminders_in_local_time_across_dst(db, world, client, d14):
    start = at(SUNDAY, "10:00")  # 08:00Z: the clocks went forward at 02:00 that night
    assert book_via_api(client, world.coordinator_a, d14, world.nurse_a, start).status_code == 200

    day_before, morning = of_visit(db, d14)
    epoch = int(start.timestamp())
    assert day_before.dedupe_key == f"visit:{d14.id}:{epoch}:24h"
    assert morning.dedupe_key == f"visit:{d14.id}:{epoch}:morning"
    # 24 hours before is 09:00 on Saturday's winter clock; 08:00 on Sunday is 06:00Z.
    assert day_before.due_at == utc("2027-03-27T08:00") == at(dt.date(2027, 3, 27), "09:00")
    assert morning.due_at == utc("2027-03-28T06:00")
    assert (day_before.template, params(day_before)) == (
        "visit_24h",
        {"time": "10:00", "date": "2027-03-28"},
    )
    assert (morning.template, params(morning)) == ("visit_morning", {"time": "10:00"})
    for row in (day_before, morning):
        assert (row.status, row.next_attempt_at, row.attempts) == ("pending", row.due_at, 0)
        assert (row.user_id, row.participant_id) == (world.patient_a.user.id, d14.participant_id)
        assert row.relevance == {"visit_id": str(d14.id), "start_at": start.isoformat()}


def test_the_reminders_roll_back_with_their_booking(db, world, client, d14):
    savepoint = db.begin_nested()
    book(db, world, d14, at(MONDAY, "10:00"))
    assert len(of_visit(db, d14)) == 2
    savepoint.rollback()
    assert of_visit(db, d14) == []

    outside_window = at(dt.date(2027, 4, 12), "10:00")
    response = book_via_api(client, world.coordinator_a, d14, world.nurse_a, outside_window)
    assert response.status_code == 409
    assert of_visit(db, d14) == []


def test_rebooking_cancels_the_old_reminders_and_plans_new_keys(db, world, client, d14):
    response = book_via_api(client, world.coordinator_a, d14, world.nurse_a, at(MONDAY, "10:00"))
    assert response.status_code == 200
    old = {row.dedupe_key for row in of_visit(db, d14)}

    later = at(MONDAY, "14:00")
    assert book_via_api(client, world.coordinator_a, d14, world.nurse_a, later).status_code == 200
    cancelled = of_visit(db, d14, SmsStatus.CANCELLED)
    assert {row.dedupe_key for row in cancelled} == old
    assert {row.status_reason for row in cancelled} == {"rescheduled"}
    pending = of_visit(db, d14, SmsStatus.PENDING)
    assert [params(row)["time"] for row in pending] == ["14:00", "14:00"]
    assert not {row.dedupe_key for row in pending} & old

    # Booked again at the same time: the same reminders stand.
    assert book_via_api(client, world.coordinator_a, d14, world.nurse_a, later).status_code == 200
    assert of_visit(db, d14, SmsStatus.PENDING) == pending
    assert len(of_visit(db, d14)) == 4


def test_cancelling_the_visit_cancels_its_reminders(db, world, client, d14):
    response = book_via_api(client, world.coordinator_a, d14, world.nurse_a, at(MONDAY, "10:00"))
    assert response.status_code == 200
    response = client.post(
        f"/api/v1/visits/{d14.id}/cancel",
        json={"reason": "in hospital"},
        headers=headers_for(client, world.coordinator_a),
    )
    assert response.status_code == 200
    rows = of_visit(db, d14)
    assert [(row.status, row.status_reason) for row in rows] == [
        ("cancelled", "visit cancelled")
    ] * 2


def test_only_reminders_still_ahead_and_allowed_by_the_study_are_planned(
    db, world, d14, monkeypatch
):
    db.add(
        StudySmsSettings(
            study_id=world.study.id, sender_name="Trial", help_contact="+3220000000", rules={}
        )
    )
    db.flush()
    monkeypatch.setattr(sms_rules, "utcnow", lambda: utc("2027-03-27T12:00"))
    book(db, world, d14, at(SUNDAY, "10:00"))
    assert [row.template for row in of_visit(db, d14)] == ["visit_morning"]

    settings = db.get(StudySmsSettings, world.study.id)
    settings.rules = {"visit_morning": False}
    book(db, world, d14, at(SUNDAY, "11:00"))
    assert of_visit(db, d14, SmsStatus.PENDING) == []


def test_planning_a_visit_twice_plans_nothing_more(db, world, d14):
    visit = book(db, world, d14, at(MONDAY, "10:00"))
    keys = [row.dedupe_key for row in of_visit(db, d14)]
    sms_rules.plan_visit_reminders(db, visit)
    sms_rules.plan_visit_reminders(db, visit)
    assert [row.dedupe_key for row in of_visit(db, d14)] == keys
    assert {row.status for row in of_visit(db, d14)} == {"pending"}


def test_a_visit_changed_after_planning_is_no_longer_relevant(db, world, d14, monkeypatch):
    visit = book(db, world, d14, at(MONDAY, "10:00"))
    day_before, morning = of_visit(db, d14)
    assert sending.still_relevant(db, day_before) is None

    visit.start_at = at(MONDAY, "11:00")  # moved without replanning
    db.flush()
    assert sending.still_relevant(db, morning) == "visit no longer scheduled at that time"
    visit.start_at, visit.status = at(MONDAY, "10:00"), VisitStatus.CANCELLED.value
    db.flush()
    assert sending.still_relevant(db, morning) == "visit no longer scheduled at that time"
    visit.status = VisitStatus.CONFIRMED.value
    db.flush()
    assert sending.still_relevant(db, morning) is None

    monkeypatch.setattr(sending, "utcnow", lambda: at(MONDAY, "10:30"))
    assert sending.still_relevant(db, morning) == "visit time has passed"


def test_a_day_before_reminder_deferred_into_the_visit_day_is_not_sent(db, world, d14, monkeypatch):
    """It says "tomorrow": pushed past midnight by quiet hours or the cap, it would be
    wrong, and the morning reminder covers the day."""
    book(db, world, d14, at(MONDAY, "10:00"))
    day_before, _ = of_visit(db, d14)

    monkeypatch.setattr(sending, "utcnow", lambda: at(MONDAY, "00:30") - dt.timedelta(hours=1))
    assert sending.still_relevant(db, day_before) is None
    monkeypatch.setattr(sending, "utcnow", lambda: at(MONDAY, "08:00"))
    assert sending.still_relevant(db, day_before) == "the day before the visit has passed"


def test_a_withdrawal_after_planning_stops_every_reminder_of_the_participant(db, world, d14):
    book(db, world, d14, at(MONDAY, "10:00"))
    withdraw_from_study(db, world.patient_a, world.coordinator_a)
    rows = of_visit(db, d14)
    assert {(row.status, row.status_reason) for row in rows} == {("cancelled", "consent withdrawn")}
    # Still refused by the check at sending, should one have been claimed already.
    assert [sending.still_relevant(db, row) for row in rows] == ["participant withdrawn"] * 2

    world.patient_b.participant.contact_allowed = False
    db.flush()
    (activation,) = outbox(db, participant_id=world.patient_b.participant.id)
    assert sending.still_relevant(db, activation) == "participant does not wish to be contacted"


# --- activation codes --------------------------------------------------------------------


def test_creating_a_participant_plans_their_activation_code(db, world):
    patient = make_participant(db, world.site_a, coordinator=world.coordinator_a, activated=False)
    (row,) = outbox(db, user_id=patient.user.id)
    assert row.template == "activation_code"
    assert params(row) == {"code": patient.activation_code}
    assert row.dedupe_key == f"activation:{patient.user.id}:{row.relevance['activation_code_id']}"
    assert row.due_at <= sms_rules.utcnow()
    assert sending.still_relevant(db, row) is None

    sms_rules.plan_activation_sms(db, patient.user, patient.activation_code)
    assert len(outbox(db, user_id=patient.user.id)) == 1


def test_a_reissued_code_is_sent_again_and_the_old_one_is_not(db, world):
    patient = make_participant(db, world.site_a, coordinator=world.coordinator_a, activated=False)
    actor = coordinator_actor(db, world.coordinator_a)
    code = people.reissue_activation_code(db, actor, patient.participant.id)
    first, second = outbox(db, user_id=patient.user.id)
    assert params(second) == {"code": code} and first.dedupe_key != second.dedupe_key
    assert sending.still_relevant(db, first) == "activation code replaced by a newer one"
    assert sending.still_relevant(db, second) is None
    activate(db, code)
    assert sending.still_relevant(db, second) == "activation code already used"


def test_no_activation_sms_without_a_phone_or_permission_or_for_staff(db, world):
    patient = make_participant(db, world.site_a, coordinator=world.coordinator_a, activated=False)
    before = len(outbox(db))
    patient.user.phone = None
    sms_rules.plan_activation_sms(db, patient.user, patient.activation_code)
    patient.user.phone, patient.participant.contact_allowed = "+32470000001", False
    sms_rules.plan_activation_sms(db, patient.user, patient.activation_code)
    nurse, code = people.create_staff(
        db,
        coordinator_actor(db, world.coordinator_a),
        people.NewStaff(
            email="new.nurse@example.org",
            full_name="New Nurse",
            role=Role.NURSE,
            locale="en",
            timezone="Europe/Brussels",
            phone="+32470000002",
            site_ids=[world.site_a.id],
        ),
    )
    sms_rules.plan_activation_sms(db, nurse, code)
    assert len(outbox(db)) == before


# --- the plan job: ePRO ------------------------------------------------------------------


@pytest.fixture
def enrolled(db: Session, world: World, frozen: dt.datetime) -> Patient:
    enrolled_with_visits(db, world, baseline=BASELINE)
    return world.patient_a


def test_epro_windows_opening_within_a_day_get_open_and_closing_reminders(db, world, enrolled):
    questionnaire = make_questionnaire(db, world.study, world.coordinator_a)
    evening = make_instance(
        db,
        enrolled.participant,
        questionnaire,
        opens_at=at(SUNDAY, "18:00"),
        closes_at=at(SUNDAY, "23:59"),
    )
    short = make_instance(
        db,
        enrolled.participant,
        questionnaire,
        opens_at=at(SUNDAY, "12:00"),
        closes_at=at(SUNDAY, "13:30"),
    )
    make_instance(  # opens beyond the 24 hours ahead
        db, enrolled.participant, questionnaire, opens_at=at(MONDAY, "08:00")
    )
    make_instance(  # answered already
        db,
        enrolled.participant,
        questionnaire,
        opens_at=at(SUNDAY, "08:00"),
        status=InstanceStatus.COMPLETED,
    )
    now = utc("2027-03-27T23:00")  # midnight in Brussels, before the clocks go forward

    assert sms_rules.plan_due(db, SYSTEM, now) == 3
    rows = outbox(db, participant_id=enrolled.participant.id, template="epro_open")
    rows += outbox(db, participant_id=enrolled.participant.id, template="epro_closing")
    assert {(row.dedupe_key, row.due_at) for row in rows} == {
        (f"epro:{short.id}:open", utc("2027-03-28T10:00")),
        (f"epro:{evening.id}:open", utc("2027-03-28T16:00")),
        (f"epro:{evening.id}:closing", utc("2027-03-28T19:59")),
    }
    closing = next(row for row in rows if row.template == "epro_closing")
    assert params(closing) == {"time": "23:59"}
    assert closing.relevance == {"instance_id": str(evening.id)}

    assert sms_rules.plan_due(db, SYSTEM, now) == 0
    assert sms_rules.plan_due(db, SYSTEM, now + dt.timedelta(hours=1)) == 0
    assert len(outbox(db, participant_id=enrolled.participant.id)) == len(rows) + 1  # + code
    (event,) = db.scalars(select(AuditEvent).where(AuditEvent.action == "sms.plan"))
    assert event.after == {"epro": 3, "reconsent": 0, "nurse_next_day": 0}


def test_an_epro_reminder_follows_its_window_and_stops_once_answered_or_closed(
    db, world, enrolled, monkeypatch
):
    questionnaire = make_questionnaire(db, world.study, world.coordinator_a)
    instance = make_instance(
        db,
        enrolled.participant,
        questionnaire,
        opens_at=at(SUNDAY, "18:00"),
        closes_at=at(SUNDAY, "23:59"),
    )
    now = utc("2027-03-28T08:00")
    sms_rules.plan_due(db, SYSTEM, now)
    instance.opens_at, instance.closes_at = at(SUNDAY, "19:00"), at(SUNDAY, "22:00")
    db.flush()
    assert sms_rules.plan_due(db, SYSTEM, now) == 0
    opened, closing = [
        row
        for row in outbox(db, participant_id=enrolled.participant.id)
        if row.dedupe_key.startswith(f"epro:{instance.id}:")
    ]
    assert (opened.due_at, opened.next_attempt_at) == (utc("2027-03-28T17:00"),) * 2
    assert (closing.due_at, params(closing)) == (utc("2027-03-28T18:00"), {"time": "22:00"})

    monkeypatch.setattr(sending, "utcnow", lambda: utc("2027-03-28T17:00"))
    assert sending.still_relevant(db, opened) is None
    monkeypatch.setattr(sending, "utcnow", lambda: utc("2027-03-28T20:00"))
    assert sending.still_relevant(db, closing) == "questionnaire window closed"
    instance.status = InstanceStatus.COMPLETED.value
    db.flush()
    assert sending.still_relevant(db, closing) == "questionnaire answered"
    instance.status = InstanceStatus.CANCELLED.value
    db.flush()
    assert sending.still_relevant(db, opened) == "questionnaire cancelled"


# --- the plan job: re-consent ------------------------------------------------------------


def test_reconsent_reminders_come_every_three_local_days_at_most_three_times(db, world, enrolled):
    enrolled.participant.consent_state = ConsentState.REQUIRES_RECONSENT.value
    db.flush()
    first = at(dt.date(2027, 3, 26), "10:00")  # winter time; the next ones in summer time
    assert sms_rules.plan_due(db, SYSTEM, first) == 1
    assert sms_rules.plan_due(db, SYSTEM, first) == 0
    assert sms_rules.plan_due(db, SYSTEM, first + dt.timedelta(days=2, hours=22)) == 0
    # Three local days later is 10:00 summer time, 08:00Z (not 72 hours: 09:00Z).
    assert sms_rules.plan_due(db, SYSTEM, utc("2027-03-29T07:59")) == 0
    for day in (MONDAY, dt.date(2027, 3, 31), dt.date(2027, 4, 1), dt.date(2027, 4, 20)):
        sms_rules.plan_due(db, SYSTEM, at(day, "10:00"))
    rows = outbox(db, template="reconsent_pending")
    pid = enrolled.participant.id
    assert [(row.dedupe_key, row.due_at) for row in rows] == [
        (f"reconsent:{pid}:1", utc("2027-03-26T09:00")),
        (f"reconsent:{pid}:2", utc("2027-03-29T08:00")),
        (f"reconsent:{pid}:3", utc("2027-04-01T08:00")),
    ]
    assert all(row.relevance == {"participant_id": str(pid)} for row in rows)
    assert sending.still_relevant(db, rows[2]) is None
    enrolled.participant.consent_state = ConsentState.COMPLETE.value
    db.flush()
    assert sending.still_relevant(db, rows[2]) == "re-consent no longer pending"


def test_a_new_reconsent_episode_gets_its_own_reminders(db, world, enrolled):
    participant = enrolled.participant
    participant.consent_state = ConsentState.REQUIRES_RECONSENT.value
    db.flush()
    # Audit events carry the real clock: the first episode is placed before it.
    first = dt.datetime.now(dt.UTC) - dt.timedelta(days=20)
    for days in (0, 3, 6, 9):
        sms_rules.plan_due(db, SYSTEM, first + dt.timedelta(days=days))
    assert len(outbox(db, template="reconsent_pending")) == 3
    audit.record(  # what consent/ records when a newer version must be signed
        db,
        coordinator_actor(db, world.coordinator_a),
        sms_rules.RECONSENT_ACTION,
        entity_type="consent",
        entity_id=participant.id,
        subject=people.participant_subject(participant),
    )
    assert sms_rules.plan_due(db, SYSTEM, dt.datetime.now(dt.UTC)) == 1
    assert (
        outbox(db, template="reconsent_pending")[-1].dedupe_key == f"reconsent:{participant.id}:4"
    )


# --- the plan job: the nurse's next day --------------------------------------------------


def test_the_nurse_gets_tomorrows_list_at_18_00_local(db, world, d14):
    other = make_participant(db, world.site_a, coordinator=world.coordinator_a)
    other_d14 = d14_of(db, world, other)
    book(db, world, d14, at(MONDAY, "10:00"))
    book(db, world, other_d14, at(MONDAY, "08:30"))
    nurse: User = world.nurse_a

    assert sms_rules.plan_due(db, SYSTEM, at(dt.date(2027, 3, 27), "12:00")) == 0
    sunday_noon = at(SUNDAY, "12:00")
    assert sms_rules.plan_due(db, SYSTEM, sunday_noon) == 1
    (row,) = outbox(db, user_id=nurse.id)
    assert row.dedupe_key == f"nurse:{nurse.id}:2027-03-29"
    assert row.due_at == utc("2027-03-28T16:00")  # 18:00 summer time
    assert (row.template, params(row)) == ("nurse_next_day", {"count": 2, "first_time": "08:30"})
    assert (row.participant_id, row.study_id) == (None, world.study.id)
    assert sending.still_relevant(db, row) is None

    visits.transition(
        db,
        coordinator_actor(db, world.coordinator_a),
        other_d14.id,
        VisitStatus.CANCELLED,
        reason="moved away",
    )
    assert sms_rules.plan_due(db, SYSTEM, sunday_noon) == 0
    (row,) = outbox(db, user_id=nurse.id)
    assert params(row) == {"count": 1, "first_time": "10:00"}

    db.get(Visit, d14.id).status = VisitStatus.CANCELLED.value
    db.flush()
    assert sending.still_relevant(db, row) == "no visits that day any more"


# --- no health data ----------------------------------------------------------------------


@pytest.mark.requirement("SMS-1")
def test_no_planned_message_carries_more_than_times_counts_and_the_code(db, world, d14):
    questionnaire = make_questionnaire(db, world.study, world.coordinator_a)
    make_instance(
        db,
        world.patient_a.participant,
        questionnaire,
        opens_at=at(SUNDAY, "18:00"),
        closes_at=at(SUNDAY, "23:00"),
    )
    book(db, world, d14, at(MONDAY, "10:00"))
    world.patient_a.participant.consent_state = ConsentState.REQUIRES_RECONSENT.value
    db.flush()
    sms_rules.plan_due(db, SYSTEM, at(SUNDAY, "12:00"))

    rows = outbox(db)
    assert set(PARAM_KEYS) <= {row.template for row in rows}
    forbidden = [d14.name, d14.code, *d14.procedures, *questionnaire.title.values()]
    for row in rows:
        assert set(params(row)) == PARAM_KEYS[row.template], row.template
        if row.template != "activation_code":  # a random code may spell anything
            assert not [word for word in forbidden if word.lower() in row.params.lower()]


# --- two planners at once (PostgreSQL) ---------------------------------------------------


@pytest.fixture
def race_app(database_url: str, make_app: Callable[..., Flask]) -> Iterator[Flask]:
    with fresh_postgres_database(
        database_url, "dct_sms_plan", "concurrent planners need PostgreSQL's row locks"
    ) as url:
        yield make_app(DATABASE_URL=url)


@pytest.mark.slow
def test_two_planners_at_once_plan_each_key_once(race_app):
    engine = race_app.extensions["db"].engine
    with Session(engine, expire_on_commit=False) as db:
        world = make_world(db)
        world.patient_a.participant.consent_state = ConsentState.REQUIRES_RECONSENT.value
        db.commit()
    now = dt.datetime.now(dt.UTC)

    def plan() -> int:
        with Session(engine) as session:
            planned = sms_rules.plan_due(session, SYSTEM, now)
            session.commit()
            return planned

    assert sorted(at_once(plan, plan)) == [0, 1]
    with Session(engine) as db:
        assert (
            len(list(db.scalars(select(SmsMessage).filter_by(template="reconsent_pending")))) == 1
        )
