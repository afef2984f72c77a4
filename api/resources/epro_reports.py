"""ePRO compliance reports."""

from __future__ import annotations

from api.openapi import Blueprint

blp = Blueprint("epro_reports", __name__, url_prefix="/api/v1", description="ePRO")
