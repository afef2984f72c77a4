"""The schedule of assessments of a study, and a participant's planned visits."""

from __future__ import annotations

import uuid
from typing import Any

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Page
from sqlalchemy import select

from api.auth import current_actor
from api.db import db_session
from api.fields import UtcDateTime
from api.openapi import Blueprint, protected
from api.resources.schemas import EntitySchema, With
from services import schedule, visits
from services.access import require_role
from services.actor import Role
from services.models import User, Visit, VisitDefinition

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
        required=True, strict=True, metadata={"description": "days from baseline (day 0)"}
    )
    window_before = ma.fields.Integer(
        required=True, strict=True, validate=ma.validate.Range(min=0), metadata={"unit": "days"}
    )
    window_after = ma.fields.Integer(
        required=True, strict=True, validate=ma.validate.Range(min=0), metadata={"unit": "days"}
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


# What a monitor reads of a visit: which visit, when, and its status.
MONITOR_FIELDS = (
    "id",
    "participant_id",
    "study_id",
    "site_id",
    "code",
    "name",
    "location",
    "target_date",
    "window_start",
    "window_end",
    "start_at",
    "end_at",
    "status",
)
# The nurse's working record of the visit stays with the study team.
HIDDEN_FROM_PATIENT = ("nurse_id", "notes", "check_in_location", "deviation_reason")


class ParticipantVisitSchema(EntitySchema):
    """A planned or booked visit. Monitors read dates and status only; patients see
    their nurse by name (`nurse_name`), staff by id."""

    id = ma.fields.UUID()
    participant_id = ma.fields.UUID()
    study_id = ma.fields.UUID()
    site_id = ma.fields.UUID()
    code = ma.fields.String()
    name = ma.fields.String()
    location = ma.fields.String(metadata={"description": "home or site"})
    procedures = ma.fields.List(ma.fields.String())
    duration_minutes = ma.fields.Integer()
    target_date = ma.fields.Date(metadata={"description": "in the participant's time zone"})
    window_start = ma.fields.Date()
    window_end = ma.fields.Date()
    status = ma.fields.String()
    nurse_id = ma.fields.UUID(allow_none=True)
    nurse_name = ma.fields.String(allow_none=True, metadata={"description": "patients only"})
    start_at = UtcDateTime(allow_none=True)
    end_at = UtcDateTime(allow_none=True)
    deviation_reason = ma.fields.String(allow_none=True)
    confirmed_at = UtcDateTime(allow_none=True)
    checked_in_at = UtcDateTime(allow_none=True)
    check_in_location = ma.fields.String(allow_none=True)
    checked_out_at = UtcDateTime(allow_none=True)
    completed_procedures = ma.fields.List(ma.fields.String(), allow_none=True)
    notes = ma.fields.String(allow_none=True)
    cancel_reason = ma.fields.String(allow_none=True)
    address = ma.fields.String(attribute="participant.address", allow_none=True)
    phone = ma.fields.String(attribute="participant.user.phone", allow_none=True)

    @ma.post_dump
    def _for_role(self, data: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
        role = current_actor().role
        if role == Role.MONITOR:
            return {name: data[name] for name in MONITOR_FIELDS if name in data}
        if role == Role.PATIENT:
            for name in HIDDEN_FROM_PATIENT:
                data.pop(name, None)
        else:
            data.pop("nurse_name", None)
        return data


def _with_nurse_names(found: list[Visit]) -> list[With]:
    ids = {visit.nurse_id for visit in found if visit.nurse_id}
    names = (
        dict(db_session().execute(select(User.id, User.full_name).where(User.id.in_(ids))).all())
        if ids
        else {}
    )
    return [With(visit, {"nurse_name": names.get(visit.nurse_id)}) for visit in found]


@blp.route("/participants/<uuid:participant_id>/visits")
class ParticipantVisits(MethodView):
    @protected(blp, 403, 404)
    @blp.response(200, ParticipantVisitSchema(many=True))
    @blp.paginate(Page)
    def get(self, participant_id: uuid.UUID) -> list[With]:
        """The participant's visits by target date, with windows (coordinators of the
        site, the patient, the nurse for the visits assigned to them; monitors: dates
        and status only)."""
        actor = current_actor()
        require_role(actor, Role.COORDINATOR, Role.PATIENT, Role.NURSE, Role.MONITOR)
        found = visits.participant_visits(db_session(), actor, participant_id)
        if actor.role == Role.PATIENT:
            return _with_nurse_names(found)
        return [With(visit) for visit in found]
