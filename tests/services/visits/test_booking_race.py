"""Two bookings of one nurse at the same moment, under real concurrency (PostgreSQL).

The threads need their own connections and must see each other's commits, so these
tests run on a fresh database of their own, not inside the test's transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import pytest
from flask import Flask
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.actor import Role
from services.models import User, Visit
from tests.concurrency import at_once, fresh_postgres_database, while_first_holds
from tests.factories.people import headers_for, make_participant, make_staff, make_world
from tests.factories.visits import enrolled_with_visits, make_nurse_ready

# Several processes or racing threads: run by `make test`, skipped by `-m 'not slow'`.
pytestmark = pytest.mark.slow

T = TypeVar("T")
MONDAY_9 = dt.datetime(2026, 3, 16, 8, tzinfo=dt.UTC)  # 09:00 in Brussels, V1's window


@pytest.fixture(scope="module")
def race_url(database_url: str) -> Iterator[str]:
    with fresh_postgres_database(
        database_url, "dct_race", "concurrency is enforced by PostgreSQL's exclusion constraint"
    ) as url:
        yield url


@dataclass
class Rivals:
    """Two participants of one site whose V1 visits fall on the same Monday, one nurse
    and two coordinators, committed so that every connection sees them."""

    nurse: User
    coordinators: tuple[User, User]
    visits: tuple[Visit, Visit]


@pytest.fixture
def race_app(race_url: str, make_app: Callable[..., Flask]) -> Flask:
    return make_app(DATABASE_URL=race_url)


@pytest.fixture
def rivals(race_app: Flask) -> Rivals:
    with Session(race_app.extensions["db"].engine, expire_on_commit=False) as db:
        world = make_world(db)
        second_coordinator = make_staff(db, Role.COORDINATOR, sites=[world.site_a])
        nurse = make_nurse_ready(db, world)
        neighbour = make_participant(db, world.site_a, coordinator=world.coordinator_a)
        first = enrolled_with_visits(db, world)[0]
        second = enrolled_with_visits(db, world, neighbour)[0]
        db.commit()
    return Rivals(nurse, (world.coordinator_a, second_coordinator), (first, second))


def booked(engine: Engine, nurse: User) -> list[Visit]:
    with Session(engine) as db:
        return list(db.scalars(select(Visit).where(Visit.nurse_id == nurse.id)))


def test_two_coordinators_booking_one_nurse_at_once_exactly_one_wins(race_app, rivals):
    client = race_app.test_client()
    headers = [headers_for(client, coordinator) for coordinator in rivals.coordinators]

    def booking(index: int, start: dt.datetime) -> Callable[[], tuple[int, dict]]:
        def call() -> tuple[int, dict]:
            response = race_app.test_client().post(
                f"/api/v1/visits/{rivals.visits[index].id}/schedule",
                json={
                    "nurse_id": str(rivals.nurse.id),
                    "start": start.isoformat(),
                    "end": (start + dt.timedelta(hours=1)).isoformat(),
                },
                headers=headers[index],
            )
            return response.status_code, response.get_json()

        return call

    results = at_once(booking(0, MONDAY_9), booking(1, MONDAY_9 + dt.timedelta(minutes=30)))

    assert sorted(status for status, _ in results) == [200, 409], results
    ((_, refusal),) = [body for body in results if body[0] == 409]
    assert "the nurse" in refusal["detail"]
    (winner,) = booked(race_app.extensions["db"].engine, rivals.nurse)
    assert winner.status == "scheduled"


def schedule_directly(db: Session, visit: Visit, nurse: User, start: dt.datetime) -> None:
    """Book without the service: no row lock on the nurse, no overlap check."""
    db.execute(
        update(Visit)
        .where(Visit.id == visit.id)
        .values(
            status="scheduled",
            nurse_id=nurse.id,
            start_at=start,
            end_at=start + dt.timedelta(hours=1),
            busy_until=start + dt.timedelta(hours=1, minutes=30),
        )
    )


def test_without_the_app_lock_the_database_refuses_the_overlap(race_app, rivals):
    """The second writer waits for the first transaction, then is refused."""
    engine = race_app.extensions["db"].engine
    outcome: list[BaseException | None] = []
    with Session(engine) as first, Session(engine) as second:
        schedule_directly(first, rivals.visits[0], rivals.nurse, MONDAY_9)

        def overlap() -> None:
            # 09:15 UTC: after the first visit, inside its 30 minutes' travel buffer.
            later = MONDAY_9 + dt.timedelta(minutes=75)
            try:
                schedule_directly(second, rivals.visits[1], rivals.nurse, later)
                second.commit()
                outcome.append(None)
            except IntegrityError as error:
                outcome.append(error)

        while_first_holds(engine, first, second, overlap)

    (error,) = outcome
    assert isinstance(error, IntegrityError)
    assert "visits_nurse_no_overlap" in str(error.orig)
    (winner,) = booked(engine, rivals.nurse)
    assert winner.id == rivals.visits[0].id


def test_the_database_refuses_an_overlap_written_after_a_commit(race_app, rivals):
    engine = race_app.extensions["db"].engine
    with Session(engine) as first:
        schedule_directly(first, rivals.visits[0], rivals.nurse, MONDAY_9)
        first.commit()

    with (
        Session(engine) as second,
        pytest.raises(IntegrityError, match="visits_nurse_no_overlap"),
    ):
        schedule_directly(second, rivals.visits[1], rivals.nurse, MONDAY_9)

    assert [v.id for v in booked(engine, rivals.nurse)] == [rivals.visits[0].id]


def test_visits_after_the_travel_buffer_are_accepted_by_the_database(race_app, rivals):
    engine = race_app.extensions["db"].engine
    with Session(engine) as first:
        schedule_directly(first, rivals.visits[0], rivals.nurse, MONDAY_9)
        first.commit()
    after_buffer = MONDAY_9 + dt.timedelta(minutes=90)

    with Session(engine) as second:
        schedule_directly(second, rivals.visits[1], rivals.nurse, after_buffer)
        second.commit()

    assert len(booked(engine, rivals.nurse)) == 2
