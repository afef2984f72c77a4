"""Consent records as every eConsent endpoint answers them: one shape everywhere."""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from api.auth import current_actor
from api.fields import UtcDateTime
from api.resources.schemas import EntitySchema
from consent.models import ConsentStatus
from services.access import sees_identity


def credential_note_field() -> ma.fields.String:
    """Part of the manifestation wherever it is shown (21 CFR 11.50, 11.300)."""
    return ma.fields.String(
        allow_none=True,
        metadata={
            "description": "set when the signer's password came from a staff-issued code "
            "shortly before signing (21 CFR 11.300)"
        },
    )


class ConsentRecordSchema(EntitySchema):
    id = ma.fields.UUID()
    participant_id = ma.fields.UUID()
    document_id = ma.fields.UUID()
    document_version = ma.fields.Integer(attribute="document.version")
    document_language = ma.fields.String(attribute="document.language")
    status = ma.fields.String(
        metadata={"description": ", ".join(s.value for s in ConsentStatus)},
    )
    clause_choices = ma.fields.Dict()
    withdrawn_clauses = ma.fields.Dict(
        metadata={"description": "withdrawn optional clauses: code -> when (UTC, ISO 8601)"}
    )
    contact_withdrawn_at = UtcDateTime(allow_none=True)
    completed_at = UtcDateTime(allow_none=True)
    withdrawn_at = UtcDateTime(allow_none=True)
    withdrawal_reason = ma.fields.String(allow_none=True)
    pdf_sha256 = ma.fields.String(
        allow_none=True, metadata={"description": "SHA-256 of the signed copy once produced"}
    )
    created_at = UtcDateTime()


class ListedSignatureSchema(EntitySchema):
    """A signature as listed with its consent; no image (it is in the signed PDF)."""

    id = ma.fields.UUID()
    signer_role = ma.fields.String()
    printed_name = ma.fields.String(metadata={"description": "not shown to monitors"})
    meaning = ma.fields.String()
    signed_at = UtcDateTime()
    document_version = ma.fields.Integer()
    document_sha256 = ma.fields.String()
    credential_note = credential_note_field()
    intact = ma.fields.Boolean(
        metadata={"description": "false when the stored manifestation fails verification"}
    )

    @ma.post_dump
    def _pseudonymise(self, data: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
        if not sees_identity(current_actor()):
            data.pop("printed_name", None)
        return data


class ConsentWithSignaturesSchema(ConsentRecordSchema):
    signatures = ma.fields.List(ma.fields.Nested(ListedSignatureSchema))
