"""Consent records as every eConsent endpoint answers them: one shape everywhere."""

from __future__ import annotations

import marshmallow as ma

from api.fields import UtcDateTime
from api.resources.schemas import DisclosedSchema, FreeText
from consent.models import ConsentStatus


def credential_note_field() -> ma.fields.String:
    """Part of the manifestation wherever it is shown (21 CFR 11.50, 11.300)."""
    return ma.fields.String(
        allow_none=True,
        metadata={
            "description": "set when the signer's password came from a staff-issued code "
            "shortly before signing (21 CFR 11.300)"
        },
    )


class ConsentRecordSchema(DisclosedSchema):
    """Monitors read the withdrawal reason withheld (services.people.disclosure)."""

    RESOURCE = "consent"

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
    withdrawal_reason = FreeText("how the participant expressed the withdrawal")
    pdf_sha256 = ma.fields.String(
        allow_none=True, metadata={"description": "SHA-256 of the signed copy once produced"}
    )
    created_at = UtcDateTime()


class ListedSignatureSchema(DisclosedSchema):
    """A signature as listed with its consent; no image (it is in the signed PDF)."""

    RESOURCE = "consent_signature"

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


class ConsentWithSignaturesSchema(ConsentRecordSchema):
    signatures = ma.fields.List(ma.fields.Nested(ListedSignatureSchema))
