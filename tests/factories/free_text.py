"""Records holding every kind of free text people type, and the signed consent PDF,
written through the models, for the at-rest and migration tests to read back raw.

Each `Stored` names one value by table, column and row id, with what the person
typed (or the PDF they were given)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Uuid, bindparam, select, text
from sqlalchemy.orm import Session

from consent import pdf, withdrawal
from consent.models import Consent
from services.db import Base, utcnow
from services.models import EproInstance, EproResponse, Participant, TusTransfer, Upload
from services.people import participants as people
from tests.factories.epro import make_instance, make_questionnaire
from tests.factories.people import World
from tests.factories.visits import enrolled_with_visits

# What people type: a relative's name and phone, the kind of thing reviewers found.
WITHDRAWAL = "Daughter Anna Claes phoned: her mother stops, too tiring"
CANCEL = "Patient in hospital (AZ Sint-Jan), call Anna Claes +32 470 12 34 56"
DEVIATION = "Booked late: Mr Vermeulen away at his son's in Leuven"
INSTANCE_CANCEL = "Stopped by coordinator: Jan Peeters asked to pause"
FALL_TEXT = "Fell in the kitchen, neighbour Lieve Maes helped me up"
CORRECTED_FALL_TEXT = "Fell on the stairs, neighbour Lieve Maes helped me up"
CORRECTION_REASON = "Participant Jan Peeters phoned: it was the stairs"
SUPERSEDE_REASON = "Wrong meter: neighbour Dirk Mertens lent me his"
# JSON columns encrypted as a whole, next to the text ones.
JSON_COLUMNS = frozenset({"epro_responses.answers", "tus_transfers.metadata"})


@dataclass(frozen=True)
class Stored:
    table: str
    column: str
    row_id: uuid.UUID
    value: Any  # what the model gives back: the text, the answers list, the PDF bytes
    secrets: tuple[str, ...]  # strings of it that must not be readable at rest

    @property
    def purpose(self) -> str:
        return f"{self.table}.{self.column}"


def raw_value(connection: Connection, stored: Stored) -> Any:
    """The column as the database holds it, read without the models' types."""
    statement = text(
        f"SELECT {stored.column} FROM {stored.table} WHERE id = :id"  # noqa: S608 - our names
    ).bindparams(bindparam("id", type_=Uuid()))
    return connection.execute(statement, {"id": stored.row_id}).scalar_one()


def model_value(session: Session, stored: Stored) -> Any:
    """The column as the models read it back (decrypted by its type)."""
    table = Base.metadata.tables[stored.table]
    query = select(table.c[stored.column]).where(table.c.id == stored.row_id)
    return session.execute(query).scalar_one()


def as_text(raw: Any) -> str:
    """A raw value as searchable text (bytes decoded leniently, JSON as stored)."""
    if isinstance(raw, bytes | memoryview):
        return bytes(raw).decode("latin-1")
    return str(raw)


def write_free_text(session: Session, world: World) -> list[Stored]:
    """Every free-text column in use, and a rendered signed PDF, for patient_a."""
    coordinator = people.actor_for(session, world.coordinator_a, "free-text")
    visits = enrolled_with_visits(session, world)
    consent = session.query(Consent).filter_by(participant_id=world.patient_a.participant.id).one()
    signed = pdf.signed_copy(session, coordinator, consent.id)
    withdrawal.withdraw(
        session, coordinator, consent.id, withdrawal.Withdrawal("all", reason=WITHDRAWAL)
    )
    cancelled, deviated = visits[-1], visits[-2]
    cancelled.cancel_reason = CANCEL
    deviated.deviation_reason = DEVIATION
    questionnaire = make_questionnaire(session, world.study, world.coordinator_a)
    instance = make_instance(session, world.patient_a.participant, questionnaire)
    stopped = make_instance(session, world.patient_a.participant, questionnaire)
    stopped.cancel_reason = INSTANCE_CANCEL
    answered = _response(session, instance, world.patient_a.user.id, FALL_TEXT)
    corrected = _response(
        session,
        instance,
        world.coordinator_a.id,
        CORRECTED_FALL_TEXT,
        corrects=answered,
        reason=CORRECTION_REASON,
    )
    replacement, transfer = _replacements(session, world.patient_a.participant)
    session.flush()
    name = world.patient_a.user.full_name
    return [
        Stored("consents", "pdf", consent.id, signed.pdf, (name, world.coordinator_a.full_name)),
        Stored("consents", "withdrawal_reason", consent.id, WITHDRAWAL, ("Anna Claes",)),
        Stored("visits", "cancel_reason", cancelled.id, CANCEL, ("Anna Claes", "470 12")),
        Stored("visits", "deviation_reason", deviated.id, DEVIATION, ("Vermeulen",)),
        Stored("epro_instances", "cancel_reason", stopped.id, INSTANCE_CANCEL, ("Jan Peeters",)),
        Stored("epro_responses", "answers", answered.id, answered.answers, ("Lieve Maes",)),
        Stored("epro_responses", "answers", corrected.id, corrected.answers, ("Lieve Maes",)),
        Stored("epro_responses", "reason", corrected.id, CORRECTION_REASON, ("Jan Peeters",)),
        Stored("uploads", "supersede_reason", replacement.id, SUPERSEDE_REASON, ("Dirk Mertens",)),
        Stored("tus_transfers", "metadata", transfer.id, transfer.metadata_, ("Dirk Mertens",)),
    ]


def _replacements(session: Session, participant: Participant) -> tuple[Upload, TusTransfer]:
    """A replaced upload's row with its reason, and a replacement still in transfer
    (rows only: these tests read columns, not stored objects)."""
    now = utcnow()

    def upload(**replacing: Any) -> Upload:
        row = Upload(
            id=uuid.uuid4(),
            participant_id=participant.id,
            study_id=participant.study_id,
            site_id=participant.site_id,
            kind="glucose",
            content_type="text/csv",
            size_bytes=10,
            sha256="0" * 64,
            storage_backend="local",
            storage_key=f"objects/{uuid.uuid4()}",
            captured_at=now,
            device={"manufacturer": "Acme"},
            transfer="multipart",
            originator="patient",
            uploaded_by=participant.user_id,
            received_at=now,
            **replacing,
        )
        session.add(row)
        session.flush()
        return row

    original = upload()
    replacement = upload(supersedes_id=original.id, supersede_reason=SUPERSEDE_REASON)
    transfer = TusTransfer(
        id=uuid.uuid4(),
        participant_id=participant.id,
        created_by=participant.user_id,
        length_bytes=10,
        metadata_={"kind": "glucose", "supersede_reason": SUPERSEDE_REASON},
        expires_at=now,
    )
    session.add(transfer)
    return replacement, transfer


def fall_answers(description: str) -> list[dict[str, Any]]:
    """Valid answers to the factory questionnaire with its free-text item shown."""
    return [
        {"item": "q1", "value": "some"},
        {"item": "q5", "value": 4},
        {"item": "q7", "value": True},
        {"item": "q9", "value": description},
    ]


def _response(
    session: Session,
    instance: EproInstance,
    entered_by: uuid.UUID,
    description: str,
    *,
    corrects: EproResponse | None = None,
    reason: str | None = None,
) -> EproResponse:
    """Version 1 as the patient sent it, or a coordinator's correction of it."""
    now = utcnow()
    response = EproResponse(
        id=uuid.uuid4(),
        client_id=None if corrects else uuid.uuid4(),
        instance_id=instance.id,
        participant_id=instance.participant_id,
        questionnaire_id=instance.questionnaire_id,
        version=corrects.version + 1 if corrects else 1,
        corrects_id=corrects.id if corrects else None,
        status="completed",
        answers=fall_answers(description),
        started_at=now,
        completed_at=now,
        received_at=now,
        timeliness="on_time",
        originator="coordinator" if corrects else "patient",
        entered_by=entered_by,
        reason=reason,
    )
    session.add(response)
    session.flush()
    return response
