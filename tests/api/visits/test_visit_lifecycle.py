"""A visit's life cycle: scheduled, confirmed by the patient, checked in and out by the
assigned nurse; missed or cancelled by a coordinator or the missed-visit job."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from scheduling import housekeeping
from scheduling.jobs import job_specs
from scheduling.runner import run_job
from services.actor import Actor, Role
from services.models import User, Visit
from services.visits import booking as visits
from tests.checks import assert_problem, audit_events
from tests.conftest import joined_sessions
from tests.factories.consent import make_consent_document, withdraw_from_study
from tests.factories.people import World, headers_for, make_participant, make_staff, user_of
from tests.factories.visits import enrolled_with_visits, make_nurse_ready

START, END = "2026-03-16T09:00:00+01:00", "2026-03-16T10:00:00+01:00"
# When the nurse rings at the door of the visit booked at START.
AT_THE_DOOR = "2026-03-16T08:55:00+01:00"


def post(client: FlaskClient, user: User, visit: Visit, action: str, **body: Any) -> TestResponse:
    return client.post(
        f"/api/v1/visits/{visit.id}/{action}", json=body, headers=headers_for(client, user)
    )


def status_of(db: Session, visit: Visit) -> str:
    db.expire_all()
    return db.get(Visit, visit.id).status


@pytest.fixture
def planned(db: Session, world: World) -> list[Visit]:
    make_nurse_ready(db, world)
    return enrolled_with_visits(db, world)


@pytest.fixture
def scheduled(client: FlaskClient, world: World, planned: list[Visit]) -> Visit:
    visit = planned[0]
    body = {"nurse_id": str(world.nurse_a.id), "start": START, "end": END}
    assert post(client, world.coordinator_a, visit, "schedule", **body).status_code == 200
    return visit


@pytest.fixture
def confirmed(client: FlaskClient, world: World, scheduled: Visit) -> Visit:
    assert post(client, world.patient_a.user, scheduled, "confirm").status_code == 200
    return scheduled


@pytest.fixture
def in_progress(client: FlaskClient, world: World, confirmed: Visit) -> Visit:
    assert post(client, world.nurse_a, confirmed, "check-in", at=AT_THE_DOOR).status_code == 200
    return confirmed


@pytest.fixture
def completed(client: FlaskClient, world: World, in_progress: Visit) -> Visit:
    response = post(client, world.nurse_a, in_progress, "check-out", completed_procedures=[])
    assert response.status_code == 200
    return in_progress


@pytest.mark.requirement("VISIT-2")
def test_a_visit_goes_from_planned_to_completed(client, db, world, planned):
    visit = planned[0]
    body = {"nurse_id": str(world.nurse_a.id), "start": START, "end": END}

    scheduled = post(client, world.coordinator_a, visit, "schedule", **body)
    confirmed = post(client, world.patient_a.user, visit, "confirm")
    started = post(
        client,
        world.nurse_a,
        visit,
        "check-in",
        at="2026-03-16T09:02:00+01:00",
        location="50.8503,4.3517",
    )
    done = post(
        client,
        world.nurse_a,
        visit,
        "check-out",
        at="2026-03-16T09:55:00+01:00",
        completed_procedures=["vitals", "blood"],
        notes="Blood drawn from the left arm.",
    )

    assert [r.status_code for r in (scheduled, confirmed, started, done)] == [200] * 4
    assert [r.get_json()["status"] for r in (scheduled, confirmed, started, done)] == [
        "scheduled",
        "confirmed",
        "in_progress",
        "completed",
    ]
    assert confirmed.get_json()["confirmed_at"] is not None
    assert started.get_json()["checked_in_at"] == "2026-03-16T08:02:00Z"
    assert started.get_json()["check_in_location"] == "50.8503,4.3517"
    final = done.get_json()
    assert final["checked_out_at"] == "2026-03-16T08:55:00Z"
    assert final["completed_procedures"] == ["vitals", "blood"]
    assert final["notes"] == "Blood drawn from the left arm."
    for action, before in [
        ("visit.schedule", "planned"),
        ("visit.confirmed", "scheduled"),
        ("visit.in_progress", "confirmed"),
        ("visit.completed", "in_progress"),
    ]:
        (event,) = audit_events(db, action, visit.id)
        assert event.before["status"] == before
    assert status_of(db, visit) == "completed"


def test_the_nurse_may_check_in_without_the_patients_confirmation(client, world, scheduled):
    response = post(client, world.nurse_a, scheduled, "check-in", at=AT_THE_DOOR)

    assert response.status_code == 200
    assert response.get_json()["status"] == "in_progress"


@pytest.mark.parametrize("state", ["scheduled", "confirmed"])
def test_rescheduling_goes_back_to_scheduled(client, db, world, request, state):
    visit = request.getfixturevalue(state)
    body = {
        "nurse_id": str(world.nurse_a.id),
        "start": "2026-03-16T14:00:00+01:00",
        "end": "2026-03-16T15:00:00+01:00",
    }

    response = post(client, world.coordinator_a, visit, "schedule", **body)

    assert response.status_code == 200, response.get_json()
    answer = response.get_json()
    assert (answer["status"], answer["start_at"]) == ("scheduled", "2026-03-16T13:00:00Z")
    assert answer["confirmed_at"] is None
    _first, second = audit_events(db, "visit.schedule", visit.id)
    assert (second.before["status"], second.after["status"]) == (state, "scheduled")


def test_rescheduling_does_not_clash_with_the_visits_own_booking(client, world, scheduled):
    body = {
        "nurse_id": str(world.nurse_a.id),
        "start": "2026-03-16T09:30:00+01:00",
        "end": "2026-03-16T10:30:00+01:00",
    }

    response = post(client, world.coordinator_a, scheduled, "schedule", **body)

    assert response.status_code == 200, response.get_json()


@pytest.mark.parametrize(
    ("state", "who", "action", "body"),
    [
        ("planned", "patient", "confirm", {}),
        ("confirmed", "patient", "confirm", {}),
        ("scheduled", "nurse_a", "check-out", {"completed_procedures": []}),
        ("in_progress", "patient", "confirm", {}),
        ("in_progress", "coordinator_a", "cancel", {"reason": "too late"}),
        ("in_progress", "nurse_a", "check-in", {}),
        ("completed", "coordinator_a", "cancel", {"reason": "x"}),
        ("completed", "coordinator_a", "missed", {"reason": "x"}),
        ("completed", "nurse_a", "check-out", {"completed_procedures": []}),
    ],
)
def test_illegal_transitions_are_refused(client, db, world, request, state, who, action, body):
    visit = request.getfixturevalue(state)
    visit = visit[0] if isinstance(visit, list) else visit
    status_before = status_of(db, visit)

    response = post(client, user_of(world, who), visit, action, **body)

    assert "cannot become" in assert_problem(response, 409)["detail"]
    assert status_of(db, visit) == status_before


def test_a_completed_visit_cannot_be_booked_again(client, db, world, completed):
    body = {"nurse_id": str(world.nurse_a.id), "start": START, "end": END}

    response = post(client, world.coordinator_a, completed, "schedule", **body)

    detail = assert_problem(response, 409)["detail"]
    assert detail == "a completed visit cannot become scheduled"
    assert status_of(db, completed) == "completed"


def test_a_planned_visit_is_not_the_nurses_to_complete(client, db, world, planned):
    response = post(client, world.nurse_a, planned[0], "check-out", completed_procedures=[])

    assert_problem(response, 404)
    assert status_of(db, planned[0]) == "planned"


def test_another_nurse_cannot_check_in(client, db, world, scheduled):
    other = make_nurse_ready(db, world, make_staff(db, Role.NURSE, sites=[world.site_a]))

    response = post(client, other, scheduled, "check-in")

    assert_problem(response, 404)
    assert status_of(db, scheduled) == "scheduled"


def test_another_patient_cannot_confirm(client, db, world, scheduled):
    neighbour = make_participant(db, world.site_a, coordinator=world.coordinator_a)

    response = post(client, neighbour.user, scheduled, "confirm")

    assert_problem(response, 404)
    assert status_of(db, scheduled) == "scheduled"


def test_a_coordinator_of_another_site_cannot_cancel(client, db, world, scheduled):
    response = post(client, world.coordinator_b, scheduled, "cancel", reason="x")

    assert_problem(response, 404)
    assert status_of(db, scheduled) == "scheduled"


@pytest.mark.parametrize(
    ("action", "body", "refused"),
    [
        ("confirm", {}, ["coordinator_a", "nurse_a", "monitor", "admin"]),
        ("check-in", {}, ["coordinator_a", "patient", "monitor", "admin"]),
        ("check-out", {"completed_procedures": []}, ["coordinator_a", "patient", "monitor"]),
        ("missed", {"reason": "not home"}, ["nurse_a", "patient", "monitor", "admin"]),
        ("cancel", {"reason": "unwell"}, ["nurse_a", "patient", "monitor", "admin"]),
    ],
)
def test_each_transition_refuses_the_other_roles(
    client, db, world, scheduled, action, body, refused
):
    for who in refused:
        response = post(client, user_of(world, who), scheduled, action, **body)
        assert_problem(response, 403)
    assert status_of(db, scheduled) == "scheduled"


def test_check_out_with_a_procedure_of_another_visit_is_refused(client, db, world, in_progress):
    response = post(
        client, world.nurse_a, in_progress, "check-out", completed_procedures=["vitals", "mri"]
    )

    errors = assert_problem(response, 422)["errors"]
    assert "mri" in errors["completed_procedures"][0]
    assert status_of(db, in_progress) == "in_progress"
    assert audit_events(db, "visit.completed", in_progress.id) == []


def test_check_out_needs_the_list_of_procedures(client, db, world, in_progress):
    response = post(client, world.nurse_a, in_progress, "check-out", notes="done")

    assert "completed_procedures" in assert_problem(response, 422)["errors"]
    assert status_of(db, in_progress) == "in_progress"


def test_a_naive_check_in_time_is_refused(client, db, world, scheduled):
    response = post(client, world.nurse_a, scheduled, "check-in", at="2026-03-16T09:00:00")

    assert "at" in assert_problem(response, 422)["errors"]
    assert status_of(db, scheduled) == "scheduled"


@pytest.mark.parametrize("action", ["missed", "cancel"])
def test_a_coordinator_records_a_missed_or_cancelled_visit_with_a_reason(
    client, db, world, scheduled, action
):
    response = post(client, world.coordinator_a, scheduled, action, reason="nobody at home")

    assert response.status_code == 200
    expected = {"missed": "missed", "cancel": "cancelled"}[action]
    assert response.get_json()["status"] == expected
    assert response.get_json()["cancel_reason"] == "nobody at home"
    (event,) = audit_events(db, f"visit.{expected}", scheduled.id)
    assert event.reason == "nobody at home"


@pytest.mark.parametrize("body", [{}, {"reason": "   "}, {"reason": "x" * 1001}])
@pytest.mark.parametrize("action", ["missed", "cancel"])
def test_missed_and_cancel_need_a_reason(client, db, world, scheduled, action, body):
    response = post(client, world.coordinator_a, scheduled, action, **body)

    assert "reason" in assert_problem(response, 422)["errors"]
    assert status_of(db, scheduled) == "scheduled"


@pytest.mark.parametrize(("who", "action"), [("patient", "confirm"), ("nurse_a", "check-in")])
def test_confirmation_and_check_in_need_a_current_consent(
    client, db, world, scheduled, who, action
):
    make_consent_document(db, world.study, requires_reconsent=True)

    response = post(client, user_of(world, who), scheduled, action)

    assert "re-consent" in assert_problem(response, 409)["detail"]
    assert status_of(db, scheduled) == "scheduled"


def test_a_cancelled_visit_cannot_be_confirmed(client, db, world, scheduled):
    post(client, world.coordinator_a, scheduled, "cancel", reason="unwell")

    response = post(client, world.patient_a.user, scheduled, "confirm")

    assert_problem(response, 409)
    assert status_of(db, scheduled) == "cancelled"


# --- when a check-in is allowed --------------------------------------------------------

# START is 08:00Z, so check-in opens at 07:00Z (DCT_CHECK_IN_MARGIN_MINUTES, 60); V1's
# window is 16 March alone, which ends at midnight in Brussels, 23:00Z.
OPENS = dt.datetime(2026, 3, 16, 7, tzinfo=dt.UTC)
CLOSES = dt.datetime(2026, 3, 16, 23, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)
DAYS_EARLY = dt.datetime(2026, 3, 13, 9, tzinfo=dt.UTC)


def check_in(client: FlaskClient, world: World, visit: Visit, at: dt.datetime, **body: Any):
    return post(client, world.nurse_a, visit, "check-in", at=at.isoformat(), **body)


@pytest.mark.parametrize("at", [OPENS, OPENS + MINUTE, CLOSES - MINUTE])
def test_check_in_is_open_from_the_margin_before_the_start_to_the_windows_end(
    client, db, world, scheduled, at
):
    response = check_in(client, world, scheduled, at)

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "in_progress"
    assert response.get_json()["deviation_reason"] is None
    assert audit_events(db, "visit.protocol_deviation", scheduled.id) == []


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (OPENS - MINUTE, "check-in opens at 2026-03-16T07:00:00Z, 60 minutes before"),
        (DAYS_EARLY, "check-in opens at 2026-03-16T07:00:00Z, 60 minutes before"),
        (CLOSES, "the visit window closed at 2026-03-16T23:00:00Z"),
        (CLOSES + dt.timedelta(days=2), "the visit window closed at 2026-03-16T23:00:00Z"),
    ],
)
def test_check_in_outside_those_times_is_409_and_changes_nothing(
    client, db, world, scheduled, at, expected
):
    response = check_in(client, world, scheduled, at)

    detail = assert_problem(response, 409)["detail"]
    assert expected in detail
    assert "override_reason" in detail and "protocol deviation" in detail
    assert status_of(db, scheduled) == "scheduled"
    assert audit_events(db, "visit.in_progress", scheduled.id) == []


def test_check_in_now_long_after_the_window_is_409(client, db, world, scheduled):
    """Without `at` the check-in is now, months after March 2026."""
    response = post(client, world.nurse_a, scheduled, "check-in")

    assert "window closed" in assert_problem(response, 409)["detail"]
    assert status_of(db, scheduled) == "scheduled"


@pytest.mark.requirement("VISIT-3")
def test_an_override_reason_checks_in_early_as_a_recorded_deviation(client, db, world, scheduled):
    reason = "participant leaves for hospital on the 16th"

    started = check_in(client, world, scheduled, DAYS_EARLY, override_reason=reason)
    done = post(
        client,
        world.nurse_a,
        scheduled,
        "check-out",
        at="2026-03-13T10:50:00+01:00",
        completed_procedures=["vitals"],
    )

    assert started.status_code == 200, started.get_json()
    assert started.get_json()["deviation_reason"] == reason
    assert started.get_json()["checked_in_at"] == "2026-03-13T09:00:00Z"
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["status"] == "completed"
    (event,) = audit_events(db, "visit.protocol_deviation", scheduled.id)
    assert event.reason == reason
    assert event.actor_role == "nurse"
    assert event.after["checked_in_at"] == DAYS_EARLY.isoformat()
    assert event.after["check_in_opens"] == OPENS.isoformat()
    assert (event.after["window_start"], event.after["window_end"]) == ("2026-03-16",) * 2
    (started_event,) = audit_events(db, "visit.in_progress", scheduled.id)
    assert started_event.before["status"] == "scheduled"


def test_an_override_reason_inside_the_times_records_no_deviation(client, db, world, scheduled):
    response = check_in(client, world, scheduled, OPENS, override_reason="not needed")

    assert response.status_code == 200
    assert response.get_json()["deviation_reason"] is None
    assert audit_events(db, "visit.protocol_deviation", scheduled.id) == []


def test_the_check_in_margin_is_a_setting(make_app, db, world, scheduled):
    two_hours = make_app(DCT_CHECK_IN_MARGIN_MINUTES=120).test_client()
    opens = OPENS - dt.timedelta(hours=1)

    too_early = check_in(two_hours, world, scheduled, opens - MINUTE)
    in_time = check_in(two_hours, world, scheduled, opens)

    assert "opens at 2026-03-16T06:00:00Z, 120 minutes" in assert_problem(too_early, 409)["detail"]
    assert in_time.status_code == 200, in_time.get_json()


@pytest.mark.parametrize("override", ["", "   ", 42, ["a reason"], "x" * 1001])
def test_a_bad_override_reason_is_422_and_changes_nothing(client, db, world, scheduled, override):
    response = check_in(client, world, scheduled, DAYS_EARLY, override_reason=override)

    errors = assert_problem(response, 422)["errors"]["override_reason"]
    assert errors != ["Unknown field."]  # a field of check-in, and this value is refused
    assert status_of(db, scheduled) == "scheduled"
    assert db.get(Visit, scheduled.id).deviation_reason is None
    assert audit_events(db, "visit.in_progress", scheduled.id) == []
    assert audit_events(db, "visit.protocol_deviation", scheduled.id) == []


@pytest.mark.parametrize("action", ["check-in", "check-out"])
def test_a_check_in_or_out_in_the_future_is_422(client, db, world, scheduled, action):
    """`at` records when it happened (a phone syncing later); a time ahead of the
    server's clock would let a visit be checked in before its time."""
    if action == "check-out":
        assert check_in(client, world, scheduled, OPENS).status_code == 200
    ahead = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)
    body = {"completed_procedures": []} if action == "check-out" else {}

    response = post(client, world.nurse_a, scheduled, action, at=ahead.isoformat(), **body)

    assert "at" in assert_problem(response, 422)["errors"]
    assert status_of(db, scheduled) == ("in_progress" if action == "check-out" else "scheduled")


def test_a_check_out_before_the_check_in_is_422(client, db, world, scheduled):
    assert check_in(client, world, scheduled, OPENS).status_code == 200
    earlier = OPENS - dt.timedelta(minutes=1)

    response = post(
        client,
        world.nurse_a,
        scheduled,
        "check-out",
        at=earlier.isoformat(),
        completed_procedures=[],
    )

    assert "before the check-in" in assert_problem(response, 422)["errors"]["at"][0]
    assert status_of(db, scheduled) == "in_progress"


# --- reading one visit -----------------------------------------------------------------


def get_visit(client: FlaskClient, user: User, visit: Visit) -> TestResponse:
    return client.get(f"/api/v1/visits/{visit.id}", headers=headers_for(client, user))


@pytest.mark.parametrize("who", ["coordinator_a", "nurse_a", "patient"])
@pytest.mark.requirement("VISIT-4")
def test_carers_and_the_patient_read_the_visit_with_contact_data(client, world, in_progress, who):
    response = get_visit(client, user_of(world, who), in_progress)

    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "in_progress"
    assert body["subject_code"] == world.patient_a.participant.subject_code
    assert body["address"] == world.patient_a.participant.address
    assert body["phone"] == world.patient_a.user.phone
    assert body["nurse_name"] == world.nurse_a.full_name
    assert body["timezone"] == "Europe/Brussels"
    assert (body["window_start"], body["window_end"]) == ("2026-03-16", "2026-03-16")


@pytest.mark.parametrize("who", ["monitor", "admin"])
@pytest.mark.requirement("VISIT-4")
def test_monitors_and_admins_read_dates_and_status_without_contact_data(
    client, world, in_progress, who
):
    response = get_visit(client, user_of(world, who), in_progress)

    assert response.status_code == 200
    body = response.get_json()
    assert (body["status"], body["start_at"]) == ("in_progress", "2026-03-16T08:00:00Z")
    assert body.keys().isdisjoint({"address", "phone", "nurse_name"})
    # Free text stays as a field, withheld (tests/api/test_disclosure.py).
    assert body["check_in_location"] is None and body["notes"] is None
    assert world.patient_a.participant.address not in response.get_data(as_text=True)


@pytest.mark.parametrize("who", ["coordinator_b", "other_monitor"])
def test_a_visit_out_of_scope_is_not_found(client, world, scheduled, who):
    assert_problem(get_visit(client, user_of(world, who), scheduled), 404)


def test_a_nurse_does_not_see_a_visit_not_assigned_to_them(client, db, world, scheduled):
    other = make_nurse_ready(db, world, make_staff(db, Role.NURSE, sites=[world.site_a]))

    assert_problem(get_visit(client, other, scheduled), 404)


def test_another_patient_does_not_see_the_visit(client, world, scheduled):
    assert_problem(get_visit(client, world.patient_b.user, scheduled), 404)


# --- the missed-visit job and withdrawal -------------------------------------------------

SYSTEM = Actor.system("test")


def test_the_missed_visit_job_is_registered_hourly(app):
    (spec,) = [s for s in job_specs(app.config) if s.id == "mark-missed-visits"]

    assert (spec.func, spec.minutes) == (housekeeping.mark_missed_visits, 60)


def test_the_job_marks_visits_whose_window_closed_as_missed(db, world, connection):
    make_nurse_ready(db, world)
    past = enrolled_with_visits(db, world)  # windows in March 2026
    soon = dt.date.today() + dt.timedelta(days=30)
    neighbour = make_participant(db, world.site_a, coordinator=world.coordinator_a)
    future = enrolled_with_visits(db, world, neighbour, baseline=soon)

    run_job(joined_sessions(connection), "mark-missed-visits", housekeeping.mark_missed_visits)

    assert [status_of(db, v) for v in past] == ["missed"] * 3
    assert [status_of(db, v) for v in future] == ["planned"] * 3
    (event,) = audit_events(db, "visit.missed", past[0].id)
    assert (event.actor_role, event.reason) == ("system", "the visit window closed without a visit")


def test_a_window_still_open_in_the_participants_zone_is_not_missed(db, world):
    """At 03:00 UTC on 17 March it is still the 16th in Los Angeles, the 17th in Brussels."""
    brussels = enrolled_with_visits(db, world)[0]
    west = make_participant(db, world.site_a, coordinator=world.coordinator_a)
    west.user.timezone = "America/Los_Angeles"
    los_angeles = enrolled_with_visits(db, world, west)[0]
    now = dt.datetime(2026, 3, 17, 3, tzinfo=dt.UTC)

    assert visits.mark_missed(db, SYSTEM, now) == 1

    assert (status_of(db, brussels), status_of(db, los_angeles)) == ("missed", "planned")
    assert visits.mark_missed(db, SYSTEM, now + dt.timedelta(hours=5)) == 1
    assert status_of(db, los_angeles) == "missed"


@pytest.mark.parametrize("state", ["in_progress", "completed"])
def test_started_and_finished_visits_are_never_marked_missed(db, world, request, state):
    visit = request.getfixturevalue(state)

    assert visits.mark_missed(db, SYSTEM, dt.datetime(2026, 12, 1, tzinfo=dt.UTC)) == 2

    assert status_of(db, visit) == state


def test_withdrawal_cancels_open_visits_but_not_completed_ones(client, db, world, completed):
    v1, d14, d28 = db.scalars(
        select(Visit)
        .where(Visit.participant_id == world.patient_a.participant.id)
        .order_by(Visit.target_date)
    ).all()
    body = {
        "nurse_id": str(world.nurse_a.id),
        "start": "2026-03-30T09:00:00+02:00",
        "end": "2026-03-30T10:00:00+02:00",
    }
    assert post(client, world.coordinator_a, d14, "schedule", **body).status_code == 200
    db.expire_all()  # the request changed d14 in its own session

    withdraw_from_study(db, world.patient_a, world.coordinator_a)

    assert [status_of(db, v) for v in (v1, d14, d28)] == ["completed", "cancelled", "cancelled"]
    assert db.get(Visit, d14.id).cancel_reason == "consent withdrawn"
    assert audit_events(db, "visit.cancelled", v1.id) == []
    (event,) = audit_events(db, "visit.cancelled", d14.id)
    assert event.before["status"] == "scheduled"


def test_a_visit_booked_past_its_window_is_not_missed_before_its_time(client, db, world, planned):
    """A deviation booked after the window closes must not be marked missed meanwhile."""
    d14 = planned[1]
    body = {
        "nurse_id": str(world.nurse_a.id),
        "start": "2026-04-08T09:00:00+02:00",
        "end": "2026-04-08T10:00:00+02:00",
        "override_reason": "participant in hospital during the window",
    }
    assert post(client, world.coordinator_a, d14, "schedule", **body).status_code == 200
    db.expire_all()

    visits.mark_missed(db, SYSTEM, dt.datetime(2026, 4, 3, tzinfo=dt.UTC))
    assert status_of(db, d14) == "scheduled"

    visits.mark_missed(db, SYSTEM, dt.datetime(2026, 4, 9, tzinfo=dt.UTC))
    assert status_of(db, d14) == "missed"
