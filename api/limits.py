"""Per-client-address rate limits (log-in and activation), on top of per-account lockout."""

from __future__ import annotations

from flask import current_app
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

limiter = Limiter(key_func=get_remote_address, default_limits=[])


def login_limit() -> str:
    return current_app.config["DCT_LOGIN_RATE_LIMIT"]
