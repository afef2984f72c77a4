"""Document versions as the rules see them: a version supersedes the older ones of its
language once effective (on approval, or later through the daily job), re-consent
blocks new procedures until the new version is signed, and a participant signs only
the current version of their own language."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from consent import documents, jobs
from consent.models import Consent, ConsentSignature
from scheduling.runner import build_scheduler, run_job
from services.actor import Actor, Role
from services.errors import Conflict
from services.models import AuditEvent
from services.people import consent_gate, enrolment
from services.people import participants as people
from tests.checks import audit_events, count
from tests.conftest import joined_sessions
from tests.factories.consent import (
    make_complete_consent,
    make_consent_document,
    record_discussion,
    sign_as,
)
from tests.factories.people import ADMIN, make_participant, make_site, make_staff, make_study

TODAY = dt.date.today()


def later(days: int) -> dt.date:
    return TODAY + dt.timedelta(days=days)


def fresh(db: Session, entity):
    db.expire_all()
    return db.get(type(entity), entity.id)


def with_locale(db: Session, patient, coordinator, locale: str):
    people.update_participant(
        db, people.actor_for(db, coordinator, "t"), patient.participant.id, {"locale": locale}
    )
    return patient


# --- versions becoming effective -------------------------------------------------


def test_a_version_effective_later_supersedes_when_the_job_reaches_its_date(db, world):
    current = make_consent_document(db, world.study)
    coming = make_consent_document(db, world.study, effective_from=later(10))
    participant = fresh(db, world.patient_a.participant)
    assert fresh(db, current).status == "approved"
    assert documents.current_document(db, participant, TODAY).id == current.id

    jobs.apply_effective_versions(db, Actor.system(), today=later(9))
    assert fresh(db, current).status == "approved"

    assert jobs.apply_effective_versions(db, Actor.system(), today=later(10)).startswith("1 ")
    assert fresh(db, current).status == "superseded"
    assert fresh(db, coming).status == "approved"
    assert documents.current_document(db, participant, later(10)).id == coming.id
    [event] = audit_events(db, "consent_document.supersede", current.id)
    assert event.actor_role == "system"


def test_the_job_changes_nothing_on_a_second_run(db, world):
    make_consent_document(db, world.study)
    make_consent_document(db, world.study, effective_from=later(1))
    assert jobs.apply_effective_versions(db, Actor.system(), today=later(1)).startswith("1 ")
    events = count(db, AuditEvent)
    assert jobs.apply_effective_versions(db, Actor.system(), today=later(2)).startswith("0 ")
    assert count(db, AuditEvent) == events


@pytest.mark.requirement("CONSENT-2")
def test_a_new_version_supersedes_only_its_own_language(db, world):
    dutch = make_consent_document(db, world.study, language="nl")
    french = make_consent_document(db, world.study, language="fr")
    make_consent_document(db, world.study, language="nl")
    assert (fresh(db, dutch).status, fresh(db, french).status) == ("superseded", "approved")


def test_an_approved_version_is_frozen(db, world):
    document = make_consent_document(db, world.study)
    content = documents.DraftContent(
        language="nl", title="Changed", body_markdown="x", signer_roles=document.signer_roles
    )
    with pytest.raises(Conflict, match="frozen"):
        documents.update_draft(db, ADMIN, document.id, content)
    assert fresh(db, document).title == document.title


# --- re-consent ------------------------------------------------------------------


@pytest.mark.requirement("CONSENT-11")
def test_reconsent_blocks_new_procedures_until_the_new_version_is_signed(db, world):
    patient, coordinator = world.patient_a, world.coordinator_a
    first = make_consent_document(db, world.study)
    old_consent = make_complete_consent(db, patient, coordinator, first)

    second = make_consent_document(db, world.study, requires_reconsent=True)

    participant = fresh(db, patient.participant)
    assert fresh(db, old_consent).status == "requires_reconsent"
    assert participant.consent_state == "requires_reconsent"
    assert participant.status == "consented"  # what was done before stays valid
    with pytest.raises(Conflict, match="re-consent"):
        consent_gate.require_current_consent(participant)
    actor = people.actor_for(db, coordinator, "t")
    with pytest.raises(Conflict, match="re-consent"):
        enrolment.enroll(db, actor, participant.id, TODAY)

    sign_as(db, patient.user, patient, second, "participant")
    with pytest.raises(Conflict):  # still waiting for the countersignature
        consent_gate.require_current_consent(fresh(db, patient.participant))
    signature = sign_as(db, coordinator, patient, second, "investigator")

    participant = fresh(db, patient.participant)
    assert participant.consent_state == "complete"
    assert fresh(db, old_consent).status == "superseded"
    assert db.get(Consent, signature.consent_id).status == "complete"
    consent_gate.require_current_consent(participant)
    assert enrolment.enroll(db, actor, participant.id, TODAY).status == "enrolled"


def test_reconsent_leaves_other_languages_alone(db, world):
    dutch = make_consent_document(db, world.study, language="nl")
    french = make_consent_document(db, world.study, language="fr")
    francophone = with_locale(db, world.patient_b, world.coordinator_b, "fr")
    dutch_consent = make_complete_consent(db, world.patient_a, world.coordinator_a, dutch)
    french_consent = make_complete_consent(db, francophone, world.coordinator_b, french)

    make_consent_document(db, world.study, language="nl", requires_reconsent=True)

    assert fresh(db, dutch_consent).status == "requires_reconsent"
    assert fresh(db, french_consent).status == "complete"
    assert fresh(db, francophone.participant).consent_state == "complete"


def test_reconsent_waits_for_the_effective_date(db, world):
    first = make_consent_document(db, world.study)
    consent = make_complete_consent(db, world.patient_a, world.coordinator_a, first)
    make_consent_document(db, world.study, requires_reconsent=True, effective_from=later(5))
    assert fresh(db, consent).status == "complete"

    jobs.apply_effective_versions(db, Actor.system(), today=later(5))

    assert fresh(db, consent).status == "requires_reconsent"
    assert fresh(db, world.patient_a.participant).consent_state == "requires_reconsent"
    [event] = audit_events(db, "consent.requires_reconsent", consent.id)
    assert event.actor_role == "system"


def test_a_version_without_reconsent_keeps_consents_complete(db, world):
    first = make_consent_document(db, world.study)
    consent = make_complete_consent(db, world.patient_a, world.coordinator_a, first)
    make_consent_document(db, world.study, requires_reconsent=False)
    assert fresh(db, consent).status == "complete"
    consent_gate.require_current_consent(fresh(db, world.patient_a.participant))


# --- languages -------------------------------------------------------------------


@pytest.fixture
def four_languages(db):
    """A study in nl, fr, de and en, approved in nl, fr and en only."""
    study = make_study(db, languages=("nl", "fr", "de", "en"))
    site = make_site(db, study)
    coordinator = make_staff(db, Role.COORDINATOR, sites=[site])
    approved = {
        lang: make_consent_document(db, study, language=lang) for lang in ("nl", "fr", "en")
    }
    return site, coordinator, approved


@pytest.mark.requirement("CONSENT-2")
def test_each_locale_gets_its_own_current_version(db, four_languages):
    site, coordinator, approved = four_languages
    for language, document in approved.items():
        patient = with_locale(
            db, make_participant(db, site, coordinator=coordinator), coordinator, language
        )
        current = documents.current_document(db, fresh(db, patient.participant), TODAY)
        assert current.id == document.id


@pytest.mark.parametrize(
    ("locale", "reason"), [("de", r"language \(de\)"), ("fr", "sign version 1 \\(fr\\)")]
)
def test_signing_a_version_in_another_language_is_refused(db, four_languages, locale, reason):
    site, coordinator, approved = four_languages
    patient = make_participant(db, site, coordinator=coordinator)
    with_locale(db, patient, coordinator, locale)
    record_discussion(db, patient, coordinator)
    with pytest.raises(Conflict, match=reason):
        sign_as(db, patient.user, patient, approved["nl"], "participant")
    assert count(db, Consent) == count(db, ConsentSignature) == 0
    assert fresh(db, patient.participant).consent_state == "none"


def test_without_a_version_in_their_language_the_reason_is_given(db, four_languages):
    site, coordinator, _approved = four_languages
    patient = with_locale(
        db, make_participant(db, site, coordinator=coordinator), coordinator, "de"
    )
    with pytest.raises(Conflict, match="no consent document is approved"):
        documents.current_document(db, fresh(db, patient.participant), TODAY)


# --- the scheduler ---------------------------------------------------------------


def test_the_scheduler_runs_the_consent_job_when_given_it(app):
    scheduler = build_scheduler(
        app.extensions["db"].sessions, app.config, blocking=False, extra_jobs=jobs.CONSENT_JOBS
    )
    without = build_scheduler(app.extensions["db"].sessions, app.config, blocking=False)
    assert scheduler.get_job("consent-effective-versions") is not None
    assert scheduler.get_job("audit-seal") is not None
    assert without.get_job("consent-effective-versions") is None


def test_scheduling_does_not_import_consent(repo_root: Path):
    for source in (repo_root / "scheduling").glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = (
                    [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else [alias.name for alias in node.names]
                )
                assert not any(name.split(".")[0] == "consent" for name in names), source


def test_a_scheduled_run_applies_versions_that_became_effective(db, world, connection):
    current = make_consent_document(db, world.study)
    coming = make_consent_document(db, world.study, approved=False)
    documents.approve(
        db,
        ADMIN,
        coming.id,
        documents.Approval("EC-9", approved_on=later(-10), effective_from=later(-1)),
        today=later(-5),  # approved while its date was still ahead
    )
    assert fresh(db, current).status == "approved"

    [spec] = jobs.CONSENT_JOBS
    run_job(joined_sessions(connection), spec.id, spec.func)

    assert fresh(db, current).status == "superseded"
    [event] = audit_events(db, "consent_document.supersede", current.id)
    assert event.actor_role == "system"
    assert event.request_id.startswith("job-consent-effective-versions-")
