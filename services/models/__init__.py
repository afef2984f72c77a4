"""Every mapped class, imported here so Alembic and the app see one complete metadata."""

from services.models.audit import AuditChainHead, AuditEvent, AuditSeal
from services.models.email import EMAIL_STATUSES, EmailMessage, EmailStatus
from services.models.epro import (
    EproInstance,
    EproResponse,
    InstanceStatus,
    Questionnaire,
    QuestionnaireStatus,
    ResponseStatus,
    Timeliness,
)
from services.models.identity import (
    ActivationCode,
    AuthSession,
    LoginLockout,
    PasswordResetCode,
    RefreshToken,
)
from services.models.notification import (
    SMS_STATUSES,
    NotificationPreference,
    SmsEvent,
    SmsMessage,
    SmsStatus,
    StudySmsSettings,
)
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
    "EMAIL_STATUSES",
    "ORIGINATORS",
    "READING_TYPES",
    "SMS_STATUSES",
    "UPLOAD_KINDS",
    "ActivationCode",
    "AuditChainHead",
    "AuditEvent",
    "AuditSeal",
    "AuthSession",
    "ConsentState",
    "Delegation",
    "EmailMessage",
    "EmailStatus",
    "EproInstance",
    "EproResponse",
    "InstanceStatus",
    "LoginLockout",
    "NotificationPreference",
    "NurseProfile",
    "NurseTimeOff",
    "Participant",
    "ParticipantStatus",
    "PasswordResetCode",
    "Questionnaire",
    "QuestionnaireStatus",
    "Reading",
    "ReadingThreshold",
    "RefreshToken",
    "ResponseStatus",
    "Site",
    "SmsEvent",
    "SmsMessage",
    "SmsStatus",
    "Study",
    "StudySmsSettings",
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
