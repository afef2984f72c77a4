"""ePRO compliance reports, as JSON or as a CSV download."""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from typing import Any

import marshmallow as ma
from flask import Response, current_app, request
from flask.views import MethodView
from werkzeug.exceptions import NotAcceptable

from api.auth import current_actor
from api.db import db_session
from api.fields import UtcDateTime
from api.openapi import Blueprint, protected
from services.db import utcnow
from services.epro import reports as epro_reports

blp = Blueprint("epro_reports", __name__, url_prefix="/api/v1", description="ePRO")

JSON, CSV = "application/json", "text/csv"
CSV_COLUMNS = (
    "site_code",
    "site_id",
    "subject_code",
    "participant_id",
    *epro_reports.COUNT_NAMES,
    "compliance_rate",
)
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_COUNT_DESCRIPTIONS = {
    "expected": "instances answered (completed or declined) or whose window and grace "
    "have ended: completed_on_time + completed_late + declined + missed",
    "completed_on_time": "completed, received before the window closed",
    "completed_late": "completed, received after the window closed, within the grace period",
    "declined": "the participant declined to answer",
    "missed": "not answered and the window and grace have ended",
    "pending": "not answered yet, window open or in its grace period (not in expected)",
}


class EproComplianceQuerySchema(ma.Schema):
    site_id = ma.fields.UUID(load_default=None, metadata={"description": "one site only"})
    questionnaire_code = ma.fields.String(
        load_default=None,
        validate=ma.validate.Regexp(r"^[A-Za-z0-9_.-]{1,32}$"),
        metadata={"description": "one questionnaire (every version of that code) only"},
    )


class EproComplianceCountsSchema(ma.Schema):
    expected = ma.fields.Integer(metadata={"description": _COUNT_DESCRIPTIONS["expected"]})
    completed_on_time = ma.fields.Integer(
        metadata={"description": _COUNT_DESCRIPTIONS["completed_on_time"]}
    )
    completed_late = ma.fields.Integer(
        metadata={"description": _COUNT_DESCRIPTIONS["completed_late"]}
    )
    declined = ma.fields.Integer(metadata={"description": _COUNT_DESCRIPTIONS["declined"]})
    missed = ma.fields.Integer(metadata={"description": _COUNT_DESCRIPTIONS["missed"]})
    pending = ma.fields.Integer(metadata={"description": _COUNT_DESCRIPTIONS["pending"]})
    compliance_rate = ma.fields.Float(
        allow_none=True,
        metadata={
            "description": "(completed_on_time + completed_late) / expected, 4 decimals; "
            "null when nothing is expected yet"
        },
    )


class EproComplianceParticipantSchema(EproComplianceCountsSchema):
    participant_id = ma.fields.UUID()
    subject_code = ma.fields.String()
    site_id = ma.fields.UUID()
    site_code = ma.fields.String()


class EproComplianceSiteSchema(EproComplianceCountsSchema):
    site_id = ma.fields.UUID()
    site_code = ma.fields.String()
    participants = ma.fields.Integer(metadata={"description": "participants listed"})


class EproComplianceTotalSchema(EproComplianceCountsSchema):
    participants = ma.fields.Integer(metadata={"description": "participants listed"})


class EproComplianceReportSchema(ma.Schema):
    study_id = ma.fields.UUID()
    study_code = ma.fields.String()
    generated_at = UtcDateTime(metadata={"description": "the time the counts were taken at"})
    grace_minutes = ma.fields.Integer(metadata={"description": "the grace period applied"})
    site_id = ma.fields.UUID(attribute="filters.site_id", allow_none=True)
    questionnaire_code = ma.fields.String(attribute="filters.questionnaire_code", allow_none=True)
    participants = ma.fields.List(ma.fields.Nested(EproComplianceParticipantSchema))
    sites = ma.fields.List(ma.fields.Nested(EproComplianceSiteSchema))
    total = ma.fields.Nested(EproComplianceTotalSchema)


@blp.route("/studies/<uuid:study_id>/reports/epro-compliance")
class EproComplianceReport(MethodView):
    @protected(blp, 403, 404, 406)
    @blp.arguments(EproComplianceQuerySchema, location="query")
    @blp.response(200, EproComplianceReportSchema)
    @blp.alt_response(
        200,
        schema={"type": "string"},
        content_type=CSV,
        success=True,
        description="JSON by default; with `Accept: text/csv`, one row per participant "
        "after a header row",
        example=",".join(CSV_COLUMNS) + "\r\n",
        headers={
            "Content-Disposition": {
                "schema": {"type": "string"},
                "description": "CSV: attachment; filename=epro-compliance-<study code>-"
                "<UTC date>.csv",
            }
        },
    )
    def get(self, filters: dict[str, Any], study_id: uuid.UUID) -> Any:
        """ePRO compliance per participant, per site and for the study (coordinators:
        their sites; monitors: their studies; admins), by participant id and subject
        code only.

        JSON by default, CSV with `Accept: text/csv` (406 for any other media type).
        Counts are taken now, with the configured grace period: `expected` is every
        instance answered or whose window and grace have ended; `pending` ones can
        still be answered and do not count; cancelled ones count nowhere.
        """
        media = _negotiated()
        grace = dt.timedelta(minutes=current_app.config["DCT_EPRO_GRACE_MINUTES"])
        report = epro_reports.compliance(
            db_session(),
            current_actor(),
            study_id,
            now=utcnow(),
            grace=grace,
            filters=epro_reports.ReportFilter(**filters),
        )
        if media == CSV:
            return csv_download(report)
        return report, 200, {"Vary": "Accept"}


def _negotiated() -> str:
    """JSON when the client states no preference (no Accept header)."""
    accept = request.accept_mimetypes
    media = accept.best_match((JSON, CSV)) if accept else JSON
    if media is None:
        raise NotAcceptable(f"ask for {JSON} or {CSV}")
    return media


def csv_download(report: epro_reports.Report) -> Response:
    response = Response(csv_body(report), mimetype=CSV)  # charset=utf-8 added by Flask
    response.vary.add("Accept")
    day = report.generated_at.astimezone(dt.UTC).date().isoformat()  # the UTC date
    filename = f"epro-compliance-{report.study_code}-{day}.csv"
    response.headers.set("Content-Disposition", "attachment", filename=filename)
    return response


def csv_body(report: epro_reports.Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in report.participants:
        writer.writerow(_cell(getattr(row, column)) for column in CSV_COLUMNS)
    return out.getvalue()


def _cell(value: Any) -> Any:
    """Text a spreadsheet would run as a formula is quoted with a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value
