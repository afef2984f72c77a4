"""Studies and their sites."""

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
from api.resources.schemas import SiteSchema
from services import studies
from services.access import get_visible, visible_sites, visible_studies
from services.models import Site, Study

blp = Blueprint("studies", __name__, url_prefix="/api/v1/studies", description="Studies and sites")


class StudySchema(ma.Schema):
    id = ma.fields.UUID(dump_only=True)
    code = ma.fields.String(required=True, validate=ma.validate.Length(1, 32))
    title = ma.fields.String(required=True, validate=ma.validate.Length(1, 300))
    languages = ma.fields.List(ma.fields.String(), required=True)
    default_timezone = ma.fields.String(required=True)
    created_at = UtcDateTime(dump_only=True)


@blp.route("")
class Studies(MethodView):
    @protected(blp, 403, 409)
    @blp.arguments(StudySchema)
    @blp.response(201, StudySchema)
    def post(self, body: dict[str, Any]) -> Study:
        """Create a study (admin)."""
        return studies.create_study(db_session(), current_actor(), studies.NewStudy(**body))

    @protected(blp, 403)
    @blp.response(200, StudySchema(many=True))
    @blp.paginate(Page)
    def get(self) -> QueryResults:
        """Studies the caller works on (admins: all)."""
        query = visible_studies(current_actor()).order_by(Study.code)
        return QueryResults(db_session(), query)


@blp.route("/<uuid:study_id>")
class StudyItem(MethodView):
    @protected(blp, 403, 404)
    @blp.response(200, StudySchema)
    def get(self, study_id: uuid.UUID) -> Study:
        """One study."""
        return get_visible(db_session(), visible_studies(current_actor()), study_id, "study")


@blp.route("/<uuid:study_id>/sites")
class Sites(MethodView):
    @protected(blp, 403, 404, 409)
    @blp.arguments(SiteSchema)
    @blp.response(201, SiteSchema)
    def post(self, body: dict[str, Any], study_id: uuid.UUID) -> Site:
        """Add a site to a study (admin)."""
        return studies.create_site(db_session(), current_actor(), study_id, studies.NewSite(**body))

    @protected(blp, 403, 404)
    @blp.response(200, SiteSchema(many=True))
    @blp.paginate(Page)
    def get(self, study_id: uuid.UUID) -> QueryResults:
        """The study's sites the caller works at (admins and monitors: all)."""
        actor = current_actor()
        session = db_session()
        get_visible(session, visible_studies(actor), study_id, "study")
        query = visible_sites(actor).where(Site.study_id == study_id).order_by(Site.code)
        return QueryResults(session, query)
