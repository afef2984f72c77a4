"""ePRO responses: offline-safe submission, corrections, FHIR export."""

from __future__ import annotations

from api.openapi import Blueprint

blp = Blueprint("epro_responses", __name__, url_prefix="/api/v1", description="ePRO")
