"""Fixtures of the upload tests (multipart and reads): an enrolled patient, members'
log-ins, and a nurse checked in at the patient's visit. Each test module provides its
own `app_client`."""

from __future__ import annotations

import datetime as dt

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from services.models import Visit
from tests.factories.people import Headers, World, auth_for, headers_for
from tests.factories.visits import book_via_api, enrolled_with_visits, make_nurse_ready


def checked_in(client: FlaskClient, db: Session, world: World, planned: list[Visit]) -> Visit:
    """patient_a's first visit, booked for nurse_a, who has checked in."""
    make_nurse_ready(db, world)
    first = planned[0]
    start = dt.datetime(2026, 3, 16, 8, tzinfo=dt.UTC)
    booked = book_via_api(client, world.coordinator_a, first, world.nurse_a, start)
    assert booked.status_code == 200, booked.get_json()
    nurse = headers_for(client, world.nurse_a)
    at_the_door = {"at": start.isoformat()}  # check-in is held to the booked time
    check_in = client.post(f"/api/v1/visits/{first.id}/check-in", json=at_the_door, headers=nurse)
    assert check_in.status_code == 200, check_in.get_json()
    return first


@pytest.fixture
def auth(app_client: FlaskClient, world: World) -> Headers:
    return auth_for(app_client, world)


@pytest.fixture
def enrolled(db: Session, world: World) -> list[Visit]:
    """patient_a enrolled with a current consent; their planned visits."""
    return enrolled_with_visits(db, world)


@pytest.fixture
def visit(app_client: FlaskClient, db: Session, world: World, enrolled: list[Visit]) -> Visit:
    return checked_in(app_client, db, world, enrolled)
