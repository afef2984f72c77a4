"""Consent documents: drafts, approval, versions."""

from __future__ import annotations

from api.openapi import Blueprint

blp = Blueprint(
    "consent_documents",
    __name__,
    url_prefix="/api/v1",
    description="Consent documents: drafts, approval, versions",
)
