"""What staff do for a person who cannot log in: send them a reset code (which staff
never see), or a new activation code to an account that never had a password."""

from __future__ import annotations

import uuid
from typing import Any

import marshmallow as ma
from flask.views import MethodView

from api.auth import auth_policy, current_actor
from api.db import db_session
from api.fields import UtcDateTime
from api.openapi import Blueprint, protected
from api.resources.people.participants import ActivationCodeSchema
from api.resources.people.users import ReasonSchema
from services.people import activation, password_reset

blp = Blueprint(
    "credentials",
    __name__,
    url_prefix="/api/v1",
    description="Password resets and activation codes triggered by staff",
)


class ResetSentSchema(ma.Schema):
    user_id = ma.fields.UUID()
    channel = ma.fields.String(metadata={"description": "where the code went: sms or email"})
    expires_at = UtcDateTime()


@blp.route("/participants/<uuid:participant_id>/password-reset")
class ParticipantPasswordReset(MethodView):
    @protected(blp, 403, 404, 409)
    @blp.arguments(ReasonSchema)
    @blp.response(202, ResetSentSchema)
    def post(self, body: dict[str, Any], participant_id: uuid.UUID) -> Any:
        """Send an activated participant a reset code (coordinator of their site).

        The code goes to the holder's e-mail address or phone on file, never into this
        answer. Signatures made
        with a password set this way are refused for 24 hours (see the Part 11 note
        in docs/part11-credentials.md).
        """
        return password_reset.trigger_for_participant(
            db_session(), current_actor(), auth_policy(), participant_id, body["reason"]
        )


@blp.route("/users/<uuid:user_id>/password-reset")
class UserPasswordReset(MethodView):
    @protected(blp, 403, 404, 409)
    @blp.arguments(ReasonSchema)
    @blp.response(202, ResetSentSchema)
    def post(self, body: dict[str, Any], user_id: uuid.UUID) -> Any:
        """Send a staff member a reset code (admin; coordinators: nurses of their sites)."""
        return password_reset.trigger_for_user(
            db_session(), current_actor(), auth_policy(), user_id, body["reason"]
        )


@blp.route("/users/<uuid:user_id>/activation-code")
class UserActivationCode(MethodView):
    @protected(blp, 403, 404, 409)
    @blp.response(201, ActivationCodeSchema)
    def post(self, user_id: uuid.UUID) -> dict[str, str]:
        """A new activation code for a staff account that never set a password (the
        first expired); the previous one stops working. An activated account: 409."""
        code = activation.reissue_for_user(db_session(), current_actor(), user_id)
        return {"activation_code": code}
