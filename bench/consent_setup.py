"""Scratch data for the consent benchmarks, built through the services like real data:
a study with one site and coordinator, an approved consent version, patients with a
password and a recorded consent discussion."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass

from common import ADMIN, PASSWORD
from sqlalchemy.orm import Session

from consent import discussions, documents
from consent.models import ConsentDocument
from services.actor import Role
from services.models import Participant, Site, Study, User
from services.people import identity
from services.people import participants as people
from services.studies import studies

_numbers = itertools.count(1)


@dataclass
class Trial:
    study: Study
    site: Site
    coordinator: User
    document: ConsentDocument


def make_trial(session: Session, body_markdown: str, clauses: dict[str, str]) -> Trial:
    n = next(_numbers)
    study = studies.create_study(
        session, ADMIN, studies.NewStudy(f"BENCH{n}", "Home monitoring", ["nl"], "Europe/Brussels")
    )
    site = studies.create_site(
        session, ADMIN, study.id, studies.NewSite("BRU", "Brussel", "BE", "Europe/Brussels")
    )
    coordinator, code = people.create_staff(
        session,
        ADMIN,
        people.NewStaff(
            email=f"coordinator{n}@example.org",
            full_name="Anne Dubois",
            role=Role.COORDINATOR,
            locale="nl",
            timezone="Europe/Brussels",
            site_ids=[site.id],
        ),
    )
    identity.activate(session, ADMIN, identity.AuthPolicy(), code=code, password=PASSWORD)
    draft = documents.create_draft(
        session,
        ADMIN,
        study.id,
        documents.DraftContent(
            language="nl",
            title="Informed consent - home monitoring in heart failure",
            body_markdown=body_markdown,
            signer_roles=["participant", "investigator"],
            optional_clauses=[{"code": c, "text": t} for c, t in clauses.items()],
        ),
    )
    today = dt.date.today()
    document = documents.approve(
        session, ADMIN, draft.id, documents.Approval("EC-2026-001", today, today), today
    )
    return Trial(study, site, coordinator, document)


def add_patient(session: Session, trial: Trial, full_name: str) -> Participant:
    """An activated patient whose consent discussion is recorded: ready to sign."""
    n = next(_numbers)
    actor = people.actor_for(session, trial.coordinator, "bench")
    participant, code = people.create_participant(
        session,
        actor,
        trial.study.id,
        people.NewParticipant(
            site_id=trial.site.id,
            full_name=full_name,
            phone=f"+3247{n:07d}",
            email=f"patient{n}@example.org",
            locale="nl",
            timezone="Europe/Brussels",
        ),
    )
    identity.activate(session, ADMIN, identity.AuthPolicy(), code=code, password=PASSWORD)
    discussions.record(
        session,
        actor,
        participant.id,
        discussions.Discussion(mode="in_person", held_at=dt.datetime.now(dt.UTC)),
    )
    return participant
