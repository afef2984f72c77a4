"""Log-in, activation, refresh-token rotation and log-out."""

from __future__ import annotations

import uuid
from typing import Any

import marshmallow as ma
from flask import current_app, g, request
from flask.views import MethodView
from flask_jwt_extended import get_jwt

from api.auth import auth_policy, current_actor, mint_tokens
from api.db import db_session
from api.limits import login_rate_limited
from api.openapi import Blueprint, documents_errors, protected
from api.resources.schemas import MeSchema, With
from services.actor import Actor
from services.people import identity, password_reset
from services.people import participants as people

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


class ResetRequestSchema(ma.Schema):
    email = ma.fields.String(load_default=None)
    phone = ma.fields.String(load_default=None)

    _one_identifier = LoginSchema._one_identifier


class ResetConfirmSchema(ma.Schema):
    code = ma.fields.String(required=True, validate=ma.validate.Length(1, 64))
    password = ma.fields.String(required=True, load_only=True)


class PasswordChangeSchema(ma.Schema):
    current_password = ma.fields.String(required=True, load_only=True)
    new_password = ma.fields.String(required=True, load_only=True)


class ResetAcceptedSchema(ma.Schema):
    detail = ma.fields.String()


RESET_ACCEPTED = {
    "detail": "If an account matches, a reset code is on its way to its e-mail address or "
    "phone. "
    "It is valid for a limited time; confirm it at /api/v1/auth/password-reset/confirm."
}


class TokenPairSchema(ma.Schema):
    access_token = ma.fields.String()
    refresh_token = ma.fields.String()
    token_type = ma.fields.String()
    expires_in = ma.fields.Integer(metadata={"description": "access token lifetime, seconds"})
    user = ma.fields.Nested(MeSchema, metadata={"description": "the same as GET /me"})


def _tokens(grant: identity.Grant) -> dict[str, Any]:
    tokens = mint_tokens(grant, current_app.config["DCT_ACCESS_TOKEN_MINUTES"])
    return {**tokens, "user": With(grant.user, people.profile_scope(db_session(), grant.user))}


def _anonymous() -> Actor:
    return Actor.system(g.get("request_id"))


@blp.route("/login")
class Login(MethodView):
    decorators = (login_rate_limited,)

    @blp.arguments(LoginSchema)
    @blp.response(200, TokenPairSchema)
    @documents_errors(blp, 401, 429)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Log in with email (or, for a patient without one, phone) and password.

        An unknown account, a disabled one and one locked from this address all
        answer 401 exactly like a wrong password. Five failed attempts from one
        address lock the account there for a while (silently: the answer stays the
        same), never from everywhere; each client address is also rate-limited.
        """
        grant = identity.login(
            db_session(),
            _anonymous(),
            auth_policy(),
            email=body["email"],
            phone=body["phone"],
            password=body["password"],
            address=request.remote_addr,
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


@blp.route("/password-reset")
class PasswordReset(MethodView):
    decorators = (login_rate_limited,)

    @blp.arguments(ResetRequestSchema)
    @blp.response(202, ResetAcceptedSchema)
    @documents_errors(blp, 429)
    def post(self, body: dict[str, Any]) -> dict[str, str]:
        """Ask for a password reset code: it goes to the account holder alone, by e-mail
        where the account has an address and e-mail is configured, else by SMS.

        Always 202, whether or not the account exists, so the answer tells nobody
        who has an account. The code is never in any answer; it is valid for 30
        minutes and replaces any earlier one.
        """
        password_reset.request_reset(
            db_session(), _anonymous(), auth_policy(), email=body["email"], phone=body["phone"]
        )
        return RESET_ACCEPTED


@blp.route("/password-reset/confirm")
class PasswordResetConfirm(MethodView):
    decorators = (login_rate_limited,)

    @blp.arguments(ResetConfirmSchema)
    @blp.response(200, TokenPairSchema)
    @documents_errors(blp, 401, 429)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Choose a new password with the reset code, and log in.

        Every earlier session of the account ends (its access and refresh tokens
        answer 401 from now on).
        """
        grant = password_reset.confirm_reset(
            db_session(), _anonymous(), auth_policy(), code=body["code"], password=body["password"]
        )
        return _tokens(grant)


@blp.route("/password")
class PasswordChange(MethodView):
    @protected(blp, 429)
    @blp.arguments(PasswordChangeSchema)
    @blp.response(200, TokenPairSchema)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Change your password with your current one.

        Every session of the account ends, this one included; the answer is a new
        token pair for this device. A wrong current password counts towards the
        lock-out like a failed log-in.
        """
        grant = identity.change_password(
            db_session(),
            current_actor(),
            auth_policy(),
            current_password=body["current_password"],
            new_password=body["new_password"],
            address=request.remote_addr,
        )
        return _tokens(grant)
