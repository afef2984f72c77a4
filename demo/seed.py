"""Demo data for `make run`: one study at two Belgian sites, every role, three patients.

Built through the same service functions as the API (so it is audited like real
data), and idempotent: a second run finds the study and changes nothing.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.actor import Actor, Role
from services.models import Study, User
from services.people import bootstrap, identity
from services.people import participants as people
from services.studies import studies

DEMO_PASSWORD = "demo-password-2026"  # noqa: S105 - printed by `make run` on purpose
STUDY_CODE = "DEMO-HF"
ADMIN_EMAIL = "admin@demo.dct.example"


def _actor_for(session: Session, email: str) -> Actor:
    user = session.scalars(select(User).where(User.email_index == people.email_index(email))).one()
    return people.actor_for(session, user, "demo-seed")


def _activate(session: Session, code: str) -> None:
    identity.activate(
        session, Actor.system("demo-seed"), identity.AuthPolicy(), code=code, password=DEMO_PASSWORD
    )


STAFF = (
    # email, full name, role, site codes (or "study" for the monitor), locale
    ("coordinator.brussels@demo.dct.example", "Sofie Claes", Role.COORDINATOR, ["BRU"], "nl"),
    ("coordinator.liege@demo.dct.example", "Julien Lambert", Role.COORDINATOR, ["LIE"], "fr"),
    ("nurse.an@demo.dct.example", "An Peeters", Role.NURSE, ["BRU"], "nl"),
    ("nurse.marie@demo.dct.example", "Marie Dubois", Role.NURSE, ["BRU", "LIE"], "fr"),
    ("monitor@demo.dct.example", "Morgan Smith", Role.MONITOR, [], "en"),
)

PATIENTS = (
    # site, full name, phone, email, locale, address, date of birth
    (
        "BRU",
        "Jan Janssens",
        "+32470000101",
        "jan.janssens@demo.dct.example",
        "nl",
        "Kerkstraat 1, 1000 Brussel",
        dt.date(1956, 3, 14),
    ),
    (
        "BRU",
        "Emma Leroy",
        "+32470000102",
        "emma.leroy@demo.dct.example",
        "fr",
        "Rue de la Loi 20, 1040 Bruxelles",
        dt.date(1961, 9, 2),
    ),
    (
        "LIE",
        "Luc Renard",
        "+32470000103",
        None,
        "fr",
        "Place du Marché 3, 4000 Liège",
        dt.date(1949, 12, 24),
    ),
)


def seed(session: Session) -> list[tuple[str, str]]:
    """Create the demo once; return (role, log-in identifier) pairs to print."""
    logins = [("admin", ADMIN_EMAIL)]
    logins += [(role.value, email) for email, _n, role, _s, _l in STAFF]
    logins += [("patient", email or phone) for _s, _n, phone, email, *_rest in PATIENTS]
    if session.scalars(select(Study).where(Study.code == STUDY_CODE)).first():
        return logins

    bootstrap.create_admin(
        session,
        email=ADMIN_EMAIL,
        full_name="Alex Admin",
        timezone="Europe/Brussels",
        locale="en",
        password=DEMO_PASSWORD,
    )
    admin = _actor_for(session, ADMIN_EMAIL)
    study = studies.create_study(
        session,
        admin,
        studies.NewStudy(
            STUDY_CODE,
            "Home monitoring in heart failure (demo)",
            ["nl", "fr", "de", "en"],
            "Europe/Brussels",
        ),
    )
    sites = {
        code: studies.create_site(
            session, admin, study.id, studies.NewSite(code, name, "BE", "Europe/Brussels")
        )
        for code, name in (
            ("BRU", "Brussels University Hospital (demo)"),
            ("LIE", "Liège Regional Hospital (demo)"),
        )
    }
    for email, full_name, role, site_codes, locale in STAFF:
        _user, code = people.create_staff(
            session,
            admin,
            people.NewStaff(
                email=email,
                full_name=full_name,
                role=role,
                locale=locale,
                timezone="Europe/Brussels",
                site_ids=[sites[c].id for c in site_codes],
                study_ids=[study.id] if role == Role.MONITOR else [],
            ),
        )
        _activate(session, code)
    for site_code, full_name, phone, email, locale, address, born in PATIENTS:
        coordinator = next(
            e for e, _n, r, s, _l in STAFF if r == Role.COORDINATOR and site_code in s
        )
        _participant, code = people.create_participant(
            session,
            _actor_for(session, coordinator),
            study.id,
            people.NewParticipant(
                site_id=sites[site_code].id,
                full_name=full_name,
                phone=phone,
                email=email,
                locale=locale,
                timezone="Europe/Brussels",
                address=address,
                date_of_birth=born,
            ),
        )
        _activate(session, code)
    return logins
