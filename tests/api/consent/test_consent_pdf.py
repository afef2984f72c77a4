"""The signed copy: a PDF with the text, every signature manifestation, the document
hash and the consent record id; produced once, byte-identical afterwards, every
download audited."""

from __future__ import annotations

import datetime as dt
import hashlib
import io

import pytest
from pypdf import PdfReader
from sqlalchemy import text, update
from sqlalchemy.orm import Session

from consent import documents, pdf
from consent.models import Consent, ConsentDocument, ConsentSignature
from consent.signing import MEANINGS
from services.models import Participant
from tests.checks import assert_problem, audit_events
from tests.factories.consent import (
    draft_the_set,
    make_complete_consent,
    make_consent_document,
    record_discussion,
    sign_as,
)
from tests.factories.people import ADMIN, PASSWORD, World, headers_for, random_id, user_of


@pytest.fixture
def document(db: Session, world: World) -> ConsentDocument:
    return make_consent_document(db, world.study)


@pytest.fixture
def consent(db: Session, world: World, document: ConsentDocument) -> Consent:
    return make_complete_consent(db, world.patient_a, world.coordinator_a, document)


def pdf_url(consent: Consent) -> str:
    return f"/api/v1/consents/{consent.id}/pdf"


def pdf_text(data: bytes) -> str:
    """All pages' text with whitespace normalised (wrapped lines joined)."""
    reader = PdfReader(io.BytesIO(data))
    return " ".join(" ".join(page.extract_text() for page in reader.pages).split())


def stored_copy(db: Session, consent: Consent) -> tuple[bytes | None, str | None]:
    db.expire_all()
    record = db.get(Consent, consent.id)
    return record.pdf, record.pdf_sha256


@pytest.mark.requirement("CONSENT-5", "CONSENT-10")
def test_patient_downloads_the_signed_copy(client, db, world, document, consent):
    response = client.get(pdf_url(consent), headers=headers_for(client, world.patient_a.user))
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    data = response.get_data()
    digest = hashlib.sha256(data).hexdigest()
    subject_code = world.patient_a.participant.subject_code
    assert response.headers["Content-Disposition"] == (
        f"attachment; filename=consent-{subject_code}-v{document.version}.pdf"
    )
    assert response.headers["X-Content-SHA256"] == digest
    assert response.headers["ETag"] == f'"{digest}"'
    assert stored_copy(db, consent) == (data, digest)

    content = pdf_text(data)
    assert document.title in content
    assert "We study home monitoring." in content
    assert document.content_sha256 in content
    assert str(consent.id) in content
    assert f"version {document.version} (nl)" in content
    assert "I agree to future_research Yes, I agree" in content
    for signature in consent.signatures:
        assert signature.printed_name in content
        assert signature.meaning in content
        assert signature.signed_at.strftime("%Y-%m-%d %H:%M:%S UTC") in content
    assert MEANINGS["participant"] in content and MEANINGS["investigator"] in content
    assert "Page 1 of" in content


@pytest.mark.requirement("CONSENT-10")
def test_the_copy_is_produced_once_and_byte_identical_afterwards(client, db, world, consent):
    first = client.get(pdf_url(consent), headers=headers_for(client, world.patient_a.user))
    second = client.get(pdf_url(consent), headers=headers_for(client, world.coordinator_a))
    assert second.status_code == 200
    assert first.get_data() == second.get_data()
    assert first.headers["X-Content-SHA256"] == second.headers["X-Content-SHA256"]
    assert stored_copy(db, consent)[1] == second.headers["X-Content-SHA256"]
    assert len(audit_events(db, "consent.pdf_store", consent.id)) == 1
    downloads = audit_events(db, "consent.pdf_download", consent.id)
    assert [e.actor_id for e in downloads] == [world.patient_a.user.id, world.coordinator_a.id]
    assert {e.after["pdf_sha256"] for e in downloads} == {second.headers["X-Content-SHA256"]}


def test_the_stored_hash_can_be_re_derived_from_the_record(client, db, world, consent):
    response = client.get(pdf_url(consent), headers=headers_for(client, world.coordinator_a))
    db.expire_all()
    record = db.get(Consent, consent.id)
    rendered = pdf.render(record, db.get(Participant, record.participant_id))
    assert hashlib.sha256(rendered).hexdigest() == response.headers["X-Content-SHA256"]


def test_european_names_print_as_typed(client, db, world, document):
    world.patient_a.user.full_name = "Łukasz Müller-Liège"
    world.coordinator_a.full_name = "Tomáš Dvořák"
    db.flush()
    consent = make_complete_consent(db, world.patient_a, world.coordinator_a, document)
    response = client.get(pdf_url(consent), headers=headers_for(client, world.coordinator_a))
    content = pdf_text(response.get_data())
    assert "Łukasz Müller-Liège" in content
    assert "Tomáš Dvořák" in content
    assert "printed without their accents" not in content


def test_a_character_the_font_lacks_is_replaced_and_the_copy_says_so(client, db, world, document):
    world.coordinator_a.full_name = "Wei 李"
    db.flush()
    consent = make_complete_consent(db, world.patient_a, world.coordinator_a, document)
    response = client.get(pdf_url(consent), headers=headers_for(client, world.coordinator_a))
    content = pdf_text(response.get_data())
    assert "Wei ?" in content
    assert "printed without their accents" in content


def test_markdown_is_laid_out_and_markup_is_escaped(client, db, world):
    body = (
        "# About <this> study\n\nPlain text & more, **in bold**.\n\n"
        "## What happens\n\n- a nurse visits\n- you answer <questions>\n  on your phone\n\n"
        "1. first\n2. second\n"
    )
    draft = documents.create_draft(
        db,
        ADMIN,
        world.study.id,
        documents.DraftContent("nl", "Consent & <title>", body, ["participant", "investigator"]),
    )
    today = dt.date.today()
    draft_the_set(db, world.study)
    documents.approve(db, ADMIN, draft.id, documents.Approval("EC-MD", today, today), today)
    consent = make_complete_consent(db, world.patient_a, world.coordinator_a, draft)
    response = client.get(pdf_url(consent), headers=headers_for(client, world.coordinator_a))
    content = pdf_text(response.get_data())
    assert "Consent & <title>" in content
    assert "About <this> study" in content
    assert "Plain text & more, in bold." in content
    assert "• a nurse visits • you answer <questions> on your phone" in content
    assert "1 first 2 second" in content
    assert "**" not in content and "#" not in content


def test_a_withdrawn_consent_keeps_its_copy_as_signed(client, db, world, consent):
    headers = headers_for(client, world.patient_a.user)
    withdrawn = client.post(
        f"/api/v1/consents/{consent.id}/withdraw",
        json={"scope": "all", "password": PASSWORD},
        headers=headers,
    )
    assert withdrawn.status_code == 200
    response = client.get(pdf_url(consent), headers=headers)
    assert response.status_code == 200
    assert "withdrawn" not in pdf_text(response.get_data()).lower()


def test_no_copy_before_the_investigator_countersigns(client, db, world, document):
    record_discussion(db, world.patient_a, world.coordinator_a)
    signature = sign_as(db, world.patient_a.user, world.patient_a, document, "participant")
    consent = db.get(Consent, signature.consent_id)
    response = client.get(pdf_url(consent), headers=headers_for(client, world.patient_a.user))
    assert "complete" in assert_problem(response, 409)["detail"]
    assert stored_copy(db, consent) == (None, None)
    assert audit_events(db, "consent.pdf_download", consent.id) == []


def test_a_tampered_signature_gets_no_copy(client, db, world, consent, dialect):
    if dialect == "postgresql":  # step past the append-only trigger, for this transaction only
        db.execute(text("SET LOCAL session_replication_role = replica"))
    db.execute(
        update(ConsentSignature)
        .where(ConsentSignature.consent_id == consent.id)
        .values(document_version=99)
    )
    response = client.get(pdf_url(consent), headers=headers_for(client, world.coordinator_a))
    assert "verification" in assert_problem(response, 409)["detail"]
    assert stored_copy(db, consent) == (None, None)


@pytest.mark.parametrize("who", ["nurse_a", "monitor", "admin"])
def test_other_roles_get_no_copy(client, db, world, consent, who):
    response = client.get(pdf_url(consent), headers=headers_for(client, user_of(world, who)))
    assert_problem(response, 403)
    assert stored_copy(db, consent) == (None, None)


@pytest.mark.parametrize("who", ["coordinator_b", "patient_b"])
def test_another_patient_or_site_finds_nothing(client, db, world, consent, who):
    user = world.patient_b.user if who == "patient_b" else user_of(world, who)
    response = client.get(pdf_url(consent), headers=headers_for(client, user))
    assert_problem(response, 404)
    assert audit_events(db, "consent.pdf_download", consent.id) == []


def test_unknown_consent_is_not_found(client, world):
    response = client.get(
        f"/api/v1/consents/{random_id()}/pdf", headers=headers_for(client, world.coordinator_a)
    )
    assert_problem(response, 404)
