"""A recipient's SMS preferences and a study's SMS settings."""

from __future__ import annotations

import uuid
from typing import Any

import marshmallow as ma
from flask.views import MethodView

from api.auth import current_actor
from api.db import db_session
from api.fields import UtcDateTime
from api.openapi import Blueprint, protected
from services.notifications import preferences as sms_preferences
from services.notifications import settings as sms_settings
from services.notifications.content import LOCALES
from services.notifications.sending_hours import ALLOWED_FROM, ALLOWED_UNTIL

blp = Blueprint(
    "notification_settings",
    __name__,
    url_prefix="/api/v1",
    description="SMS preferences and settings",
)

_HHMM = {"description": f'local time "HH:MM", {ALLOWED_FROM} to {ALLOWED_UNTIL}'}


class _JsonBoolean(ma.fields.Boolean):
    """Only true or false: "yes" or 1 switching SMS on would be a surprise."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class SmsPreferencesSchema(ma.Schema):
    sms_enabled = _JsonBoolean(required=True)
    locale = ma.fields.String(required=True, metadata={"enum": list(LOCALES)})
    send_from = ma.fields.String(required=True, metadata={**_HHMM, "example": "09:00"})
    send_until = ma.fields.String(required=True, metadata={**_HHMM, "example": "20:00"})
    opted_out_at = UtcDateTime(
        dump_only=True,
        allow_none=True,
        metadata={"description": "set when STOP was replied; reply START to receive SMS again"},
    )


class StudySmsSettingsSchema(ma.Schema):
    study_id = ma.fields.UUID(dump_only=True)
    sender_name = ma.fields.String(
        required=True,
        metadata={
            "description": "starts every SMS: 1 to 11 letters, digits or spaces, with a "
            "letter, revealing no condition or treatment",
            "example": "Brussels R1",
        },
    )
    help_contact = ma.fields.String(
        required=True,
        metadata={
            "description": "HELP answers with it: a phone (international format) or a "
            "short text, at most 64 characters",
            "example": "+3225551234",
        },
    )
    rules = ma.fields.Dict(
        keys=ma.fields.String(),
        load_default=dict,
        metadata={
            "description": "which reminders are sent; rules left out take their defaults",
            "example": sms_settings.DEFAULT_RULES,
        },
    )
    updated_at = UtcDateTime(
        dump_only=True,
        allow_none=True,
        metadata={"description": "null while the defaults apply"},
    )


@blp.route("/me/notification-preferences")
class MyNotificationPreferences(MethodView):
    @protected(blp, 403)
    @blp.response(200, SmsPreferencesSchema)
    def get(self) -> sms_preferences.Preferences:
        """The caller's SMS preferences (patients and nurses); the defaults until saved."""
        return sms_preferences.my_preferences(db_session(), current_actor())

    @protected(blp, 403)
    @blp.arguments(SmsPreferencesSchema)
    @blp.response(200, SmsPreferencesSchema)
    def put(self, body: dict[str, Any]) -> sms_preferences.Preferences:
        """Replace the caller's SMS preferences (patients and nurses).

        Sending hours may only narrow 08:00-21:00 in the caller's time zone. Switching
        SMS on does not undo a STOP: reply START to the SMS number for that.
        """
        change = sms_preferences.PreferenceChange(**body)
        return sms_preferences.put_my_preferences(db_session(), current_actor(), change)


@blp.route("/studies/<uuid:study_id>/sms-settings")
class StudySmsSettingsView(MethodView):
    @protected(blp, 403, 404)
    @blp.response(200, StudySmsSettingsSchema)
    def get(self, study_id: uuid.UUID) -> sms_preferences.SmsSettings:
        """The study's SMS settings (its coordinators and monitors); defaults until saved."""
        return sms_preferences.get_study_settings(db_session(), current_actor(), study_id)

    @protected(blp, 403, 404)
    @blp.arguments(StudySmsSettingsSchema)
    @blp.response(200, StudySmsSettingsSchema)
    def put(self, body: dict[str, Any], study_id: uuid.UUID) -> sms_preferences.SmsSettings:
        """Replace the study's SMS settings (its coordinators)."""
        change = sms_preferences.SettingsChange(**body)
        return sms_preferences.put_study_settings(db_session(), current_actor(), study_id, change)
