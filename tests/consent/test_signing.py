"""A signature stays bound to the record and the exact text it was given for.

Tampering is done with plain SQL, as someone with database access would; on
PostgreSQL the append-only trigger is first disabled inside the test's transaction
(rolled back with it), since the database refuses the edit otherwise.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy import TextClause, Uuid, bindparam, select, text
from sqlalchemy.orm import Session

from consent import signing
from consent.models import Consent, ConsentSignature
from tests.checks import count
from tests.factories.consent import (
    make_complete_consent,
    make_consent_document,
    record_discussion,
    sign_as,
)
from tests.factories.people import World


def by_id(statement: str) -> TextClause:
    return text(statement).bindparams(bindparam("id", type_=Uuid()))


def signature_of(db: Session, consent: Consent, role: str) -> ConsentSignature:
    db.expire_all()
    return db.scalars(
        select(ConsentSignature).where(
            ConsentSignature.consent_id == consent.id, ConsentSignature.signer_role == role
        )
    ).one()


@pytest.fixture
def complete(db: Session, world: World) -> Consent:
    document = make_consent_document(db, world.study)
    return make_complete_consent(db, world.patient_a, world.coordinator_a, document)


@pytest.fixture
def tamperable(db: Session, dialect: str) -> Session:
    """Lift PostgreSQL's append-only trigger for this test's transaction only."""
    if dialect == "postgresql":
        db.execute(
            text("ALTER TABLE consent_signatures DISABLE TRIGGER consent_signatures_append_only")
        )
    return db


def test_the_signatures_of_a_complete_consent_are_intact(db, complete):
    for role in ("participant", "investigator"):
        signature = signature_of(db, complete, role)
        assert signature.binding == signing.signature_binding(signature)
        assert signing.signature_is_intact(signature, complete)


def test_a_signature_is_intact_only_with_the_consent_it_was_given_for(db, world, complete):
    record_discussion(db, world.patient_b, world.coordinator_b)
    other = sign_as(db, world.patient_b.user, world.patient_b, complete.document, "participant")

    assert not signing.signature_is_intact(other, complete)


@pytest.mark.parametrize(
    "change",
    [
        "meaning = 'I do not consent'",
        "document_sha256 = '" + "0" * 64 + "'",
        "document_version = 2",
        "signer_role = 'impartial_witness'",
    ],
)
@pytest.mark.requirement("CONSENT-6")
def test_an_edited_signature_fails_verification(db, complete, tamperable, change):
    signature = signature_of(db, complete, "participant")
    edit = by_id(f"UPDATE consent_signatures SET {change} WHERE id = :id")  # noqa: S608

    db.execute(edit, {"id": signature.id})

    db.expire_all()
    edited = db.get(ConsentSignature, signature.id)
    assert not signing.signature_is_intact(edited, complete)


@pytest.mark.requirement("CONSENT-6")
def test_a_signature_moved_to_another_consent_fails_verification(db, world, complete, tamperable):
    record_discussion(db, world.patient_b, world.coordinator_b)
    other = sign_as(db, world.patient_b.user, world.patient_b, complete.document, "participant")
    countersignature = signature_of(db, complete, "investigator")

    db.execute(
        by_id(
            "UPDATE consent_signatures SET consent_id = :consent, participant_id = :participant "
            "WHERE id = :id"
        ).bindparams(bindparam("consent", type_=Uuid()), bindparam("participant", type_=Uuid())),
        {
            "id": countersignature.id,
            "consent": other.consent_id,
            "participant": other.participant_id,
        },
    )

    db.expire_all()
    moved = db.get(ConsentSignature, countersignature.id)
    target = db.get(Consent, other.consent_id)
    assert moved.consent_id == target.id
    assert moved in target.signatures
    assert not signing.signature_is_intact(moved, target)


@pytest.mark.requirement("CONSENT-6")
def test_postgresql_refuses_to_update_or_delete_signatures(db, complete, dialect):
    if dialect != "postgresql":
        pytest.skip("the append-only trigger exists on PostgreSQL only")
    signature = signature_of(db, complete, "participant")

    for statement in (
        "UPDATE consent_signatures SET meaning = 'edited'",
        "UPDATE consent_signatures SET consent_id = consent_id",
        "DELETE FROM consent_signatures",
        "TRUNCATE consent_signatures",
    ):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), db.begin_nested():
            db.execute(text(statement))

    assert count(db, ConsentSignature) == 2
    assert signature_of(db, complete, "participant").meaning == signature.meaning
