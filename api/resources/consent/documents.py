"""Consent documents: drafts, approval, versions."""

from __future__ import annotations

import uuid
from typing import Any

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Page

from api.auth import current_actor
from api.db import db_session
from api.fields import UtcDateTime
from api.openapi import Blueprint, QueryResults, protected
from api.resources.consent.schemas import ConsentRecordSchema
from api.resources.schemas import DisclosedSchema
from consent import documents, records
from consent.models import ConsentDocument, DocumentStatus

blp = Blueprint(
    "consent_documents",
    __name__,
    url_prefix="/api/v1",
    description="Consent documents: drafts, approval, versions",
)


class ConsentClauseSchema(ma.Schema):
    code = ma.fields.String(
        required=True,
        validate=[ma.validate.Length(1, 64), ma.validate.Regexp(r"^[A-Za-z0-9_.-]+$")],
        metadata={"description": "Letters, digits, _ . -; withdrawn as `clause:<code>`"},
    )
    text = ma.fields.String(required=True, validate=ma.validate.Length(1, 2000))


class ConsentQuizItemSchema(ma.Schema):
    question = ma.fields.String(required=True, validate=ma.validate.Length(1, 1000))
    options = ma.fields.List(
        ma.fields.String(validate=ma.validate.Length(1, 500)),
        required=True,
        validate=ma.validate.Length(min=2),
    )
    answer = ma.fields.String(
        required=True, metadata={"description": "One of the options; never sent to patients"}
    )


class ConsentDraftSchema(ma.Schema):
    """The version is the server's: the next one for the study and language."""

    language = ma.fields.String(required=True, metadata={"description": "ISO 639-1, e.g. nl"})
    title = ma.fields.String(required=True, validate=ma.validate.Length(1, 300))
    body_markdown = ma.fields.String(required=True, validate=ma.validate.Length(min=1))
    signer_roles = ma.fields.List(
        ma.fields.String(),
        required=True,
        metadata={
            "description": "participant and investigator, optionally "
            "legally_authorised_representative and impartial_witness"
        },
    )
    optional_clauses = ma.fields.List(ma.fields.Nested(ConsentClauseSchema), load_default=list)
    quiz = ma.fields.List(ma.fields.Nested(ConsentQuizItemSchema), load_default=list)
    quiz_pass_mark = ma.fields.Integer(
        load_default=None,
        allow_none=True,
        validate=ma.validate.Range(1, 1000),
        metadata={"description": "Correct answers needed to pass; required with a quiz"},
    )


class ConsentDraftChangeSchema(ConsentDraftSchema):
    """Any of the draft's fields; the others stay as they are."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(partial=documents.DRAFT_FIELDS, **kwargs)


class ConsentApprovalSchema(ma.Schema):
    ethics_reference = ma.fields.String(required=True, validate=ma.validate.Length(1, 200))
    approved_on = ma.fields.Date(required=True)
    effective_from = ma.fields.Date(required=True)
    requires_reconsent = ma.fields.Boolean(load_default=False)


class ConsentDocumentQuerySchema(ma.Schema):
    language = ma.fields.String()
    status = ma.fields.String(validate=ma.validate.OneOf([s.value for s in DocumentStatus]))


class ConsentDocumentSchema(DisclosedSchema):
    """Patients never receive the quiz answers."""

    RESOURCE = "consent_document"

    id = ma.fields.UUID()
    study_id = ma.fields.UUID()
    language = ma.fields.String()
    version = ma.fields.Integer()
    title = ma.fields.String()
    body_markdown = ma.fields.String()
    content_sha256 = ma.fields.String(
        metadata={"description": "Send it back as document_sha256 when signing"}
    )
    signer_roles = ma.fields.List(ma.fields.String())
    optional_clauses = ma.fields.List(ma.fields.Nested(ConsentClauseSchema))
    quiz = ma.fields.List(ma.fields.Nested(ConsentQuizItemSchema))
    quiz_pass_mark = ma.fields.Integer(allow_none=True)
    status = ma.fields.String(metadata={"description": "draft, approved or superseded"})
    ethics_reference = ma.fields.String(allow_none=True)
    approved_on = ma.fields.Date(allow_none=True)
    effective_from = ma.fields.Date(allow_none=True)
    requires_reconsent = ma.fields.Boolean()
    created_at = UtcDateTime()


class MyConsentsSchema(ma.Schema):
    to_sign = ma.fields.Nested(
        ConsentDocumentSchema,
        allow_none=True,
        metadata={"description": "The current version in my language, if I must sign it"},
    )
    to_sign_unavailable = ma.fields.String(
        allow_none=True, metadata={"description": "Why there is nothing I can sign, if so"}
    )
    consents = ma.fields.List(ma.fields.Nested(ConsentRecordSchema))


@blp.route("/studies/<uuid:study_id>/consent-documents")
class StudyDocuments(MethodView):
    @protected(blp, 403, 404)
    @blp.arguments(ConsentDraftSchema)
    @blp.response(201, ConsentDocumentSchema)
    def post(self, body: dict[str, Any], study_id: uuid.UUID) -> ConsentDocument:
        """Draft the next version of the consent in a language (coordinator, admin)."""
        return documents.create_draft(
            db_session(), current_actor(), study_id, documents.DraftContent(**body)
        )

    @protected(blp, 403, 404)
    @blp.arguments(ConsentDocumentQuerySchema, location="query")
    @blp.response(200, ConsentDocumentSchema(many=True))
    @blp.paginate(Page)
    def get(self, filters: dict[str, Any], study_id: uuid.UUID) -> QueryResults:
        """The study's consent documents, every version (staff of the study)."""
        session = db_session()
        query = documents.study_documents(
            session,
            current_actor(),
            study_id,
            language=filters.get("language"),
            status=filters.get("status"),
        )
        return QueryResults(session, query)


@blp.route("/consent-documents/<uuid:document_id>")
class DocumentItem(MethodView):
    @protected(blp, 404)
    @blp.response(200, ConsentDocumentSchema)
    def get(self, document_id: uuid.UUID) -> ConsentDocument:
        """One version with its content_sha256 (staff of the study; patients the approved
        and superseded versions of their study, and their opening is audited)."""
        return documents.get_document(db_session(), current_actor(), document_id)

    @protected(blp, 403, 404, 409)
    @blp.arguments(ConsentDraftChangeSchema)
    @blp.response(200, ConsentDocumentSchema)
    def patch(self, body: dict[str, Any], document_id: uuid.UUID) -> ConsentDocument:
        """Change a draft (coordinator, admin); an approved version is frozen (409)."""
        return documents.change_draft(db_session(), current_actor(), document_id, body)


@blp.route("/consent-documents/<uuid:document_id>/approve")
class DocumentApproval(MethodView):
    @protected(blp, 403, 404, 409)
    @blp.arguments(ConsentApprovalSchema)
    @blp.response(200, ConsentDocumentSchema)
    def post(self, body: dict[str, Any], document_id: uuid.UUID) -> ConsentDocument:
        """Record the ethics approval (admin): frozen from then on; once effective it
        supersedes the previous versions of its language."""
        return documents.approve(
            db_session(),
            current_actor(),
            document_id,
            documents.Approval(**body),
        )


@blp.route("/me/consents")
class MyConsents(MethodView):
    @protected(blp, 403)
    @blp.response(200, MyConsentsSchema)
    def get(self) -> records.OwnConsents:
        """What I must sign (the current version in my language) and my consent records."""
        return records.own_consents(db_session(), current_actor())
