"""Staff accounts. Patients' accounts are created with their participant record."""

from __future__ import annotations

import uuid
from typing import Any

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Page

from api.auth import current_actor
from api.db import db_session
from api.openapi import Blueprint, QueryResults, protected
from api.resources.schemas import UserSchema, With
from services import people
from services.access import get_visible, visible_users
from services.actor import Role
from services.models import User

blp = Blueprint("users", __name__, url_prefix="/api/v1/users", description="Staff accounts")

STAFF_ROLE_NAMES = [role.value for role in people.STAFF_ROLES_CREATED_BY_USERS_ENDPOINT]


class UserCreateSchema(ma.Schema):
    email = ma.fields.String(required=True)
    full_name = ma.fields.String(required=True, validate=ma.validate.Length(1, 200))
    role = ma.fields.String(required=True, validate=ma.validate.OneOf(STAFF_ROLE_NAMES))
    phone = ma.fields.String(load_default=None)
    locale = ma.fields.String(load_default="en")
    timezone = ma.fields.String(load_default="Europe/Brussels")
    site_ids = ma.fields.List(ma.fields.UUID(), load_default=list)
    study_ids = ma.fields.List(ma.fields.UUID(), load_default=list)


class UserCreatedSchema(UserSchema):
    activation_code = ma.fields.String(
        metadata={"description": "Shown once: give it to the person to set their password"}
    )


@blp.route("")
class Users(MethodView):
    @protected(blp, 403, 409)
    @blp.arguments(UserCreateSchema)
    @blp.response(201, UserCreatedSchema)
    def post(self, body: dict[str, Any]) -> With:
        """Create a staff account (admin; coordinators: nurses of their sites).

        The answer carries a one-time activation code, valid 72 hours.
        """
        body["role"] = Role(body["role"])
        user, code = people.create_staff(db_session(), current_actor(), people.NewStaff(**body))
        return With(user, {"activation_code": code})

    @protected(blp, 403)
    @blp.response(200, UserSchema(many=True))
    @blp.paginate(Page)
    def get(self) -> QueryResults:
        """Accounts the caller manages."""
        query = visible_users(current_actor()).order_by(User.created_at, User.id)
        return QueryResults(db_session(), query)


@blp.route("/<uuid:user_id>")
class UserItem(MethodView):
    @protected(blp, 403, 404)
    @blp.response(200, UserSchema)
    def get(self, user_id: uuid.UUID) -> User:
        """One account the caller manages."""
        return get_visible(db_session(), visible_users(current_actor()), user_id, "user")
