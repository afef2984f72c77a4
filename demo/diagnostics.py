"""Remote-diagnostics demo data for `make run`: the study's alert thresholds, a few
days of the enrolled demo patient's home readings (one above the threshold, so the
coordinator's alert list is not empty) and one uploaded glucose export. Built through
the services, idempotent."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from demo.seed import STUDY_CODE
from services.actor import Actor
from services.db import utcnow
from services.diagnostics import readings, thresholds, upload_keys, uploads
from services.diagnostics.storage import Storage
from services.diagnostics.zip_inspection import ZipLimits
from services.models import Participant, ParticipantStatus, Reading, Study, Upload, User
from services.people import participants as people

COORDINATOR = "coordinator.brussels@demo.dct.example"
PATIENT = "jan.janssens@demo.dct.example"
CUFF = {"manufacturer": "Omron", "model": "M7 Intelli IT", "serial": "DEMO-0001"}
THRESHOLDS = [
    thresholds.Threshold("blood_pressure", "systolic", "mm[Hg]", 90, 160),
    thresholds.Threshold("blood_pressure", "diastolic", "mm[Hg]", 50, 100),
    thresholds.Threshold("spo2", "value", "%", 92, None),
]
# (days ago, systolic, diastolic): the last one is above the systolic threshold.
PRESSURES = [(3, 132, 84), (2, 128, 80), (1, 171, 96)]
GLUCOSE_CSV = (
    b"timestamp,glucose_mmol_l\n"
    b"2026-11-20T07:30:00+01:00,6.1\n"
    b"2026-11-20T12:30:00+01:00,8.4\n"
    b"2026-11-20T19:00:00+01:00,7.2\n"
)


def _actor(session: Session, email: str) -> tuple[User, Actor]:
    user = session.scalars(select(User).where(User.email_index == people.email_index(email))).one()
    return user, people.actor_for(session, user, "demo-seed")


def seed(session: Session, storage: Storage) -> None:
    """After enrolment: readings and uploads need a current consent."""
    if session.scalars(select(Reading.id)).first() is not None:
        return
    study = session.scalars(select(Study).where(Study.code == STUDY_CODE)).one()
    _, coordinator = _actor(session, COORDINATOR)
    thresholds.put_thresholds(session, coordinator, study.id, THRESHOLDS)
    patient_user, patient = _actor(session, PATIENT)
    participant = session.scalars(
        select(Participant).where(Participant.user_id == patient_user.id)
    ).one()
    if participant.status != ParticipantStatus.ENROLLED:
        return
    now = utcnow()
    for days_ago, systolic, diastolic in PRESSURES:
        readings.record(
            session,
            patient,
            participant.id,
            readings.NewReading(
                type="blood_pressure",
                value={"systolic": systolic, "diastolic": diastolic},
                unit="mm[Hg]",
                measured_at=now - dt.timedelta(days=days_ago),
                client_id=uuid.uuid4(),
                device=CUFF,
            ),
            now=now,
        )
    _upload_glucose_export(session, patient, storage, now)


def _upload_glucose_export(
    session: Session, patient: Actor, storage: Storage, now: dt.datetime
) -> Upload:
    meta = uploads.UploadMeta(
        kind="glucose",
        sha256=hashlib.sha256(GLUCOSE_CSV).hexdigest(),
        captured_at=now - dt.timedelta(days=6),
        device={"manufacturer": "Abbott", "model": "FreeStyle Libre 3"},
        filename="glucose-export.csv",
    )
    target = uploads.prepare(session, patient, meta, now=now)
    staged = upload_keys.stage(session, storage)
    try:
        received = uploads.HashingWriter(staged, len(GLUCOSE_CSV), ZipLimits())
        received.write(GLUCOSE_CSV)
        upload, _ = uploads.finish(
            session,
            patient,
            meta,
            target,
            received=received,
            commit=staged.commit,
            storage_backend=storage.name,
            transfer="multipart",
            now=now,
        )
    except Exception:
        staged.discard()
        raise
    return upload
