"""ePRO instances: derived from schedules in the participant's zone, moved with their
visit, handed over to a new version, cancelled by withdrawal, missed after the grace,
and listed as due."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from scheduling import housekeeping
from scheduling.jobs import job_specs
from scheduling.runner import run_job
from services.actor import Actor
from services.db import utcnow
from services.epro import definitions as epro_definitions
from services.epro import plan as epro_plan
from services.models import (
    EproInstance,
    InstanceStatus,
    Questionnaire,
    QuestionnaireStatus,
    SmsMessage,
    SmsStatus,
    Visit,
)
from services.notifications import planning as sms_rules
from services.people import participants as people
from tests.checks import assert_problem, audit_events
from tests.conftest import joined_sessions
from tests.factories.consent import withdraw_from_study
from tests.factories.epro import make_instance, make_questionnaire
from tests.factories.people import headers_for, make_participant
from tests.factories.visits import (
    book_via_api,
    coordinator_actor,
    enrolled_with_visits,
    make_nurse_ready,
)

BRUSSELS = ZoneInfo("Europe/Brussels")
SYSTEM = Actor.system("test")
EVENING = {"opens": "18:00", "closes": "23:59"}


def daily(start: int = 1, end: int = 7, window: dict | None = None) -> dict:
    return {"type": "daily", "start_day": start, "end_day": end, "window": window or EVENING}


def instances_of(db, patient) -> list[EproInstance]:
    return list(
        db.scalars(
            select(EproInstance)
            .where(EproInstance.participant_id == patient.participant.id)
            .order_by(EproInstance.opens_at)
        )
    )


def local(instant: dt.datetime) -> str:
    return instant.astimezone(BRUSSELS).strftime("%Y-%m-%d %H:%M")


def today() -> dt.date:
    return utcnow().astimezone(BRUSSELS).date()


# --- windows in the participant's zone --------------------------------------------------


def test_a_window_keeps_its_local_hours_across_the_spring_dst_change():
    schedule = daily(window={"opens": "18:00", "closes": "23:59"})
    before = epro_plan.window(schedule, dt.date(2027, 3, 27), BRUSSELS)
    after = epro_plan.window(schedule, dt.date(2027, 3, 28), BRUSSELS)

    assert [t.strftime("%H:%M") for t in before] == ["17:00", "22:59"]  # CET, UTC+1
    assert [t.strftime("%H:%M") for t in after] == ["16:00", "21:59"]  # CEST, UTC+2


def test_a_window_over_the_night_of_the_autumn_change_lasts_an_hour_longer():
    schedule = daily(window={"opens": "20:00", "closes": "08:00", "close_after_days": 1})
    opens, closes = epro_plan.window(schedule, dt.date(2027, 10, 30), BRUSSELS)

    assert (closes - opens) == dt.timedelta(hours=13)
    assert (local(opens), local(closes)) == ("2027-10-30 20:00", "2027-10-31 08:00")


def test_a_local_time_skipped_by_the_spring_change_opens_an_hour_later():
    schedule = daily(window={"opens": "02:30", "closes": "10:00"})
    opens, _ = epro_plan.window(schedule, dt.date(2027, 3, 28), BRUSSELS)

    assert local(opens) == "2027-03-28 03:30"


def test_weekly_and_once_schedules_pick_their_days():
    monday = dt.date(2027, 1, 4)
    weekly = {
        "type": "weekly",
        "weekdays": [0, 3],
        "start_day": 0,
        "end_day": 13,
        "window": EVENING,
    }
    once = {"type": "once", "start_day": 28, "window": EVENING}

    weekly_days = [o.local_date for o in epro_plan.occasions(weekly, monday, {}, BRUSSELS)]
    assert [d.strftime("%a %d") for d in weekly_days] == ["Mon 04", "Thu 07", "Mon 11", "Thu 14"]
    (only,) = epro_plan.occasions(once, monday, {}, BRUSSELS)
    assert (only.slot, only.local_date) == ("2027-02-01", dt.date(2027, 2, 1))


# --- planning at enrolment ---------------------------------------------------------------


def test_enrolment_plans_each_answerable_daily_window_with_stable_ids(db, world):
    questionnaire = make_questionnaire(db, world.study, world.coordinator_a, schedule=daily(0, 6))
    baseline = today()

    enrolled_with_visits(db, world, baseline=baseline)

    planned = instances_of(db, world.patient_a)
    # Day 0's window may have closed already (after 23:59 local); the rest are ahead.
    closed_today = utcnow() >= epro_plan.window(daily(), baseline, BRUSSELS)[1]
    assert len(planned) == 7 - closed_today
    assert planned[-1].local_date == baseline + dt.timedelta(days=6)
    assert {i.questionnaire_id for i in planned} == {questionnaire.id}
    assert all(local(i.opens_at).endswith("18:00") for i in planned)
    assert len({i.id for i in planned}) == len(planned)
    (event,) = audit_events(db, "epro.plan", world.patient_a.participant.id)
    assert event.after == {"instances": {"HFDIARY 1.0": len(planned)}}


def test_enrolment_over_a_dst_change_keeps_18_00_local(db, world):
    make_questionnaire(db, world.study, world.coordinator_a, schedule=daily(1, 4))

    enrolled_with_visits(db, world, baseline=dt.date(2027, 3, 25))

    planned = instances_of(db, world.patient_a)
    assert [local(i.opens_at) for i in planned] == [
        "2027-03-26 18:00",
        "2027-03-27 18:00",
        "2027-03-28 18:00",
        "2027-03-29 18:00",
    ]
    assert [i.opens_at.strftime("%H:%M") for i in planned] == ["17:00", "17:00", "16:00", "16:00"]


def test_drafts_and_windows_already_closed_are_not_planned(db, world):
    make_questionnaire(db, world.study, world.coordinator_a, published=False, code="DRAFT")
    make_questionnaire(db, world.study, world.coordinator_a, schedule=daily(-10, -1))

    enrolled_with_visits(db, world, baseline=today())

    assert instances_of(db, world.patient_a) == []


# --- visit-relative questionnaires follow their visit --------------------------------------


def visit_schedule(code: str) -> dict:
    return {
        "type": "visit",
        "visit_code": code,
        "offset_days": 0,
        "window": {"opens": "08:00", "closes": "20:00"},
    }


def test_a_visit_questionnaire_moves_with_the_booking_and_goes_with_a_cancellation(
    db, world, client
):
    nurse = make_nurse_ready(db, world)
    make_questionnaire(db, world.study, world.coordinator_a, schedule=visit_schedule("D14"))
    baseline = today() + dt.timedelta(days=2)
    visits = enrolled_with_visits(db, world, baseline=baseline)
    v2 = next(v for v in visits if v.code == "D14")
    (instance,) = instances_of(db, world.patient_a)
    assert (instance.slot, instance.local_date, instance.visit_id) == (
        "visit:D14",
        v2.target_date,
        v2.id,
    )

    booked_day = next(
        v2.window_start + dt.timedelta(days=n)
        for n in range(5)
        if (v2.window_start + dt.timedelta(days=n)).weekday() < 5
        and v2.window_start + dt.timedelta(days=n) != v2.target_date
    )
    start = dt.datetime.combine(booked_day, dt.time(10, 0), tzinfo=BRUSSELS)
    assert book_via_api(client, world.coordinator_a, v2, nurse, start).status_code == 200
    db.expire_all()
    assert instance.local_date == booked_day
    assert local(instance.opens_at) == f"{booked_day} 08:00"
    assert audit_events(db, "epro.instance.follow_visit", instance.id)
    sms_rules.plan_due(db, SYSTEM, instance.opens_at - dt.timedelta(hours=1))

    response = client.post(
        f"/api/v1/visits/{v2.id}/cancel",
        json={"reason": "participant in hospital"},
        headers=headers_for(client, world.coordinator_a),
    )
    assert response.status_code == 200, response.get_json()
    db.expire_all()
    assert (instance.status, instance.cancel_reason) == ("cancelled", "visit cancelled")
    reminders = db.scalars(
        select(SmsMessage).where(SmsMessage.dedupe_key.startswith(f"epro:{instance.id}:"))
    ).all()
    assert reminders  # its reminders go with it, not only skipped at their time
    assert {(m.status, m.status_reason) for m in reminders} == {("cancelled", "visit cancelled")}


# --- a new version hands over ---------------------------------------------------------------


def test_publishing_a_new_version_takes_over_from_the_next_window(db, world):
    old = make_questionnaire(db, world.study, world.coordinator_a, schedule=daily(0, 5))
    enrolled_with_visits(db, world, baseline=today())
    open_now = make_instance(db, world.patient_a.participant, old)  # a window open right now
    new = make_questionnaire(
        db, world.study, world.coordinator_a, version="2.0", schedule=daily(0, 5)
    )
    old.status = QuestionnaireStatus.SUPERSEDED.value

    planned = epro_plan.plan_published(db, coordinator_actor(db, world.coordinator_a), new)

    db.expire_all()
    rows = instances_of(db, world.patient_a)
    future_old = [i for i in rows if i.questionnaire_id == old.id and i.opens_at > utcnow()]
    assert future_old and all(i.status == "cancelled" for i in future_old)
    assert {i.cancel_reason for i in future_old} == {"replaced by version 2.0"}
    assert open_now.status == "scheduled"
    new_rows = [i for i in rows if i.questionnaire_id == new.id]
    assert len(new_rows) == planned == len(future_old)
    assert all(i.opens_at > utcnow() for i in new_rows)


# Noon in Brussels on day 5: today's daytime window is open, tomorrow's opens within 24 hours.
NOON = dt.datetime(2027, 3, 20, 11, 0, tzinfo=dt.UTC)
DAYTIME = {"opens": "08:00", "closes": "20:00"}


def pending_epro_reminders(db) -> Counter[tuple]:
    """Pending ePRO reminders by participant, occasion (code and slot) and template."""
    db.expire_all()
    rows = db.scalars(
        select(SmsMessage).where(
            SmsMessage.status == SmsStatus.PENDING.value,
            SmsMessage.template.in_(["epro_open", "epro_closing"]),
        )
    )
    found: Counter[tuple] = Counter()
    for row in rows:
        instance = db.get(EproInstance, uuid.UUID(row.relevance["instance_id"]))
        code = db.get(Questionnaire, instance.questionnaire_id).code
        found[instance.participant_id, code, instance.slot, row.template] += 1
    return found


@pytest.mark.parametrize(
    "window", [DAYTIME, {"opens": "14:00", "closes": "22:00"}], ids=["same", "opening-later"]
)
def test_publishing_a_new_version_leaves_one_pending_reminder_per_occasion(
    db, world, monkeypatch, window
):
    """The handed-over instances' reminders are cancelled with them; an occasion the old
    version still has open (today's) is not planned again by the new one, even when the
    new window would open later today."""
    monkeypatch.setattr(epro_plan, "utcnow", lambda: NOON)
    monkeypatch.setattr(sms_rules, "utcnow", lambda: NOON)
    old = make_questionnaire(db, world.study, world.coordinator_a, schedule=daily(0, 10, DAYTIME))
    enrolled_with_visits(db, world, baseline=dt.date(2027, 3, 15))
    assert sms_rules.plan_due(db, SYSTEM, NOON) == 4  # today's and tomorrow's, open and closing
    draft = make_questionnaire(
        db,
        world.study,
        world.coordinator_a,
        published=False,
        version="2.0",
        schedule=daily(0, 10, window),
    )

    epro_definitions.publish(db, coordinator_actor(db, world.coordinator_a), draft.id)
    sms_rules.plan_due(db, SYSTEM, NOON)

    pending = pending_epro_reminders(db)
    assert pending and max(pending.values()) == 1
    participant = world.patient_a.participant.id
    # The new version's 14:00 window of tomorrow is beyond the 24 hours ahead.
    expected = {"2027-03-20", "2027-03-21"} if window == DAYTIME else {"2027-03-20"}
    assert {slot for (_p, _c, slot, _t) in pending} == expected
    today, tomorrow = (
        db.scalars(
            select(EproInstance).where(
                EproInstance.participant_id == participant, EproInstance.slot == slot
            )
        ).all()
        for slot in ("2027-03-20", "2027-03-21")
    )
    assert [(i.questionnaire_id, i.status) for i in today] == [(old.id, "scheduled")]
    assert {(i.questionnaire_id, i.status) for i in tomorrow} == {
        (old.id, "cancelled"),
        (draft.id, "scheduled"),
    }
    handed_over = next(i for i in tomorrow if i.questionnaire_id == old.id)
    replaced = db.scalars(
        select(SmsMessage).where(SmsMessage.dedupe_key.startswith(f"epro:{handed_over.id}:"))
    ).all()
    assert {(m.status, m.status_reason) for m in replaced} == {
        ("cancelled", "replaced by version 2.0")
    }
    (event,) = audit_events(db, "epro.plan", draft.id)
    assert event.after["previous_version_reminders_cancelled"] == 2
    assert event.after["occasions_kept_by_previous_version"] == (window != DAYTIME)


# --- withdrawal and the missed job ---------------------------------------------------------


@pytest.mark.requirement("CONSENT-12")
def test_withdrawal_cancels_what_is_not_answered(db, world):
    questionnaire = make_questionnaire(db, world.study, world.coordinator_a, schedule=daily(0, 3))
    enrolled_with_visits(db, world, baseline=today())
    answered = make_instance(
        db, world.patient_a.participant, questionnaire, status=InstanceStatus.COMPLETED
    )
    participant = world.patient_a.participant

    withdraw_from_study(db, world.patient_a, world.coordinator_a)

    rows = instances_of(db, world.patient_a)
    assert {i.status for i in rows if i.id != answered.id} == {"cancelled"}
    assert answered.status == "completed"
    (event,) = audit_events(db, "epro.cancel", participant.id)
    assert event.reason == "consent withdrawn"


@pytest.mark.requirement("EPRO-7")
def test_the_missed_job_waits_for_the_grace_period(db, world, connection, app):
    questionnaire = make_questionnaire(db, world.study, world.coordinator_a)
    participant = world.patient_a.participant
    now = utcnow()
    grace = dt.timedelta(minutes=app.config["DCT_EPRO_GRACE_MINUTES"])
    long_closed = make_instance(
        db,
        participant,
        questionnaire,
        opens_at=now - grace - dt.timedelta(hours=7),
        closes_at=now - grace - dt.timedelta(seconds=1),
    )
    in_grace = make_instance(
        db,
        participant,
        questionnaire,
        opens_at=now - grace,
        closes_at=now - grace + dt.timedelta(minutes=5),
    )
    answered = make_instance(
        db,
        participant,
        questionnaire,
        opens_at=now - 2 * grace,
        closes_at=now - 2 * grace + dt.timedelta(hours=1),
        status=InstanceStatus.COMPLETED,
    )
    (spec,) = [s for s in job_specs(app.config) if s.id == "close-epro-windows"]

    run_job(joined_sessions(connection), spec.id, spec.func)

    db.expire_all()
    assert (long_closed.status, in_grace.status, answered.status) == (
        "missed",
        "scheduled",
        "completed",
    )
    (event,) = audit_events(db, "epro.missed", participant.id)
    assert event.after["instances"] == [str(long_closed.id)]
    assert spec.func.func is housekeeping.close_epro_windows


# --- GET /me/epro/due ------------------------------------------------------------------------


def test_the_due_list_shows_open_then_upcoming_windows(db, world, client):
    questionnaire = make_questionnaire(db, world.study, world.coordinator_a, schedule=daily(30, 40))
    enrolled_with_visits(db, world, baseline=today())
    participant = world.patient_a.participant
    now = utcnow()
    open_now = make_instance(db, participant, questionnaire, opens_at=now - dt.timedelta(minutes=5))
    tomorrow = make_instance(db, participant, questionnaire, opens_at=now + dt.timedelta(days=1))
    make_instance(db, participant, questionnaire, opens_at=now + dt.timedelta(days=9))  # too far
    make_instance(
        db,
        participant,
        questionnaire,
        opens_at=now - dt.timedelta(hours=3),
        closes_at=now - dt.timedelta(seconds=1),
    )  # closed
    make_instance(db, participant, questionnaire, status=InstanceStatus.COMPLETED)

    response = client.get("/api/v1/me/epro/due", headers=headers_for(client, world.patient_a.user))

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["timezone"] == "Europe/Brussels"
    assert [(i["instance_id"], i["state"]) for i in body["instances"]] == [
        (str(open_now.id), "open"),
        (str(tomorrow.id), "upcoming"),
    ]
    first = body["instances"][0]
    assert first["title"] == "Heart failure diary (nl)"  # the patient's language
    assert (first["code"], first["version"]) == ("HFDIARY", "1.0")
    assert first["opens_at"].endswith("Z")

    wider = client.get(
        "/api/v1/me/epro/due?days=10", headers=headers_for(client, world.patient_a.user)
    )
    assert len(wider.get_json()["instances"]) == 3


def test_the_due_list_is_a_409_when_a_due_questionnaire_lacks_the_patients_language(
    db, world, client
):
    """Never the list in another language: the study added German after publishing."""
    questionnaire = make_questionnaire(db, world.study, world.coordinator_a, schedule=daily(30, 40))
    enrolled_with_visits(db, world, baseline=today())
    make_instance(db, world.patient_a.participant, questionnaire)
    world.study.languages = [*world.study.languages, "de"]
    db.flush()
    people.update_participant(
        db,
        coordinator_actor(db, world.coordinator_a),
        world.patient_a.participant.id,
        {"locale": "de"},
    )

    response = client.get("/api/v1/me/epro/due", headers=headers_for(client, world.patient_a.user))

    detail = assert_problem(response, 409)["detail"]
    assert "HFDIARY 1.0" in detail and "language (de)" in detail and "en, fr, nl" in detail


def test_the_due_list_is_for_enrolled_participants_with_current_consent(db, world, client):
    headers = headers_for(client, world.patient_b.user)  # consented nowhere, not enrolled
    problem = assert_problem(client.get("/api/v1/me/epro/due", headers=headers), 409)
    assert "enrolled" in problem["detail"]


@pytest.mark.parametrize("who", ["coordinator_a", "nurse_a", "monitor", "admin"])
def test_the_due_list_is_for_patients_only(client, world, who):
    headers = headers_for(client, getattr(world, who))
    assert_problem(client.get("/api/v1/me/epro/due", headers=headers), 403)


def test_the_due_list_refuses_a_bad_horizon(client, world):
    headers = headers_for(client, world.patient_a.user)
    problem = assert_problem(client.get("/api/v1/me/epro/due?days=90", headers=headers), 422)
    assert "days" in str(problem["errors"])


def test_visits_not_of_this_participant_are_never_used(db, world):
    """A visit questionnaire for a code the participant has no visit of plans nothing."""
    make_questionnaire(db, world.study, world.coordinator_a, schedule=visit_schedule("NOPE"))
    other = make_participant(db, world.site_a, coordinator=world.coordinator_a)
    enrolled_with_visits(db, world, other, baseline=today())
    assert instances_of(db, other) == []
    assert db.scalars(select(Visit).where(Visit.participant_id == other.participant.id)).all()
