"""Withdrawal, the signed PDF copy and consent status views."""

from __future__ import annotations

from api.openapi import Blueprint

blp = Blueprint(
    "consents",
    __name__,
    url_prefix="/api/v1",
    description="Withdrawal, the signed PDF copy and consent status views",
)
