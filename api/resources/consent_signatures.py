"""Consent discussions, signatures, consent records and enrolment."""

from __future__ import annotations

from api.openapi import Blueprint

blp = Blueprint(
    "consent_signatures",
    __name__,
    url_prefix="/api/v1",
    description="Consent discussions, signatures, consent records and enrolment",
)
