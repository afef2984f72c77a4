"""The consent services end to end, as the factories drive them."""

from consent import signing, withdrawal
from consent.models import ConsentSignature
from services.models import Participant
from services.people import enrolment
from services.people import participants as people
from tests.factories.consent import make_complete_consent, make_consent_document
from tests.factories.people import make_world


def test_complete_consent_enrol_and_withdraw(db):
    world = make_world(db)
    document = make_consent_document(db, world.study)
    consent = make_complete_consent(db, world.patient_a, world.coordinator_a, document)
    participant = db.get(Participant, world.patient_a.participant.id)
    assert (participant.status, participant.consent_state) == ("consented", "complete")
    for signature in db.query(ConsentSignature).filter_by(consent_id=consent.id):
        assert signing.signature_is_intact(signature, consent)
    actor = people.actor_for(db, world.coordinator_a, "t")
    enrolment.enroll(db, actor, participant.id, participant.created_at.date())
    assert participant.status == "enrolled"
    withdrawal.withdraw(db, actor, consent.id, withdrawal.Withdrawal("all", reason="phoned"))
    assert (participant.status, participant.consent_state) == ("withdrawn", "withdrawn")
