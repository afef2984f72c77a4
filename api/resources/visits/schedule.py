"""The schedule of assessments of a study, and a participant's planned visits."""

from __future__ import annotations

import uuid
from typing import Any

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Page

from api.auth import current_actor
from api.db import db_session
from api.fields import UtcDateTime
from api.openapi import Blueprint, protected
from api.resources.visits.visits import VisitSchema
from services.models import Visit, VisitDefinition
from services.visits import booking as visits
from services.visits import definitions as schedule

blp = Blueprint(
    "schedule",
    __name__,
    url_prefix="/api/v1",
    description="The schedule of assessments and participants' planned visits",
)


class ScheduleDefinitionSchema(ma.Schema):
    id = ma.fields.UUID(dump_only=True)
    code = ma.fields.String(required=True, validate=ma.validate.Length(1, 32))
    name = ma.fields.String(required=True, validate=ma.validate.Length(1, 200))
    day = ma.fields.Integer(
        required=True,
        strict=True,
        validate=ma.validate.Range(schedule.MIN_DAY, schedule.MAX_DAY),
        metadata={"description": "days from baseline (day 0)"},
    )
    window_before = ma.fields.Integer(
        required=True,
        strict=True,
        validate=ma.validate.Range(0, schedule.MAX_WINDOW),
        metadata={"unit": "days"},
    )
    window_after = ma.fields.Integer(
        required=True,
        strict=True,
        validate=ma.validate.Range(0, schedule.MAX_WINDOW),
        metadata={"unit": "days"},
    )
    duration_minutes = ma.fields.Integer(
        required=True,
        strict=True,
        validate=ma.validate.Range(schedule.MIN_DURATION, schedule.MAX_DURATION),
    )
    location = ma.fields.String(required=True, validate=ma.validate.OneOf(schedule.LOCATIONS))
    procedures = ma.fields.List(
        ma.fields.String(validate=ma.validate.Length(1, 200)), required=True
    )
    created_at = UtcDateTime(dump_only=True)


@blp.route("/studies/<uuid:study_id>/visit-definitions")
class VisitDefinitions(MethodView):
    @protected(blp, 403, 404, 409)
    @blp.arguments(ScheduleDefinitionSchema(many=True))
    @blp.response(200, ScheduleDefinitionSchema(many=True))
    def put(self, body: list[dict[str, Any]], study_id: uuid.UUID) -> list[VisitDefinition]:
        """Replace the study's schedule (a coordinator of the study, or an admin).

        Matched by code: new codes are added, listed ones updated, absent ones
        removed. A definition from which visits were already planned keeps its day
        and window and cannot be removed (409 naming it); its name, duration,
        location and procedures may change (planned visits keep theirs).
        """
        definitions = [schedule.Definition(**entry) for entry in body]
        return schedule.put_definitions(db_session(), current_actor(), study_id, definitions)

    @protected(blp, 403, 404)
    @blp.response(200, ScheduleDefinitionSchema(many=True))
    @blp.paginate(Page)
    def get(self, study_id: uuid.UUID) -> list[VisitDefinition]:
        """The study's schedule by day (staff of the study)."""
        return schedule.get_definitions(db_session(), current_actor(), study_id)


@blp.route("/participants/<uuid:participant_id>/visits")
class ParticipantVisits(MethodView):
    @protected(blp, 403, 404)
    @blp.response(200, VisitSchema(many=True))
    @blp.paginate(Page)
    def get(self, participant_id: uuid.UUID) -> list[Visit]:
        """The participant's visits by target date, with windows (coordinators of the
        site, the patient, the nurse for the visits assigned to them; monitors: dates
        and status only)."""
        return visits.participant_visits(db_session(), current_actor(), participant_id)
