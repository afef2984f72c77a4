"""Participants: created by coordinators, read pseudonymised by monitors and admins."""

from __future__ import annotations

import uuid
from typing import Any

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Page

from api.auth import current_actor
from api.db import db_session
from api.fields import UtcDateTime
from api.openapi import Blueprint, QueryResults, protected
from api.resources.schemas import DisclosedSchema, With
from services.access import (
    get_visible,
    visible_studies,
)
from services.models import Participant
from services.people import participants as people

blp = Blueprint("participants", __name__, url_prefix="/api/v1", description="Participants")


class ParticipantSmsSchema(ma.Schema):
    sms_enabled = ma.fields.Boolean()
    opted_out_at = UtcDateTime(
        allow_none=True, metadata={"description": "replied STOP (not a withdrawal)"}
    )
    phone_problem = ma.fields.String(
        allow_none=True, metadata={"description": "why Twilio refused the number"}
    )
    phone_problem_at = UtcDateTime(allow_none=True)


class ParticipantSchema(DisclosedSchema):
    """Direct identifiers are dropped for callers who do not care for the participant
    (monitors, admins): they read subject code, site and status (services.people.disclosure)."""

    RESOURCE = "participant"

    id = ma.fields.UUID()
    study_id = ma.fields.UUID()
    site_id = ma.fields.UUID()
    subject_code = ma.fields.String()
    status = ma.fields.String()
    consent_state = ma.fields.String(
        metadata={"description": "none, pending, complete, requires_reconsent or withdrawn"}
    )
    contact_allowed = ma.fields.Boolean()
    baseline_date = ma.fields.Date(allow_none=True)
    locale = ma.fields.String(attribute="user.locale")
    timezone = ma.fields.String(attribute="user.timezone")
    full_name = ma.fields.String(attribute="user.full_name")
    phone = ma.fields.String(attribute="user.phone")
    email = ma.fields.String(attribute="user.email", allow_none=True)
    address = ma.fields.String(allow_none=True)
    date_of_birth = ma.fields.Date(allow_none=True)
    activated = ma.fields.Boolean(attribute="user.activated")
    created_at = UtcDateTime()
    sms = ma.fields.Nested(
        ParticipantSmsSchema,
        metadata={
            "description": "coordinators, on one participant: SMS opt-out and phone problems"
        },
    )


class ParticipantCreateSchema(ma.Schema):
    site_id = ma.fields.UUID(required=True)
    full_name = ma.fields.String(required=True, validate=ma.validate.Length(1, 200))
    phone = ma.fields.String(required=True)
    email = ma.fields.String(load_default=None)
    locale = ma.fields.String(required=True)
    timezone = ma.fields.String(required=True)
    address = ma.fields.String(load_default=None, validate=ma.validate.Length(max=500))
    date_of_birth = ma.fields.Date(load_default=None)


class ParticipantCreatedSchema(ParticipantSchema):
    activation_code = ma.fields.String(
        metadata={"description": "Shown once: the patient sets their password with it"}
    )


class ParticipantUpdateSchema(ma.Schema):
    """Contact data. Patients may change phone, email, address, locale and time zone."""

    full_name = ma.fields.String(validate=ma.validate.Length(1, 200))
    phone = ma.fields.String()
    email = ma.fields.String(allow_none=True)
    address = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=500))
    date_of_birth = ma.fields.Date(allow_none=True)
    locale = ma.fields.String()
    timezone = ma.fields.String()


class ActivationCodeSchema(ma.Schema):
    activation_code = ma.fields.String()


@blp.route("/studies/<uuid:study_id>/participants")
class StudyParticipants(MethodView):
    @protected(blp, 403, 404, 409)
    @blp.arguments(ParticipantCreateSchema)
    @blp.response(201, ParticipantCreatedSchema)
    def post(self, body: dict[str, Any], study_id: uuid.UUID) -> With:
        """Register a participant at one of the coordinator's sites.

        The subject code is generated per study and site. The answer carries a
        one-time activation code (72 hours) for the patient's app.
        """
        actor = current_actor()
        session = db_session()
        get_visible(session, visible_studies(actor), study_id, "study")
        participant, code = people.create_participant(
            session, actor, study_id, people.NewParticipant(**body)
        )
        return With(participant, {"activation_code": code})

    @protected(blp, 403, 404)
    @blp.response(200, ParticipantSchema(many=True))
    @blp.paginate(Page)
    def get(self, study_id: uuid.UUID) -> QueryResults:
        """Participants of the study in the caller's scope (monitors: pseudonymised)."""
        session = db_session()
        return QueryResults(session, people.study_participants(session, current_actor(), study_id))


@blp.route("/participants/<uuid:participant_id>")
class ParticipantItem(MethodView):
    @protected(blp, 404)
    @blp.response(200, ParticipantSchema)
    def get(self, participant_id: uuid.UUID) -> Participant | With:
        """One participant; contact data only for those who care for them, and for the
        coordinator whether SMS reach them."""
        participant, sms = people.participant_with_reach(
            db_session(), current_actor(), participant_id
        )
        return participant if sms is None else With(participant, {"sms": sms})

    @protected(blp, 403, 404, 409)
    @blp.arguments(ParticipantUpdateSchema)
    @blp.response(200, ParticipantSchema)
    def patch(self, body: dict[str, Any], participant_id: uuid.UUID) -> Participant:
        """Change contact data (coordinator; the patient for their own phone, email,
        address, locale and time zone). Audited by field name, never by value."""
        return people.update_participant(db_session(), current_actor(), participant_id, body)


@blp.route("/participants/<uuid:participant_id>/activation-code")
class ParticipantActivationCode(MethodView):
    @protected(blp, 403, 404)
    @blp.response(201, ActivationCodeSchema)
    def post(self, participant_id: uuid.UUID) -> dict[str, str]:
        """Issue a new activation code; the previous one stops working."""
        code = people.reissue_activation_code(db_session(), current_actor(), participant_id)
        return {"activation_code": code}
