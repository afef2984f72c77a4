"""JWT set-up and the acting user of each request.

Access tokens carry the user id (`sub`), role and session id (`sid`). Every request
re-reads the user and the session, so disabling an account or revoking a session
takes effect at once rather than when the token expires.

A token's claims must have the shape this module mints, or it is a 401 like any bad
token: forging one takes the key, but a leaked key or a bug elsewhere must still not
turn a malformed claim into a 500.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import jwt as pyjwt
from flask import Flask, Response, current_app, g
from flask_jwt_extended import (
    JWTManager,
    create_access_token,
    create_refresh_token,
    get_jwt,
    verify_jwt_in_request,
)
from flask_jwt_extended.config import config as jwt_config

from api.db import db_session
from api.errors import problem
from services.actor import Actor, Role
from services.errors import Unauthenticated
from services.models import User
from services.people import identity
from services.people import participants as people

jwt = JWTManager()

# Every claim of the tokens `mint_tokens` issues (flask-jwt-extended adds the standard
# ones and `csrf`); `sub`, `sid` and `jti` are canonical UUID strings.
MINTED_CLAIMS = frozenset(
    {"sub", "sid", "jti", "role", "type", "fresh", "iat", "nbf", "exp", "csrf"}
)
UUID_CLAIMS = ("sub", "sid", "jti")
TOKEN_TYPES = frozenset({"access", "refresh"})
ROLES = frozenset(role.value for role in Role)


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


def _is_uuid(value: Any) -> bool:
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value
    except ValueError:
        return False


def claims_problem(claims: dict[str, Any]) -> str | None:
    """What makes these claims other than the ones this API mints, or None."""
    unknown = claims.keys() - MINTED_CLAIMS
    if unknown:
        return "it carries claims this API never issues"
    missing = [name for name in UUID_CLAIMS if not _is_uuid(claims.get(name))]
    if missing:
        return f"its {', '.join(missing)} claim is not a UUID"
    role, kind = claims.get("role"), claims.get("type")
    if not isinstance(role, str) or role not in ROLES:
        return "its role claim is not a role"
    if not isinstance(kind, str) or kind not in TOKEN_TYPES:
        return "its type claim is neither access nor refresh"
    return None


@jwt.decode_key_loader
def _decode_key(_header: dict[str, Any], claims: dict[str, Any]) -> Any:
    """Check the claims' shape before the signature (the only hook that sees them as
    sent, before flask-jwt-extended fills in a missing `type`); either failing is the
    same 401."""
    problem = claims_problem(claims)
    if problem:
        raise pyjwt.InvalidTokenError(problem)
    return jwt_config.decode_key


@jwt.token_in_blocklist_loader
def _is_revoked(_header: dict[str, Any], payload: dict[str, Any]) -> bool:
    return not identity.session_is_active(db_session(), uuid.UUID(payload["sid"]))


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
    if user.role != claims["role"]:  # a role never changes: this token was not ours
        raise Unauthenticated("the token's role is not the account's")
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
