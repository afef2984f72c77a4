"""Submission windows on the days the clocks change (Europe/Brussels): the window is
planned from local times, and the server judges a submission against its instants,
one second either side of each edge."""

from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

import pytest

from services.epro import plan as epro_plan
from services.epro import responses as epro_responses
from services.errors import Conflict
from services.people import participants as people
from tests.factories.epro import ANSWERS, make_instance, make_questionnaire
from tests.factories.visits import enrolled_with_visits

BRUSSELS = ZoneInfo("Europe/Brussels")
SECOND = dt.timedelta(seconds=1)
GRACE = dt.timedelta(hours=2)
# 18:00-23:59 local on the spring-forward day; 20:00-08:00 over the autumn night, which
# lasts an hour longer.
SPRING = ({"opens": "18:00", "closes": "23:59"}, dt.date(2027, 3, 28))
AUTUMN = ({"opens": "20:00", "closes": "08:00", "close_after_days": 1}, dt.date(2027, 10, 30))


def submission(instance_id: uuid.UUID, completed_at: dt.datetime) -> epro_responses.Submission:
    return epro_responses.Submission(
        client_id=uuid.uuid4(),
        instance_id=instance_id,
        status="completed",
        answers=ANSWERS,
        started_at=completed_at - dt.timedelta(minutes=3),
        completed_at=completed_at,
    )


@pytest.fixture(params=[SPRING, AUTUMN], ids=["spring", "autumn"])
def dst_instance(request, db, world):
    window, day = request.param
    schedule = {"type": "daily", "start_day": 0, "end_day": 0, "window": window}
    questionnaire = make_questionnaire(db, world.study, world.coordinator_a, schedule=schedule)
    enrolled_with_visits(db, world)
    opens_at, closes_at = epro_plan.window(schedule, day, BRUSSELS)
    return make_instance(
        db, world.patient_a.participant, questionnaire, opens_at=opens_at, closes_at=closes_at
    )


def patient(db, world):
    return people.actor_for(db, world.patient_a.user, "test")


def test_the_windows_are_where_the_local_clock_says(dst_instance):
    opens = dst_instance.opens_at.astimezone(BRUSSELS)
    closes = dst_instance.closes_at.astimezone(BRUSSELS)
    assert opens.strftime("%H:%M") in ("18:00", "20:00")
    assert closes.strftime("%H:%M") in ("23:59", "08:00")
    length = dst_instance.closes_at - dst_instance.opens_at
    assert length in (dt.timedelta(hours=5, minutes=59), dt.timedelta(hours=13))


@pytest.mark.parametrize(
    ("edge", "offset", "accepted", "timeliness"),
    [
        ("opens", -SECOND, False, None),
        ("opens", dt.timedelta(0), True, "on_time"),
        ("closes", dt.timedelta(0), True, "on_time"),
        ("closes", SECOND, True, "late"),  # completed inside, received in the grace
        ("closes", GRACE + SECOND, False, None),
    ],
)
def test_a_submission_one_second_either_side_of_each_edge(
    db, world, dst_instance, edge, offset, accepted, timeliness
):
    received = getattr(dst_instance, f"{edge}_at") + offset
    completed = min(received, dst_instance.closes_at)
    attempt = submission(dst_instance.id, completed)

    if not accepted:
        with pytest.raises(Conflict, match="window"):
            epro_responses.submit(db, patient(db, world), attempt, now=received, grace=GRACE)
        return
    response, created = epro_responses.submit(
        db, patient(db, world), attempt, now=received, grace=GRACE
    )
    assert created and response.timeliness == timeliness
