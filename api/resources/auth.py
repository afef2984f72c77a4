"""Log-in, activation, refresh-token rotation and log-out."""

from __future__ import annotations

import uuid
from typing import Any

import marshmallow as ma
from flask import current_app
from flask.views import MethodView
from flask_jwt_extended import get_jwt

from api.auth import auth_policy, current_actor, mint_tokens
from api.db import db_session
from api.limits import login_rate_limited
from api.openapi import Blueprint, documents_errors, protected
from api.resources.schemas import UserSchema
from services import identity
from services.actor import Actor

blp = Blueprint("auth", __name__, url_prefix="/api/v1/auth", description="Log-in and tokens")


class LoginSchema(ma.Schema):
    email = ma.fields.String(load_default=None)
    phone = ma.fields.String(load_default=None)
    password = ma.fields.String(required=True, load_only=True)

    @ma.validates_schema
    def _one_identifier(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if bool(data.get("email")) == bool(data.get("phone")):
            message = ["send exactly one of email or phone (phone in international format)"]
            raise ma.ValidationError({"email": message, "phone": message})


class ActivateSchema(ma.Schema):
    activation_code = ma.fields.String(required=True)
    password = ma.fields.String(required=True, load_only=True)


class TokenPairSchema(ma.Schema):
    access_token = ma.fields.String()
    refresh_token = ma.fields.String()
    token_type = ma.fields.String()
    expires_in = ma.fields.Integer(metadata={"description": "access token lifetime, seconds"})
    user = ma.fields.Nested(UserSchema)


def _tokens(grant: identity.Grant) -> dict[str, Any]:
    return mint_tokens(grant, current_app.config["DCT_ACCESS_TOKEN_MINUTES"])


def _anonymous() -> Actor:
    from flask import g

    return Actor.system(g.get("request_id"))


@blp.route("/login")
class Login(MethodView):
    decorators = (login_rate_limited,)

    @blp.arguments(LoginSchema)
    @blp.response(200, TokenPairSchema)
    @documents_errors(blp, 401, 429)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Log in with email (or, for a patient without one, phone) and password.

        Five failed attempts lock the account for a while (429 with Retry-After);
        each client address is also rate-limited.
        """
        grant = identity.login(
            db_session(),
            _anonymous(),
            auth_policy(),
            email=body["email"],
            phone=body["phone"],
            password=body["password"],
        )
        return _tokens(grant)


@blp.route("/activate")
class Activate(MethodView):
    decorators = (login_rate_limited,)

    @blp.arguments(ActivateSchema)
    @blp.response(200, TokenPairSchema)
    @documents_errors(blp, 401, 429)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Set the first password with a single-use activation code (valid 72 h), and log in."""
        grant = identity.activate(
            db_session(),
            _anonymous(),
            auth_policy(),
            code=body["activation_code"],
            password=body["password"],
        )
        return _tokens(grant)


@blp.route("/refresh")
class Refresh(MethodView):
    @protected(blp, refresh=True)
    @blp.response(200, TokenPairSchema)
    def post(self) -> dict[str, Any]:
        """Rotate: send the refresh token as the bearer token; get a new pair.

        A refresh token works once. Presenting it again revokes the whole session
        (every access and refresh token issued from the same log-in).
        """
        actor = current_actor(refresh=True)
        grant = identity.refresh(db_session(), actor, auth_policy(), uuid.UUID(get_jwt()["jti"]))
        return _tokens(grant)


@blp.route("/logout")
class Logout(MethodView):
    @protected(blp)
    @blp.response(204)
    def post(self) -> None:
        """End this log-in: its access and refresh tokens stop working at once."""
        actor = current_actor()
        identity.logout(db_session(), actor, uuid.UUID(get_jwt()["sid"]))
