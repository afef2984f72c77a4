"""Twilio's calls to us: delivery status callbacks and inbound SMS (STOP, START, HELP).

No bearer token: Twilio signs each request (`X-Twilio-Signature`, HMAC of the URL
and the form with our auth token), and that is checked before anything is read. The
URL is rebuilt from PUBLIC_BASE_URL, the address Twilio was given, never from the
Host header: behind a proxy the app sees another host, and a forged Host must not
make a signature for someone else's URL pass.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from typing import Any

import marshmallow as ma
from flask import Response, current_app, g, request
from flask.views import MethodView
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from api.db import db_session
from api.openapi import Blueprint, documents_errors
from services.errors import Forbidden
from services.notifications import inbound as sms_inbound

blp = Blueprint("twilio_webhooks", __name__, url_prefix="/api/v1", description="Twilio webhooks")

FORM = "application/x-www-form-urlencoded"
SIGNATURE_HEADER = "X-Twilio-Signature"
# On the path, so that the operations' own parameters (the query) are documented too.
SIGNATURE_PARAMETER = {
    "in": "header",
    "name": SIGNATURE_HEADER,
    "required": True,
    "schema": {"type": "string"},
    "description": "Twilio's signature of PUBLIC_BASE_URL + path + query and the form, "
    "with the account's auth token (403 otherwise)",
}


# Twilio's ids are 34 characters ("SM" + 32 hex); the column takes 64.
SID = ma.validate.Length(min=1, max=64)


class TwilioStatusQuerySchema(ma.Schema):
    message_id = ma.fields.UUID(
        load_default=None,
        metadata={"description": "the outbox row, as put in the status callback URL"},
    )


class TwilioStatusFormSchema(ma.Schema):
    """The fields used from Twilio's status callback; Twilio sends more, ignored."""

    class Meta:
        unknown = ma.EXCLUDE

    message_sid = ma.fields.String(data_key="MessageSid", required=True, validate=SID)
    message_status = ma.fields.String(data_key="MessageStatus", required=True)
    error_code = ma.fields.Integer(
        data_key="ErrorCode", load_default=None, validate=ma.validate.Range(0, 2**31 - 1)
    )


class TwilioInboundFormSchema(ma.Schema):
    """The fields used from an inbound SMS; Twilio sends more, ignored."""

    class Meta:
        unknown = ma.EXCLUDE

    from_number = ma.fields.String(data_key="From", required=True)
    body = ma.fields.String(data_key="Body", load_default="")
    message_sid = ma.fields.String(
        data_key="MessageSid",
        required=True,
        validate=SID,
        metadata={"description": "Twilio's id of the message: the same one is handled once"},
    )


def _valid(url: str, signature: str) -> bool:
    token = current_app.config["TWILIO_AUTH_TOKEN"]
    # Without a token anyone could sign: Twilio is not configured, so nothing passes.
    if not (token and signature):
        return False
    return RequestValidator(token).validate(url, request.form, signature)


def signed_by_twilio(view: Callable[..., Any]) -> Callable[..., Any]:
    """Check Twilio's signature before the arguments are parsed (an unsigned caller
    learns nothing about them); 403 otherwise. Put it on top of a view's decorators."""
    view = documents_errors(blp, 403)(view)
    view = blp.doc(security=[])(view)

    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        signature = request.headers.get(SIGNATURE_HEADER, "")
        url = current_app.config["PUBLIC_BASE_URL"].rstrip("/") + request.path
        if request.query_string:
            url += "?" + request.query_string.decode()
        if not _valid(url, signature):
            raise Forbidden("the request is not signed by Twilio for this URL")
        return view(*args, **kwargs)

    return checked


@blp.route("/webhooks/twilio/status", parameters=[SIGNATURE_PARAMETER])
class TwilioStatusCallback(MethodView):
    accepted_media_types = frozenset({FORM})

    @signed_by_twilio
    @blp.arguments(TwilioStatusQuerySchema, location="query", as_kwargs=True)
    @blp.arguments(TwilioStatusFormSchema, location="form")
    @blp.response(204)
    @documents_errors(blp, 415, 422)
    def post(self, form: dict[str, Any], message_id: uuid.UUID | None) -> None:
        """Twilio reports a message's delivery status. Idempotent: each (MessageSid,
        MessageStatus) is applied once, a replay is acknowledged (204) and changes
        nothing, and late arrivals never move the message backwards (a `delivered`
        stays delivered)."""
        sms_inbound.record_status(
            db_session(),
            message_id,
            form["message_sid"],
            form["message_status"],
            form["error_code"],
            request_id=g.get("request_id"),
        )


@blp.route("/webhooks/twilio/inbound", parameters=[SIGNATURE_PARAMETER])
class TwilioInbound(MethodView):
    accepted_media_types = frozenset({FORM})

    @signed_by_twilio
    @blp.arguments(TwilioInboundFormSchema, location="form")
    @blp.response(200, {"type": "string"}, content_type="text/xml")
    @documents_errors(blp, 415, 422)
    def post(self, form: dict[str, Any]) -> Response:
        """An SMS to our number. STOP, STOPALL, UNSUBSCRIBE, END, QUIT, CANCEL, OPTOUT,
        REVOKE (the whole message, any case) opt the number out of SMS, not out of the
        study; START, YES, UNSTOP opt it back in; HELP answers the study's contact.
        Answers TwiML: the reply, or an empty `<Response/>` for anything else. Each
        MessageSid is handled once: a replay (a captured STOP sent again after a START)
        answers an empty `<Response/>` and changes nothing."""
        reply = sms_inbound.handle_inbound(
            db_session(),
            form["from_number"],
            form["body"],
            message_sid=form["message_sid"],
            request_id=g.get("request_id"),
        )
        twiml = MessagingResponse()
        if reply is not None:
            twiml.message(reply)
        return Response(str(twiml), mimetype="text/xml")
