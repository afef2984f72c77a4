"""ePRO: what a participant must answer now and next."""

from __future__ import annotations

from api.openapi import Blueprint

blp = Blueprint("epro_due", __name__, url_prefix="/api/v1", description="ePRO")
