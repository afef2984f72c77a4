"""Consent discussions, signatures, consent records and enrolment."""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Any

import marshmallow as ma
from flask import request
from flask.views import MethodView
from flask_smorest import Page

from api.auth import auth_policy, current_actor
from api.db import db_session
from api.fields import UtcDateTime
from api.openapi import Blueprint, protected
from api.resources.consent.schemas import ConsentWithSignaturesSchema, credential_note_field
from api.resources.people.participants import ParticipantSchema
from api.resources.schemas import DisclosedSchema, FreeText, With
from consent import discussions, records, signing
from consent.models import Consent, ConsentDiscussion, ConsentSignature, SignerRole
from services.access import require_role
from services.actor import Role
from services.models import Participant
from services.people import enrolment

blp = Blueprint(
    "consent_signatures",
    __name__,
    url_prefix="/api/v1",
    description="Consent discussions, signatures, consent records and enrolment",
)

CONSENT_READERS = (Role.COORDINATOR, Role.MONITOR, Role.PATIENT)
MAX_SIGNATURE_IMAGE_BYTES = 200 * 1024
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_SHA256_HEX = r"^[0-9a-f]{64}$"


# --- consent discussions -------------------------------------------------------------


class ConsentDiscussionCreateSchema(ma.Schema):
    mode = ma.fields.String(
        required=True,
        validate=ma.validate.OneOf(["in_person", "video", "phone"]),
        metadata={"description": "in_person, video, or phone (refused for Belgian sites)"},
    )
    held_at = UtcDateTime(
        required=True,
        metadata={"description": "between the participant's registration and now, else 422"},
    )
    notes = ma.fields.String(load_default=None, validate=ma.validate.Length(max=5000))
    participant_can_read = ma.fields.Boolean(
        load_default=True,
        metadata={"description": "false: an impartial witness must sign too (witness_name)"},
    )
    lar_name = ma.fields.String(
        load_default=None,
        validate=ma.validate.Length(1, 200),
        metadata={"description": "a legally authorised representative signs instead"},
    )
    witness_name = ma.fields.String(load_default=None, validate=ma.validate.Length(1, 200))


class ConsentDiscussionSchema(DisclosedSchema):
    RESOURCE = "consent_discussion"

    id = ma.fields.UUID()
    participant_id = ma.fields.UUID()
    mode = ma.fields.String()
    held_at = UtcDateTime()
    notes = FreeText("what was discussed")
    participant_can_read = ma.fields.Boolean()
    with_lar = ma.fields.Function(lambda d: d.lar_name is not None, metadata={"type": "boolean"})
    with_witness = ma.fields.Function(
        lambda d: d.witness_name is not None, metadata={"type": "boolean"}
    )
    lar_name = ma.fields.String(allow_none=True)
    witness_name = ma.fields.String(allow_none=True)
    recorded_by = ma.fields.UUID()
    created_at = UtcDateTime()


@blp.route("/participants/<uuid:participant_id>/consent-discussions")
class ConsentDiscussions(MethodView):
    @protected(blp, 403, 404, 409)
    @blp.arguments(ConsentDiscussionCreateSchema)
    @blp.response(201, ConsentDiscussionSchema)
    def post(self, body: dict[str, Any], participant_id: uuid.UUID) -> ConsentDiscussion:
        """Record the consent discussion (coordinator of the participant's site).

        Required before anyone signs. A representative's name makes them sign
        instead of the participant; a participant who cannot read needs an impartial
        witness, named here. Belgian sites hold it in person or by video (phone: 409).
        """
        return discussions.record(
            db_session(), current_actor(), participant_id, discussions.Discussion(**body)
        )


# --- signatures ----------------------------------------------------------------------


def _png_base64(value: str) -> None:
    if len(value) > (MAX_SIGNATURE_IMAGE_BYTES + 2) // 3 * 4:
        raise ma.ValidationError("the image is larger than 200 KB")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ma.ValidationError("send the PNG as standard base64 (no data: prefix)") from exc
    if not raw.startswith(_PNG_MAGIC):
        raise ma.ValidationError("the image must be a PNG")


class SignatureCreateSchema(ma.Schema):
    participant_id = ma.fields.UUID(required=True)
    role = ma.fields.Enum(SignerRole, by_value=True, required=True)
    full_name = ma.fields.String(
        required=True,
        validate=ma.validate.Length(1, 200),
        metadata={"description": "typed by the signer; must match the name on file"},
    )
    password = ma.fields.String(
        required=True,
        load_only=True,
        validate=ma.validate.Length(1, 1000),
        metadata={"description": "the signer's own password, re-entered to sign"},
    )
    document_sha256 = ma.fields.String(
        required=True,
        validate=ma.validate.Regexp(_SHA256_HEX, error="a lowercase hex SHA-256"),
        metadata={"description": "content_sha256 of the version the signer was shown"},
    )
    clause_choices = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.Boolean(),
        load_default=dict,
        metadata={"description": "yes or no for each optional clause (participant or LAR)"},
    )
    quiz_answers = ma.fields.List(ma.fields.String(), load_default=list)
    signature_image = ma.fields.String(
        load_default=None,
        validate=_png_base64,
        metadata={"description": "optional handwritten signature: a PNG in base64, <= 200 KB"},
    )


class SignatureManifestationSchema(DisclosedSchema):
    """What 21 CFR 11.50 requires a signed record to show."""

    RESOURCE = "consent_signature"

    id = ma.fields.UUID()
    consent_id = ma.fields.UUID()
    participant_id = ma.fields.UUID()
    document_id = ma.fields.UUID()
    document_version = ma.fields.Integer()
    document_sha256 = ma.fields.String()
    signer_role = ma.fields.String()
    printed_name = ma.fields.String()
    meaning = ma.fields.String()
    signed_at = UtcDateTime()
    clause_choices = ma.fields.Dict(allow_none=True)
    credential_note = credential_note_field()
    consent_status = ma.fields.String(
        attribute="consent.status",
        metadata={"description": "the consent's status after this signature"},
    )


@blp.route("/consent-documents/<uuid:document_id>/signatures")
class ConsentSignatures(MethodView):
    @protected(blp, 403, 404, 409)
    @blp.arguments(SignatureCreateSchema)
    @blp.response(201, SignatureManifestationSchema)
    def post(self, body: dict[str, Any], document_id: uuid.UUID) -> ConsentSignature:
        """Sign a consent document version.

        The participant signs from their own account; a coordinator of the
        participant's site records a representative's or witness's signature in
        person and countersigns last as investigator. Every signer re-enters their
        own password (wrong: 401, only the failed attempt is kept in the audit).
        """
        client = signing.ClientInfo(
            address=request.remote_addr, user_agent=request.user_agent.string or None
        )
        return signing.sign(
            db_session(),
            current_actor(),
            document_id,
            signing.SignatureRequest(**body),
            client,
            auth_policy(),
        )


# --- consent records -----------------------------------------------------------------


def _with_integrity(consent: Consent) -> With:
    """Each signature is verified against the consent that lists it."""
    checked = [
        With(signature, {"intact": signing.signature_is_intact(signature, consent)})
        for signature in consent.signatures
    ]
    return With(consent, {"signatures": checked})


@blp.route("/participants/<uuid:participant_id>/consents")
class ParticipantConsents(MethodView):
    @protected(blp, 403, 404)
    @blp.response(200, ConsentWithSignaturesSchema(many=True))
    @blp.paginate(Page)
    def get(self, participant_id: uuid.UUID) -> list[With]:
        """A participant's consent records with their signatures, oldest first
        (coordinators of the site, monitors of the study without printed names, the
        patient themselves)."""
        actor = current_actor()
        require_role(actor, *CONSENT_READERS)
        consents = records.participant_consents(db_session(), actor, participant_id)
        return [_with_integrity(consent) for consent in consents]


# --- enrolment -----------------------------------------------------------------------


class EnrolmentSchema(ma.Schema):
    baseline_date = ma.fields.Date(required=True)


@blp.route("/participants/<uuid:participant_id>/enroll")
class ParticipantEnrolment(MethodView):
    @protected(blp, 403, 404, 409)
    @blp.arguments(EnrolmentSchema)
    @blp.response(200, ParticipantSchema)
    def post(self, body: dict[str, Any], participant_id: uuid.UUID) -> Participant:
        """Enrol a consented participant from a baseline date (coordinator). Needs a
        complete, current consent (409 otherwise)."""
        return enrolment.enroll(db_session(), current_actor(), participant_id, **body)
