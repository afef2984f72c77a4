"""The caller's own profile."""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView

from api.auth import current_actor
from api.db import db_session
from api.openapi import Blueprint, protected
from api.resources.schemas import UserSchema, With
from services.models import Participant, User

blp = Blueprint("me", __name__, url_prefix="/api/v1/me", description="The caller's profile")


class MeSchema(UserSchema):
    participant_id = ma.fields.UUID(allow_none=True)


@blp.route("")
class Me(MethodView):
    @protected(blp)
    @blp.response(200, MeSchema)
    def get(self) -> With:
        """Role, sites, studies, participant id (patients), locale and time zone."""
        actor = current_actor()
        session = db_session()
        user = session.get(User, actor.user_id)
        scope = {
            "participant_id": actor.participant_id,
            "study_ids": sorted(actor.study_ids, key=str),
        }
        # A patient belongs to a site through their participation, not a membership.
        if actor.participant_id and (participant := session.get(Participant, actor.participant_id)):
            scope.update(site_ids=[participant.site_id], study_ids=[participant.study_id])
        return With(user, scope)
