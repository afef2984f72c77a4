"""ePRO questionnaires: versioned definitions and their schedules."""

from __future__ import annotations

from api.openapi import Blueprint

blp = Blueprint("questionnaires", __name__, url_prefix="/api/v1", description="ePRO")
