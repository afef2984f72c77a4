"""Nurses' availability (working hours, time off) and their delegation per study."""

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
from services.models import Delegation
from services.visits import nurses

blp = Blueprint(
    "nurses",
    __name__,
    url_prefix="/api/v1/nurses",
    description="Nurses' working hours, time off and delegation",
)

_HHMM = r"^([01]\d|2[0-3]):[0-5]\d$"


class NurseWeeklyHoursSchema(ma.Schema):
    weekday = ma.fields.Integer(
        required=True,
        strict=True,
        validate=ma.validate.Range(0, 6),
        metadata={"description": "0 = Monday ... 6 = Sunday"},
    )
    start = ma.fields.String(
        required=True, validate=ma.validate.Regexp(_HHMM, error="HH:MM, 00:00 to 23:59")
    )
    end = ma.fields.String(
        required=True, validate=ma.validate.Regexp(_HHMM, error="HH:MM, 00:00 to 23:59")
    )

    @ma.validates_schema
    def _ordered(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data["end"] <= data["start"]:
            raise ma.ValidationError("must be after start", field_name="end")


class NurseTimeOffSchema(ma.Schema):
    start = UtcDateTime(required=True)
    end = UtcDateTime(required=True)

    @ma.validates_schema
    def _ordered(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data["end"] <= data["start"]:
            raise ma.ValidationError("must be after start", field_name="end")


class NurseAvailabilitySchema(ma.Schema):
    """Working hours are wall-clock times in `timezone` (the nurse's zone)."""

    timezone = ma.fields.String(required=True, metadata={"example": "Europe/Brussels"})
    weekly_hours = ma.fields.List(ma.fields.Nested(NurseWeeklyHoursSchema), required=True)
    time_off = ma.fields.List(ma.fields.Nested(NurseTimeOffSchema), load_default=list)


class NurseDelegationSchema(ma.Schema):
    id = ma.fields.UUID(dump_only=True)
    nurse_id = ma.fields.UUID(dump_only=True)
    study_id = ma.fields.UUID(required=True)
    training_valid_until = ma.fields.Date(
        required=True,
        metadata={"description": "the last day the nurse may do this study's visits"},
    )
    delegated_by = ma.fields.UUID(dump_only=True)
    created_at = UtcDateTime(dump_only=True)


def _answer(availability: nurses.Availability) -> dict[str, Any]:
    return {
        "timezone": availability.timezone,
        "weekly_hours": availability.weekly_hours,
        "time_off": [{"start": start, "end": end} for start, end in availability.time_off],
    }


@blp.route("/<uuid:nurse_id>/availability")
class NurseAvailability(MethodView):
    @protected(blp, 403, 404)
    @blp.arguments(NurseAvailabilitySchema)
    @blp.response(200, NurseAvailabilitySchema)
    def put(self, body: dict[str, Any], nurse_id: uuid.UUID) -> dict[str, Any]:
        """Replace the nurse's time zone, weekly hours and time off (the nurse, or a
        coordinator of one of the nurse's sites). Time off needs offsets."""
        availability = nurses.Availability(
            body["timezone"],
            body["weekly_hours"],
            [(entry["start"], entry["end"]) for entry in body["time_off"]],
        )
        return _answer(
            nurses.set_availability(db_session(), current_actor(), nurse_id, availability)
        )

    @protected(blp, 403, 404)
    @blp.response(200, NurseAvailabilitySchema)
    def get(self, nurse_id: uuid.UUID) -> dict[str, Any]:
        """The nurse's availability (the nurse, coordinators of their sites, admins)."""
        return _answer(nurses.get_availability(db_session(), current_actor(), nurse_id))


@blp.route("/<uuid:nurse_id>/delegations")
class NurseDelegations(MethodView):
    @protected(blp, 403, 404)
    @blp.arguments(NurseDelegationSchema)
    @blp.response(200, NurseDelegationSchema)
    def put(self, body: dict[str, Any], nurse_id: uuid.UUID) -> Delegation:
        """Delegate one study's home visits to the nurse, or change the training date
        (a coordinator of the nurse's site who works on that study). One object per
        study; other studies' delegations are left as they are. A past date ends
        the delegation in effect."""
        return nurses.set_delegation(
            db_session(),
            current_actor(),
            nurse_id,
            body["study_id"],
            body["training_valid_until"],
        )

    @protected(blp, 403, 404)
    @blp.response(200, NurseDelegationSchema(many=True))
    @blp.paginate(Page)
    def get(self, nurse_id: uuid.UUID) -> list[Delegation]:
        """The nurse's delegations (coordinators of their sites, the nurse, admins)."""
        return nurses.delegations_of(db_session(), current_actor(), nurse_id)
