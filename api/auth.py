"""JWT set-up and the acting user of each request.

Access tokens carry the user id (`sub`), role and session id (`sid`). Every request
re-reads the user and the session, so disabling an account or revoking a session
takes effect at once rather than when the token expires.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from flask import Flask, Response, current_app, g
from flask_jwt_extended import (
    JWTManager,
    create_access_token,
    create_refresh_token,
    get_jwt,
    verify_jwt_in_request,
)

from api.db import db_session
from api.errors import problem
from services import identity, people
from services.actor import Actor
from services.errors import Unauthenticated
from services.models import User

jwt = JWTManager()


def init_app(app: Flask) -> None:
    app.config.update(
        JWT_ACCESS_TOKEN_EXPIRES=dt.timedelta(minutes=app.config["DCT_ACCESS_TOKEN_MINUTES"]),
        JWT_REFRESH_TOKEN_EXPIRES=dt.timedelta(days=app.config["DCT_REFRESH_TOKEN_DAYS"]),
        JWT_TOKEN_LOCATION=["headers"],
        JWT_ERROR_MESSAGE_KEY="detail",
    )
    jwt.init_app(app)


def _unauthorised(detail: str) -> Response:
    return problem(401, "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


@jwt.unauthorized_loader
def _missing(reason: str) -> Response:
    return _unauthorised(f"send an access token as 'Authorization: Bearer <token>' ({reason})")


@jwt.invalid_token_loader
def _invalid(reason: str) -> Response:
    return _unauthorised(f"the token is not valid: {reason}")


@jwt.expired_token_loader
def _expired(_header: dict[str, Any], payload: dict[str, Any]) -> Response:
    hint = "refresh it at /api/v1/auth/refresh" if payload.get("type") == "access" else "log in"
    return _unauthorised(f"the {payload.get('type', '')} token has expired; {hint}")


@jwt.revoked_token_loader
def _revoked(_header: dict[str, Any], _payload: dict[str, Any]) -> Response:
    return _unauthorised(
        "this token was revoked (log-out, a reused refresh token, a new password or a "
        "deactivated account); log in"
    )


@jwt.token_in_blocklist_loader
def _is_revoked(_header: dict[str, Any], payload: dict[str, Any]) -> bool:
    session_id = payload.get("sid")
    try:
        parsed = uuid.UUID(session_id) if session_id else None
    except ValueError:
        return True
    return not identity.session_is_active(db_session(), parsed)


def mint_tokens(grant: identity.Grant, access_minutes: int) -> dict[str, Any]:
    """The token pair the apps receive from log-in, activation and refresh."""
    claims = {"role": grant.user.role, "sid": str(grant.session_id)}
    access = create_access_token(identity=str(grant.user.id), additional_claims=claims)
    refresh = create_refresh_token(
        identity=str(grant.user.id),
        additional_claims={**claims, "jti": str(grant.refresh_jti)},
    )
    return {
        "access_token": access,
        "refresh_token": refresh,
        "token_type": "Bearer",
        "expires_in": access_minutes * 60,
        "user": grant.user,
    }


def current_actor(*, refresh: bool = False) -> Actor:
    """Authenticate the request and describe the actor; every protected view calls this."""
    if "actor" in g:
        return g.actor
    verify_jwt_in_request(refresh=refresh)
    claims = get_jwt()
    user = db_session().get(User, uuid.UUID(claims["sub"]))
    if user is None or not user.is_active:
        raise Unauthenticated("the account behind this token is disabled")
    g.actor = people.actor_for(db_session(), user, g.get("request_id"))
    g.user_id = str(user.id)
    return g.actor


def auth_policy() -> identity.AuthPolicy:
    """Lockout and token timings from configuration, for log-in and re-authentication."""
    settings = current_app.config
    return identity.AuthPolicy(
        refresh_ttl=dt.timedelta(days=settings["DCT_REFRESH_TOKEN_DAYS"]),
        max_failed_logins=settings["DCT_MAX_FAILED_LOGINS"],
        lockout=dt.timedelta(minutes=settings["DCT_LOCKOUT_MINUTES"]),
        alert_ceiling=settings["DCT_LOGIN_ALERT_CEILING"],
        reset_validity=dt.timedelta(minutes=settings["DCT_RESET_CODE_MINUTES"]),
        signature_hold=dt.timedelta(hours=settings["DCT_SIGNATURE_HOLD_HOURS"]),
        email_delivery=settings["DCT_EMAIL_GATEWAY"] != "none",
    )
