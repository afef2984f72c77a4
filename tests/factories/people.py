"""Test data built through the service layer, so it is valid and audited like real data.

Every account is activated with its code (the only way to a first password) and
gets the same password.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from services.actor import Actor, Role
from services.models import Participant, Site, Study, User
from services.people import identity
from services.people import participants as people
from services.studies import studies

PASSWORD = "correct horse battery staple"
# Bearer headers by world member name: auth("coordinator_a").
Headers = Callable[[str], dict[str, str]]
_counter = itertools.count(1)
ADMIN = Actor(user_id=None, role=Role.ADMIN, request_id="factory")


def serial() -> int:
    return next(_counter)


def make_study(db: Session, *, languages: tuple[str, ...] = ("nl", "fr", "en")) -> Study:
    n = serial()
    return studies.create_study(
        db, ADMIN, studies.NewStudy(f"ST{n}", f"Study {n}", list(languages), "Europe/Brussels")
    )


def make_site(db: Session, study: Study, *, country: str = "BE") -> Site:
    n = serial()
    return studies.create_site(
        db, ADMIN, study.id, studies.NewSite(f"S{n}", f"Site {n}", country, "Europe/Brussels")
    )


def activate(db: Session, code: str) -> None:
    identity.activate(db, ADMIN, identity.AuthPolicy(), code=code, password=PASSWORD)


def make_staff(
    db: Session,
    role: Role,
    *,
    sites: list[Site] | None = None,
    studies_: list[Study] | None = None,
    activated: bool = True,
) -> User:
    n = serial()
    user, code = people.create_staff(
        db,
        ADMIN,
        people.NewStaff(
            email=f"{role.value}{n}@example.org",
            full_name=f"{role.value.title()} Number{n}",
            role=role,
            locale="en",
            timezone="Europe/Brussels",
            site_ids=[s.id for s in sites or []],
            study_ids=[s.id for s in studies_ or []],
        ),
    )
    if activated:
        activate(db, code)
    return user


@dataclass
class Patient:
    participant: Participant
    user: User
    activation_code: str | None

    @property
    def login(self) -> dict[str, str]:
        if self.user.email:
            return {"email": self.user.email}
        return {"phone": self.user.phone or ""}


def make_participant(
    db: Session,
    site: Site,
    *,
    email: bool = True,
    activated: bool = True,
    coordinator: User | None = None,
) -> Patient:
    n = serial()
    coordinator = coordinator or make_staff(db, Role.COORDINATOR, sites=[site])
    participant, code = people.create_participant(
        db,
        people.actor_for(db, coordinator, "factory"),
        site.study_id,
        people.NewParticipant(
            site_id=site.id,
            full_name=f"Patient Number{n}",
            phone=f"+3247{n:07d}",
            email=f"patient{n}@example.org" if email else None,
            locale="nl",
            timezone="Europe/Brussels",
            address=f"Straat {n}, 1000 Brussel",
            date_of_birth=dt.date(1950, 1, 1) + dt.timedelta(days=n),
        ),
    )
    if activated:
        activate(db, code)
        code = None
    return Patient(participant, participant.user, code)


def login(client: FlaskClient, user: User, password: str = PASSWORD) -> dict:
    body = {"email": user.email} if user.email else {"phone": user.phone}
    response = client.post("/api/v1/auth/login", json={**body, "password": password})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def activate_with_code(client: FlaskClient, code: str, password: str = PASSWORD) -> TestResponse:
    return client.post(
        "/api/v1/auth/activate", json={"activation_code": code, "password": password}
    )


def bearer(tokens: dict | str) -> dict[str, str]:
    token = tokens if isinstance(tokens, str) else tokens["access_token"]
    return {"Authorization": f"Bearer {token}"}


def headers_for(client: FlaskClient, user: User) -> dict[str, str]:
    return bearer(login(client, user))


@dataclass
class World:
    """Two sites of one study, each with its own staff and patient, plus a second study."""

    study: Study
    site_a: Site
    site_b: Site
    admin: User
    coordinator_a: User
    coordinator_b: User
    nurse_a: User
    monitor: User
    patient_a: Patient
    patient_b: Patient
    other_study: Study
    other_monitor: User


def user_of(world: World, who: str) -> User:
    """A member of the world by attribute name, for parametrized roles; "patient" is
    patient_a, "patient_b" the other site's patient."""
    patients = {"patient": world.patient_a, "patient_b": world.patient_b}
    return patients[who].user if who in patients else getattr(world, who)


def auth_for(client: FlaskClient, world: World) -> Headers:
    """Bearer headers of the world's members by name (as `user_of`), each logged in once."""
    cache: dict[str, dict[str, str]] = {}

    def headers(who: str) -> dict[str, str]:
        if who not in cache:
            cache[who] = headers_for(client, user_of(world, who))
        return cache[who]

    return headers


def make_world(db: Session) -> World:
    study = make_study(db)
    site_a, site_b = make_site(db, study), make_site(db, study)
    other_study = make_study(db)
    coordinator_a = make_staff(db, Role.COORDINATOR, sites=[site_a])
    coordinator_b = make_staff(db, Role.COORDINATOR, sites=[site_b])
    return World(
        study=study,
        site_a=site_a,
        site_b=site_b,
        admin=make_staff(db, Role.ADMIN),
        coordinator_a=coordinator_a,
        coordinator_b=coordinator_b,
        nurse_a=make_staff(db, Role.NURSE, sites=[site_a]),
        monitor=make_staff(db, Role.MONITOR, studies_=[study]),
        patient_a=make_participant(db, site_a, coordinator=coordinator_a),
        patient_b=make_participant(db, site_b, coordinator=coordinator_b),
        other_study=other_study,
        other_monitor=make_staff(db, Role.MONITOR, studies_=[other_study]),
    )


def random_id() -> str:
    return str(uuid.uuid4())
