"""Withdrawal, the signed PDF copy and consent status views."""

from __future__ import annotations

import uuid
from typing import Any

import marshmallow as ma
from flask import Response, request
from flask.views import MethodView
from flask_smorest import Page

from api.auth import auth_policy, current_actor
from api.db import db_session
from api.fields import UtcDateTime
from api.openapi import Blueprint, QueryResults, protected
from api.resources.consent.schemas import ConsentRecordSchema
from consent import pdf, status, withdrawal
from consent.models import Consent, ConsentStatus
from services.models import ConsentState, ParticipantStatus

blp = Blueprint(
    "consents",
    __name__,
    url_prefix="/api/v1",
    description="Withdrawal, the signed PDF copy and consent status views",
)

_SCOPE = r"^(all|contact|clause:[A-Za-z0-9_.-]{1,64})$"


class WithdrawalSchema(ma.Schema):
    scope = ma.fields.String(
        required=True,
        validate=ma.validate.Regexp(_SCOPE, error="use all, contact or clause:<code>"),
        metadata={
            "description": "all: withdraw from the study; contact: no more contact; "
            "clause:<code>: only that optional clause"
        },
    )
    reason = ma.fields.String(
        load_default=None,
        validate=ma.validate.Length(max=1000),
        metadata={"description": "required from a coordinator: how the participant expressed it"},
    )
    password = ma.fields.String(
        load_default=None,
        load_only=True,
        validate=ma.validate.Length(max=1000),
        metadata={"description": "required from the patient: their password, re-entered"},
    )


@blp.route("/consents/<uuid:consent_id>/withdraw")
class ConsentWithdrawal(MethodView):
    @protected(blp, 403, 404, 409, 429)
    @blp.arguments(WithdrawalSchema)
    @blp.response(200, ConsentRecordSchema)
    def post(self, body: dict[str, Any], consent_id: uuid.UUID) -> Consent:
        """Withdraw consent, wholly or in part (the patient with their password; a
        coordinator of the site records it with a reason).

        `all` withdraws the participant from the study; `contact` stops contact;
        `clause:<code>` withdraws one optional clause. Nothing collected before is
        deleted or changed. A wrong password answers 401 and only the failed attempt
        is kept in the audit; like failed log-ins, repeated ones lock the account from
        that address (429).
        """
        return withdrawal.withdraw(
            db_session(),
            current_actor(),
            consent_id,
            withdrawal.Withdrawal(**body),
            auth_policy(),
            request.remote_addr,
        )


@blp.route("/consents/<uuid:consent_id>/pdf")
class ConsentPdf(MethodView):
    @protected(blp, 403, 404, 409)
    @blp.response(
        200,
        {"type": "string", "format": "binary"},
        content_type="application/pdf",
        headers={
            "ETag": {"schema": {"type": "string"}, "description": "the PDF's SHA-256, quoted"},
            "X-Content-SHA256": {"schema": {"type": "string"}, "description": "the PDF's SHA-256"},
        },
    )
    def get(self, consent_id: uuid.UUID) -> Response:
        """The signed copy (coordinator of the site, the patient themselves).

        Produced on the first request once the consent is complete (409 before),
        stored with its SHA-256, and answered byte-identical afterwards. Every
        download is audited.
        """
        copy = pdf.signed_copy(db_session(), current_actor(), consent_id)
        response = Response(copy.pdf, mimetype="application/pdf")
        response.headers.set("Content-Disposition", "attachment", filename=copy.filename)
        response.set_etag(copy.sha256)
        response.headers["X-Content-SHA256"] = copy.sha256
        return response


def _values_of(enum: Any) -> ma.validate.OneOf:
    return ma.validate.OneOf([member.value for member in enum])


class StatusQuerySchema(ma.Schema):
    consent_state = ma.fields.List(
        ma.fields.String(validate=_values_of(ConsentState)),
        load_default=list,
        metadata={"description": "the participant's consent state; repeat for several"},
    )
    consent_status = ma.fields.List(
        ma.fields.String(validate=_values_of(ConsentStatus)),
        load_default=list,
        metadata={
            "description": "the current consent's status (pending_countersign: awaiting the "
            "investigator); repeat for several"
        },
    )
    participant_status = ma.fields.List(
        ma.fields.String(validate=_values_of(ParticipantStatus)), load_default=list
    )
    site_id = ma.fields.UUID(load_default=None)


class ConsentStatusRowSchema(ma.Schema):
    participant_id = ma.fields.UUID()
    subject_code = ma.fields.String()
    site_id = ma.fields.UUID()
    participant_status = ma.fields.String()
    consent_state = ma.fields.String()
    contact_allowed = ma.fields.Boolean()
    consent_id = ma.fields.UUID(allow_none=True)
    consent_status = ma.fields.String(allow_none=True)
    document_version = ma.fields.Integer(allow_none=True)
    document_language = ma.fields.String(allow_none=True)
    completed_at = UtcDateTime(allow_none=True)
    withdrawn_at = UtcDateTime(allow_none=True)


class SiteCountsSchema(ma.Schema):
    site_id = ma.fields.UUID()
    site_code = ma.fields.String()
    participants = ma.fields.Integer()
    consent_state = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.Integer(),
        metadata={"description": "participants per consent state"},
    )
    pending_countersign = ma.fields.Integer(
        metadata={"description": "participants whose current consent awaits countersignature"}
    )


class TotalCountsSchema(SiteCountsSchema):
    class Meta:
        exclude = ("site_id", "site_code")


class ConsentSummarySchema(ma.Schema):
    study_id = ma.fields.UUID()
    sites = ma.fields.List(ma.fields.Nested(SiteCountsSchema))
    total = ma.fields.Nested(TotalCountsSchema)


class RowResults(QueryResults):
    """Rows of several columns rather than entities."""

    def __getitem__(self, window: slice) -> list[Any]:
        start = window.start or 0
        limited = self.query.offset(start).limit((window.stop or start) - start)
        return list(self.session.execute(limited))


@blp.route("/studies/<uuid:study_id>/consent-status")
class StudyConsentStatus(MethodView):
    @protected(blp, 403, 404)
    @blp.arguments(StatusQuerySchema, location="query")
    @blp.response(200, ConsentStatusRowSchema(many=True))
    @blp.paginate(Page)
    def get(self, filters: dict[str, Any], study_id: uuid.UUID) -> RowResults:
        """Consent status per participant in the caller's scope, by subject code
        (coordinators: their sites; monitors and admins: the study, pseudonymised).

        Filters combine: for example `consent_status=pending_countersign`,
        `consent_state=requires_reconsent`, `consent_state=withdrawn`, `site_id`.
        """
        session = db_session()
        query = status.status_rows(
            session,
            current_actor(),
            study_id,
            status.StatusFilter(
                consent_states=tuple(filters["consent_state"]),
                consent_statuses=tuple(filters["consent_status"]),
                participant_statuses=tuple(filters["participant_status"]),
                site_id=filters["site_id"],
            ),
        )
        return RowResults(session, query)


@blp.route("/studies/<uuid:study_id>/consent-status/summary")
class StudyConsentSummary(MethodView):
    @protected(blp, 403, 404)
    @blp.response(200, ConsentSummarySchema)
    def get(self, study_id: uuid.UUID) -> status.Summary:
        """Participants per site and consent state, and how many await countersignature."""
        return status.summary(db_session(), current_actor(), study_id)
