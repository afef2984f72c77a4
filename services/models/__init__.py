"""Every mapped class, imported here so Alembic and the app see one complete metadata."""

from services.models.audit import AuditChainHead, AuditEvent, AuditSeal
from services.models.identity import ActivationCode, AuthSession, RefreshToken
from services.models.participant import ConsentState, Participant, ParticipantStatus
from services.models.study import Site, Study
from services.models.user import User, user_sites, user_studies

__all__ = [
    "ActivationCode",
    "AuditChainHead",
    "AuditEvent",
    "AuditSeal",
    "AuthSession",
    "ConsentState",
    "Participant",
    "ParticipantStatus",
    "RefreshToken",
    "Site",
    "Study",
    "User",
    "user_sites",
    "user_studies",
]
