"""One blueprint per resource; adding a resource is one line here."""

from api.resources import (
    audit,
    auth,
    consent_documents,
    consent_signatures,
    consents,
    health,
    me,
    my_visits,
    nurses,
    participants,
    schedule,
    studies,
    users,
    visits,
)

BLUEPRINTS = (
    health.blp,
    auth.blp,
    me.blp,
    studies.blp,
    users.blp,
    participants.blp,
    consent_documents.blp,
    consent_signatures.blp,
    consents.blp,
    audit.blp,
    schedule.blp,
    nurses.blp,
    visits.blp,
    my_visits.blp,
)
