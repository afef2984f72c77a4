"""One blueprint per resource; adding a resource is one line here."""

from api.resources import audit, auth, health, me, participants, studies, users

BLUEPRINTS = (
    health.blp,
    auth.blp,
    me.blp,
    studies.blp,
    users.blp,
    participants.blp,
    audit.blp,
)
