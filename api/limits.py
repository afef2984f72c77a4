"""Per-client-address rate limits (log-in and activation), on top of per-account lockout.

Each app gets its own Limiter: a Limiter keeps its storage and settings on itself, so
one shared by several apps (tests build more than one) would hand every app the
counters of the app initialised last. Views opt in with `login_rate_limited`;
`init_app` wraps them with this app's limiter once the blueprints are registered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, current_app
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from services.people import lockout

_MARK = "_dct_login_rate_limited"
View = TypeVar("View", bound=Callable[..., Any])


def login_limit() -> str:
    return current_app.config["DCT_LOGIN_RATE_LIMIT"]


def login_rate_limited(view: View) -> View:
    """Mark a view for the log-in rate limit (a MethodView lists it in `decorators`)."""
    setattr(view, _MARK, True)
    return view


def client_network() -> str:
    """Counted like the lock-out: per IPv4 address, per IPv6 /64."""
    return lockout.client_network(get_remote_address())


def init_app(app: Flask) -> Limiter:
    limiter = Limiter(key_func=client_network, default_limits=[], app=app)
    limit_login = limiter.limit(login_limit, methods=["POST"])
    for endpoint, view in list(app.view_functions.items()):
        if getattr(view, _MARK, False):
            app.view_functions[endpoint] = limit_login(view)
    return limiter
