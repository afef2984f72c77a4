"""The consent gate every new study procedure passes through.

Consent itself lives in `consent/`; it keeps `Participant.consent_state` current so
that this layer can check it without depending on the consent records.
"""

from __future__ import annotations

from services.errors import Conflict
from services.models import ConsentState, Participant, ParticipantStatus

_WHY_NOT = {
    ConsentState.NONE.value: "the participant has not signed a consent",
    ConsentState.PENDING.value: "the consent is not complete (signatures are missing)",
    ConsentState.REQUIRES_RECONSENT.value: (
        "a new consent version requires re-consent before any new study procedure"
    ),
    ConsentState.WITHDRAWN.value: "the participant withdrew consent",
}


def require_current_consent(participant: Participant) -> None:
    """Refuse a new study procedure unless the participant's consent is complete and
    current (what was done before a re-consent or withdrawal stays valid)."""
    if participant.consent_state != ConsentState.COMPLETE:
        raise Conflict(f"not allowed: {_WHY_NOT[participant.consent_state]}")


def require_enrolled(participant: Participant) -> None:
    """Refuse a procedure of the trial itself (ePRO) unless the participant is enrolled
    and their consent complete and current."""
    if participant.status != ParticipantStatus.ENROLLED:
        raise Conflict(f"the participant is {participant.status}, not enrolled")
    require_current_consent(participant)
