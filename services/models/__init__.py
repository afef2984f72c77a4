"""Every mapped class, imported here so Alembic and the app see one complete metadata."""

from services.models.audit import AuditChainHead, AuditEvent, AuditSeal
from services.models.epro import (
    EproInstance,
    EproResponse,
    InstanceStatus,
    Questionnaire,
    QuestionnaireStatus,
    ResponseStatus,
    Timeliness,
)
from services.models.identity import ActivationCode, AuthSession, RefreshToken
from services.models.participant import ConsentState, Participant, ParticipantStatus
from services.models.study import Site, Study
from services.models.upload import (
    ORIGINATORS,
    READING_TYPES,
    UPLOAD_KINDS,
    Reading,
    ReadingThreshold,
    TusTransfer,
    Upload,
)
from services.models.user import User, user_sites, user_studies
from services.models.visit import (
    BUSY_STATUSES,
    Delegation,
    NurseProfile,
    NurseTimeOff,
    Visit,
    VisitDefinition,
    VisitStatus,
)

__all__ = [
    "BUSY_STATUSES",
    "ORIGINATORS",
    "READING_TYPES",
    "UPLOAD_KINDS",
    "ActivationCode",
    "AuditChainHead",
    "AuditEvent",
    "AuditSeal",
    "AuthSession",
    "ConsentState",
    "Delegation",
    "EproInstance",
    "EproResponse",
    "InstanceStatus",
    "NurseProfile",
    "NurseTimeOff",
    "Participant",
    "ParticipantStatus",
    "Questionnaire",
    "QuestionnaireStatus",
    "Reading",
    "ReadingThreshold",
    "RefreshToken",
    "ResponseStatus",
    "Site",
    "Study",
    "Timeliness",
    "TusTransfer",
    "Upload",
    "User",
    "Visit",
    "VisitDefinition",
    "VisitStatus",
    "user_sites",
    "user_studies",
]
