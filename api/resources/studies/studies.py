"""Studies and their sites: created and changed by admins, read by staff."""

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
from api.resources.schemas import SiteSchema, UpdateSchema
from services.access import get_visible, visible_sites, visible_studies
from services.models import Site, Study
from services.studies import studies

blp = Blueprint("studies", __name__, url_prefix="/api/v1", description="Studies and sites")


class StudySchema(ma.Schema):
    id = ma.fields.UUID(dump_only=True)
    code = ma.fields.String(required=True, validate=ma.validate.Length(1, 32))
    title = ma.fields.String(required=True, validate=ma.validate.Length(1, 300))
    languages = ma.fields.List(ma.fields.String(), required=True)
    default_timezone = ma.fields.String(required=True)
    created_at = UtcDateTime(dump_only=True)


class StudyUpdateSchema(UpdateSchema):
    """The fields sent change; the code stays."""

    FIXED = studies.STUDY_FIXED

    title = ma.fields.String(validate=ma.validate.Length(1, 300))
    languages = ma.fields.List(
        ma.fields.String(),
        metadata={
            "description": "the full new list: languages may be added; one still used by an "
            "approved consent document or a participant cannot be removed (409)"
        },
    )
    default_timezone = ma.fields.String()


class SiteUpdateSchema(UpdateSchema):
    """The fields sent change; code and country stay."""

    FIXED = studies.SITE_FIXED

    name = ma.fields.String(validate=ma.validate.Length(1, 300))
    timezone = ma.fields.String()


@blp.route("/studies")
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


@blp.route("/studies/<uuid:study_id>")
class StudyItem(MethodView):
    @protected(blp, 403, 404)
    @blp.response(200, StudySchema)
    def get(self, study_id: uuid.UUID) -> Study:
        """One study."""
        return get_visible(db_session(), visible_studies(current_actor()), study_id, "study")

    @protected(blp, 403, 404, 409)
    @blp.arguments(StudyUpdateSchema)
    @blp.response(200, StudySchema)
    def patch(self, body: dict[str, Any], study_id: uuid.UUID) -> Study:
        """Change a study's title, languages or default time zone (admin).

        The code never changes (422). Adding a language is always allowed; removing
        one answers 409 naming it and what uses it while an approved consent document
        is in it or a participant has it as their language. Audited with before/after.
        """
        return studies.update_study(db_session(), current_actor(), study_id, body)


@blp.route("/studies/<uuid:study_id>/sites")
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
        session = db_session()
        return QueryResults(session, studies.study_sites(session, current_actor(), study_id))


@blp.route("/sites/<uuid:site_id>")
class SiteItem(MethodView):
    @protected(blp, 403, 404)
    @blp.response(200, SiteSchema)
    def get(self, site_id: uuid.UUID) -> Site:
        """One site the caller works at (admins and monitors: every site of their studies)."""
        return get_visible(db_session(), visible_sites(current_actor()), site_id, "site")

    @protected(blp, 403, 404)
    @blp.arguments(SiteUpdateSchema)
    @blp.response(200, SiteSchema)
    def patch(self, body: dict[str, Any], site_id: uuid.UUID) -> Site:
        """Change a site's name or time zone (admin). Code and country never change
        (422): subject codes are built from the code, and the site's phones were read
        in its country. Audited with before/after."""
        return studies.update_site(db_session(), current_actor(), site_id, body)
