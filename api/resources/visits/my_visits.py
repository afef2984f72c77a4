"""Free slots for booking, the nurse's and the patient's visit lists, the nurse's
calendar feed."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import marshmallow as ma
from flask import Response, current_app, url_for
from flask.views import MethodView

from api.auth import current_actor
from api.db import db_session
from api.fields import UtcDateTime
from api.openapi import Blueprint, documents_errors, protected
from api.resources.schemas import DisclosedSchema
from api.resources.visits.visits import nurse_name_of
from services.db import utcnow
from services.models import Visit
from services.visits import booking as visits
from services.visits import calendar_feed, slots

blp = Blueprint(
    "my_visits",
    __name__,
    url_prefix="/api/v1",
    description="Free nurse slots, my visits and the nurse's calendar feed",
)

DEFAULT_SPAN = dt.timedelta(days=7)
MAX_SPAN = dt.timedelta(days=62)
# What each role reads of a visit in /me/visits: the nurse what the visit needs, the
# patient who comes.


def _travel_buffer() -> dt.timedelta:
    return dt.timedelta(minutes=current_app.config["DCT_TRAVEL_BUFFER_MINUTES"])


# --- slots -------------------------------------------------------------------------


class SlotSchema(ma.Schema):
    nurse_id = ma.fields.UUID()
    nurse_name = ma.fields.String()
    start = ma.fields.DateTime(
        format="iso", metadata={"description": "the participant's local time, with its offset"}
    )
    end = ma.fields.DateTime(format="iso")
    start_utc = UtcDateTime()
    end_utc = UtcDateTime()


class SlotSearchSchema(ma.Schema):
    visit_id = ma.fields.UUID(attribute="visit.id")
    timezone = ma.fields.String(
        metadata={"description": "the participant's zone: of the window and of the slots"}
    )
    window_start = ma.fields.Date(attribute="visit.window_start")
    window_end = ma.fields.Date(attribute="visit.window_end")
    duration_minutes = ma.fields.Integer(attribute="visit.duration_minutes")
    slots = ma.fields.List(ma.fields.Nested(SlotSchema))


@blp.route("/visits/<uuid:visit_id>/slots")
class VisitSlots(MethodView):
    @protected(blp, 403, 404, 409)
    @blp.response(200, SlotSearchSchema)
    def get(self, visit_id: uuid.UUID) -> slots.SlotSearch:
        """Free slots of the nurses who may do this visit, from now to the end of its
        window (coordinator of the site).

        Eligible nurses serve the site and are delegated for the study with valid
        training. Slots start every 30 minutes of the nurse's working hours (in the
        nurse's zone), last the visit's duration, avoid time off and the nurse's other
        visits (with the travel buffer around home visits) and the participant's: each
        one can be booked with POST /visits/{id}/schedule. Times are in the
        participant's zone (`start`, `end`) and in UTC (`start_utc`, `end_utc`),
        ordered by the participant's date, then nurse, then time. 409 for a visit that
        cannot be booked (done, cancelled, no current consent).
        """
        return slots.free_slots(db_session(), current_actor(), visit_id, _travel_buffer())


# --- /me/visits --------------------------------------------------------------------


class MyVisitsQuerySchema(ma.Schema):
    start = UtcDateTime(data_key="from", load_default=None, metadata={"description": "now"})
    end = UtcDateTime(
        data_key="to", load_default=None, metadata={"description": "7 days after from; max 62"}
    )

    @ma.post_load
    def _range(self, data: dict[str, Any], **_kwargs: Any) -> dict[str, dt.datetime]:
        start = data["start"] or utcnow()
        end = data["end"] or start + DEFAULT_SPAN
        if end <= start:
            raise ma.ValidationError("must be after from", "to")
        if end - start > MAX_SPAN:
            raise ma.ValidationError(f"at most {MAX_SPAN.days} days after from", "to")
        return {"start": start, "end": end}


class MyVisitSchema(DisclosedSchema):
    """A nurse reads what the visit needs (no name, date of birth or notes); a patient
    reads when and who comes (the nurse's name only)."""

    RESOURCE = "my_visit"

    id = ma.fields.UUID()
    code = ma.fields.String()
    name = ma.fields.String()
    location = ma.fields.String(metadata={"description": "home or site"})
    status = ma.fields.String()
    start_at = UtcDateTime()
    end_at = UtcDateTime()
    participant_id = ma.fields.UUID(metadata={"description": "nurse only"})
    subject_code = ma.fields.String(
        attribute="participant.subject_code", metadata={"description": "nurse only"}
    )
    address = ma.fields.String(
        attribute="participant.address", allow_none=True, metadata={"description": "nurse only"}
    )
    phone = ma.fields.String(
        attribute="participant.user.phone", allow_none=True, metadata={"description": "nurse only"}
    )
    procedures = ma.fields.List(ma.fields.String(), metadata={"description": "nurse only"})
    nurse_name = ma.fields.Function(
        nurse_name_of, allow_none=True, metadata={"description": "patient only"}
    )


@blp.route("/me/visits")
class MyVisits(MethodView):
    @protected(blp, 403)
    @blp.arguments(MyVisitsQuerySchema, location="query", as_kwargs=True)
    @blp.response(200, MyVisitSchema(many=True))
    def get(self, start: dt.datetime, end: dt.datetime) -> list[Visit]:
        """A nurse's visits (their day: subject code, address, phone, procedures) or a
        patient's own upcoming visits (with the nurse's name), booked, under way or done,
        starting between `from` (default now) and `to` (default 7 days later, at most
        62), ordered by start. Times need an offset: naive ones answer 422."""
        return visits.my_visits(db_session(), current_actor(), start, end)


# --- the calendar feed -------------------------------------------------------------


class CalendarTokenSchema(ma.Schema):
    token = ma.fields.String(metadata={"description": "shown once; a secret"})
    url = ma.fields.String(metadata={"description": "the feed to subscribe to; a secret"})


class CalendarFeedQuerySchema(ma.Schema):
    token = ma.fields.String(required=True, validate=ma.validate.Length(1, 200))


@blp.route("/me/calendar-token")
class CalendarToken(MethodView):
    @protected(blp, 403)
    @blp.response(201, CalendarTokenSchema)
    def post(self) -> dict[str, str]:
        """Create the nurse's calendar feed token, or rotate it: the previous URL stops
        working at once.

        The URL holds the token, so it is a secret: whoever has it reads the feed. The
        feed therefore carries no health data or personal data: times, subject code
        and visit code only. Only a hash of the token is stored.
        """
        token = calendar_feed.issue_token(db_session(), current_actor())
        return {"token": token, "url": url_for(".calendar_feed", token=token, _external=True)}

    @protected(blp, 403)
    @blp.response(204)
    def delete(self) -> None:
        """Revoke the nurse's calendar feed token (the feed then answers 404)."""
        calendar_feed.revoke_token(db_session(), current_actor())


@blp.route("/me/visits.ics", endpoint="calendar_feed")
class CalendarFeed(MethodView):
    @documents_errors(blp, 404, 422)
    @blp.arguments(CalendarFeedQuerySchema, location="query", as_kwargs=True)
    @blp.response(200, {"type": "string"}, content_type="text/calendar")
    def get(self, token: str) -> Response:
        """The nurse's calendar (iCalendar), for a phone calendar to subscribe to: their
        booked visits from 7 days ago to 60 days ahead, times in UTC, each titled with
        the subject code and visit code only.

        No bearer token: the `token` from POST /me/calendar-token is the credential.
        An unknown, rotated or revoked token answers 404.
        """
        session = db_session()
        nurse = calendar_feed.nurse_for_token(session, token)
        response = Response(calendar_feed.feed(session, nurse), mimetype="text/calendar")
        response.headers.set("Content-Disposition", "inline", filename="visits.ics")
        return response
