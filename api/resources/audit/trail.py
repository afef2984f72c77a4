"""Reading the audit trail."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Page

from api.auth import current_actor
from api.db import db_session
from api.fields import UtcDateTime
from api.openapi import Blueprint, QueryResults, protected
from api.resources.schemas import WITHHELD_NOTE, DisclosedSchema, FreeText
from services.audit import chain as audit

blp = Blueprint("audit", __name__, url_prefix="/api/v1/audit", description="Audit trail")


class AuditQuerySchema(ma.Schema):
    entity_type = ma.fields.String()
    entity_id = ma.fields.String()
    actor_id = ma.fields.UUID()
    since = UtcDateTime()
    until = UtcDateTime()


class AuditEventSchema(DisclosedSchema):
    """Monitors and admins read reasons, and the free text inside before and after,
    withheld (services.people.disclosure)."""

    RESOURCE = "audit_event"
    _PAYLOAD = (
        "values under free-text keys (notes, reasons, file names, a correction's answers) "
        f"are free text: {WITHHELD_NOTE}"
    )

    id = ma.fields.UUID()
    occurred_at = UtcDateTime()
    actor_id = ma.fields.UUID(allow_none=True)
    actor_role = ma.fields.String()
    action = ma.fields.String()
    entity_type = ma.fields.String()
    entity_id = ma.fields.String(allow_none=True)
    study_id = ma.fields.UUID(allow_none=True)
    site_id = ma.fields.UUID(allow_none=True)
    participant_id = ma.fields.UUID(allow_none=True)
    before = ma.fields.Dict(allow_none=True, metadata={"description": _PAYLOAD})
    after = ma.fields.Dict(allow_none=True, metadata={"description": _PAYLOAD})
    reason = FreeText("why, as the actor gave it (or the system wrote it)")
    request_id = ma.fields.String(allow_none=True)
    chain = ma.fields.String()
    seq = ma.fields.Integer()
    hash = ma.fields.String()


@blp.route("")
class AuditEvents(MethodView):
    @protected(blp, 403)
    @blp.arguments(AuditQuerySchema, location="query")
    @blp.response(200, AuditEventSchema(many=True))
    @blp.paginate(Page)
    def get(self, filters: dict[str, Any]) -> QueryResults:
        """Events newest first (admin: all; coordinators: their sites; monitors: their studies)."""
        query = audit.trail(current_actor(), audit.TrailFilter(**filters))
        return QueryResults(db_session(), query)
