"""One visit: booking a nurse and the visit's life cycle."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import marshmallow as ma
from flask import current_app
from flask.views import MethodView

from api.auth import current_actor
from api.db import db_session
from api.fields import UtcDateTime
from api.openapi import Blueprint, protected
from api.resources.schemas import DisclosedSchema, FreeText
from services.access import get_visible
from services.models import Visit, VisitStatus
from services.visits import booking as visits

blp = Blueprint(
    "visits", __name__, url_prefix="/api/v1/visits", description="Booking and visit life cycle"
)


def nurse_name_of(visit: Visit) -> str | None:
    """The booked nurse's name (null before booking), for patients' views."""
    return visit.nurse.full_name if visit.nurse else None


class VisitSchema(DisclosedSchema):
    """Monitors and admins read no contact data, and the nurse's notes and the reasons
    withheld; the patient does not read the nurse's working record
    (services.people.disclosure)."""

    RESOURCE = "visit"

    id = ma.fields.UUID()
    participant_id = ma.fields.UUID()
    subject_code = ma.fields.String(attribute="participant.subject_code")
    study_id = ma.fields.UUID()
    site_id = ma.fields.UUID()
    code = ma.fields.String()
    name = ma.fields.String()
    location = ma.fields.String(metadata={"description": "home or site"})
    procedures = ma.fields.List(ma.fields.String())
    duration_minutes = ma.fields.Integer()
    timezone = ma.fields.String(
        attribute="participant.user.timezone",
        metadata={"description": "the participant's zone, in which the window days are counted"},
    )
    target_date = ma.fields.Date()
    window_start = ma.fields.Date()
    window_end = ma.fields.Date()
    status = ma.fields.String(
        metadata={
            "description": "planned, scheduled, confirmed, in_progress, completed, missed "
            "or cancelled"
        }
    )
    nurse_id = ma.fields.UUID(allow_none=True)
    nurse_name = ma.fields.Function(nurse_name_of, allow_none=True)
    start_at = UtcDateTime(allow_none=True)
    end_at = UtcDateTime(allow_none=True)
    deviation_reason = FreeText("why it was booked or checked in outside its time")
    confirmed_at = UtcDateTime(allow_none=True)
    checked_in_at = UtcDateTime(allow_none=True)
    check_in_location = FreeText("where the nurse checked in, as they wrote it")
    checked_out_at = UtcDateTime(allow_none=True)
    completed_procedures = ma.fields.List(ma.fields.String(), allow_none=True)
    notes = FreeText("the nurse's notes at check-out")
    cancel_reason = FreeText("why it was cancelled or missed")
    address = ma.fields.String(attribute="participant.address", allow_none=True)
    phone = ma.fields.String(attribute="participant.user.phone", allow_none=True)


class VisitScheduleSchema(ma.Schema):
    nurse_id = ma.fields.UUID(required=True)
    start = UtcDateTime(required=True)
    end = UtcDateTime(required=True)
    override_reason = ma.fields.String(
        load_default=None,
        validate=ma.validate.Length(1, 1000),
        metadata={"description": "books outside the window, recorded as a protocol deviation"},
    )

    @ma.validates_schema
    def _ordered(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data["end"] <= data["start"]:
            raise ma.ValidationError("the visit must end after it starts", "end")


class VisitCheckInSchema(ma.Schema):
    at = UtcDateTime(
        load_default=None, metadata={"description": "when it happened (not ahead); default: now"}
    )
    location = ma.fields.String(load_default=None, validate=ma.validate.Length(max=500))
    override_reason = ma.fields.String(
        load_default=None,
        validate=ma.validate.Length(1, 1000),
        metadata={
            "description": "checks in outside its time (from DCT_CHECK_IN_MARGIN_MINUTES "
            "before the booked start to the window's end), recorded as a protocol deviation"
        },
    )

    @ma.validates("override_reason")
    def _given(self, value: str | None, **_kwargs: Any) -> None:
        """A blank reason would record a deviation nobody can explain."""
        if value is not None and not value.strip():
            raise ma.ValidationError("give a reason, or leave override_reason out")


class VisitCheckOutSchema(ma.Schema):
    at = UtcDateTime(load_default=None, metadata={"description": "default: now"})
    completed_procedures = ma.fields.List(
        ma.fields.String(validate=ma.validate.Length(1, 200)), required=True
    )
    notes = ma.fields.String(load_default=None, validate=ma.validate.Length(max=10000))


class VisitReasonSchema(ma.Schema):
    reason = ma.fields.String(required=True, validate=ma.validate.Length(max=1000))

    @ma.validates("reason")
    def _given(self, value: str, **_kwargs: Any) -> None:
        if not value.strip():
            raise ma.ValidationError("give a reason")


@blp.route("/<uuid:visit_id>")
class VisitItem(MethodView):
    @protected(blp, 404)
    @blp.response(200, VisitSchema)
    def get(self, visit_id: uuid.UUID) -> Visit:
        """One visit in the caller's scope: the assigned nurse, coordinators of the
        site, the patient themselves; monitors and admins without contact data."""
        return get_visible(db_session(), visits.visible_visits(current_actor()), visit_id, "visit")


@blp.route("/<uuid:visit_id>/schedule")
class VisitSchedule(MethodView):
    @protected(blp, 403, 404, 409)
    @blp.arguments(VisitScheduleSchema)
    @blp.response(200, VisitSchema)
    def post(self, body: dict[str, Any], visit_id: uuid.UUID) -> Visit:
        """Book (or re-book) a nurse for the visit (coordinator of the site).

        Refused with 409 and the reason outside the window (unless `override_reason`
        is given: then it is booked and recorded as a protocol deviation), outside the
        nurse's working hours, in their time off, when it overlaps another visit of the
        nurse (with the travel buffer after home visits) or of the participant, when
        the nurse is not delegated, trained or serving the site, or without a current
        consent. A scheduled or confirmed visit booked again is scheduled again.
        """
        buffer = dt.timedelta(minutes=current_app.config["DCT_TRAVEL_BUFFER_MINUTES"])
        return visits.book(db_session(), current_actor(), visit_id, visits.Booking(**body), buffer)


@blp.route("/<uuid:visit_id>/confirm")
class VisitConfirm(MethodView):
    @protected(blp, 403, 404, 409)
    @blp.response(200, VisitSchema)
    def post(self, visit_id: uuid.UUID) -> Visit:
        """The patient confirms their scheduled visit."""
        return visits.transition(db_session(), current_actor(), visit_id, VisitStatus.CONFIRMED)


@blp.route("/<uuid:visit_id>/check-in")
class VisitCheckIn(MethodView):
    @protected(blp, 403, 404, 409)
    @blp.arguments(VisitCheckInSchema)
    @blp.response(200, VisitSchema)
    def post(self, body: dict[str, Any], visit_id: uuid.UUID) -> Visit:
        """The assigned nurse starts the visit: in_progress.

        Allowed from `DCT_CHECK_IN_MARGIN_MINUTES` (default 60) before the booked start
        to the end of the visit's window in the participant's zone; otherwise 409 with
        when check-in opens or that the window closed, unless `override_reason` is
        given: then it checks in and records a protocol deviation. An `at` ahead of
        the server's clock is 422.
        """
        margin = dt.timedelta(minutes=current_app.config["DCT_CHECK_IN_MARGIN_MINUTES"])
        return visits.transition(
            db_session(),
            current_actor(),
            visit_id,
            VisitStatus.IN_PROGRESS,
            check_in_margin=margin,
            **body,
        )


@blp.route("/<uuid:visit_id>/check-out")
class VisitCheckOut(MethodView):
    @protected(blp, 403, 404, 409)
    @blp.arguments(VisitCheckOutSchema)
    @blp.response(200, VisitSchema)
    def post(self, body: dict[str, Any], visit_id: uuid.UUID) -> Visit:
        """The assigned nurse completes the visit with the procedures done (each one of
        the visit's, 422 otherwise) and notes."""
        return visits.transition(
            db_session(), current_actor(), visit_id, VisitStatus.COMPLETED, **body
        )


@blp.route("/<uuid:visit_id>/missed")
class VisitMissed(MethodView):
    @protected(blp, 403, 404, 409)
    @blp.arguments(VisitReasonSchema)
    @blp.response(200, VisitSchema)
    def post(self, body: dict[str, Any], visit_id: uuid.UUID) -> Visit:
        """A coordinator records that the visit did not take place."""
        return visits.transition(
            db_session(), current_actor(), visit_id, VisitStatus.MISSED, **body
        )


@blp.route("/<uuid:visit_id>/cancel")
class VisitCancel(MethodView):
    @protected(blp, 403, 404, 409)
    @blp.arguments(VisitReasonSchema)
    @blp.response(200, VisitSchema)
    def post(self, body: dict[str, Any], visit_id: uuid.UUID) -> Visit:
        """A coordinator cancels a visit that has not started."""
        return visits.transition(
            db_session(), current_actor(), visit_id, VisitStatus.CANCELLED, **body
        )
