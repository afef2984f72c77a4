"""SMS reminders as a participant's coordinator sees them: what is planned, what was
sent and how its delivery went; never the text or its parameters (an activation
code is a secret, and the text is the patient's)."""

from __future__ import annotations

import uuid

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Page

from api.auth import current_actor
from api.db import db_session
from api.fields import UtcDateTime
from api.openapi import Blueprint, QueryResults, protected
from services.notifications import outbox

blp = Blueprint("notifications", __name__, url_prefix="/api/v1", description="SMS reminders")


class SmsNotificationSchema(ma.Schema):
    id = ma.fields.UUID()
    template = ma.fields.String(
        metadata={
            "description": "activation_code, visit_24h, visit_morning, epro_open, epro_closing, "
            "reconsent_pending, opt_out_confirm, opt_in_confirm or help"
        }
    )
    status = ma.fields.String(
        metadata={
            "description": "pending, sending, sent, delivered, undelivered, failed, cancelled "
            "or skipped"
        }
    )
    status_reason = ma.fields.String(
        allow_none=True, metadata={"description": "why it was cancelled, skipped or failed"}
    )
    due_at = UtcDateTime(metadata={"description": "when the rule wants it sent"})
    next_attempt_at = UtcDateTime(
        metadata={"description": "when it will be tried (quiet hours, caps and retries defer it)"}
    )
    sent_at = UtcDateTime(allow_none=True)
    delivered_at = UtcDateTime(allow_none=True)
    attempts = ma.fields.Integer()
    error_code = ma.fields.Integer(allow_none=True, metadata={"description": "Twilio's"})
    segments = ma.fields.Integer(allow_none=True)


@blp.route("/participants/<uuid:participant_id>/notifications")
class ParticipantNotifications(MethodView):
    @protected(blp, 403, 404)
    @blp.response(200, SmsNotificationSchema(many=True))
    @blp.paginate(Page)
    def get(self, participant_id: uuid.UUID) -> QueryResults:
        """The participant's planned and sent SMS, latest due first (coordinators of
        the participant's site)."""
        session = db_session()
        return QueryResults(
            session, outbox.participant_messages(session, current_actor(), participant_id)
        )
