"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from sqlalchemy import text

from api.db import db_session
from api.openapi import Blueprint, documents_errors
from services.errors import Unavailable

blp = Blueprint("health", __name__, url_prefix="/", description="Liveness and readiness")


class StatusSchema(ma.Schema):
    status = ma.fields.String(metadata={"description": "ok (liveness) or ready (readiness)"})


@blp.route("/healthz")
class Health(MethodView):
    @blp.response(200, StatusSchema)
    def get(self) -> dict[str, str]:
        """The process answers."""
        return {"status": "ok"}


@blp.route("/readyz")
class Ready(MethodView):
    @blp.response(200, StatusSchema)
    @documents_errors(blp, 503)
    def get(self) -> dict[str, str]:
        """The database answers."""
        try:
            db_session().execute(text("SELECT 1"))
        except Exception as exc:
            raise Unavailable("the database does not answer") from exc
        return {"status": "ready"}
