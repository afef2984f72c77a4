"""415 for request bodies in a media type the endpoint does not read.

webargs would otherwise ignore a non-JSON body and report missing fields, which
hides the client's real mistake.
"""

from __future__ import annotations

from flask import Flask, current_app, request
from werkzeug.exceptions import UnsupportedMediaType

JSON_TYPES = frozenset({"application/json"})
# A MethodView reading another media type (uploads, tus) sets `accepted_media_types`.


def _check() -> None:
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    has_body = bool(request.content_length) or "chunked" in request.headers.get(
        "Transfer-Encoding", ""
    )
    if not has_body:
        return
    view = current_app.view_functions.get(request.endpoint or "")
    accepted = getattr(getattr(view, "view_class", None), "accepted_media_types", JSON_TYPES)
    if request.mimetype not in accepted:
        raise UnsupportedMediaType(
            f"send the body as {' or '.join(sorted(accepted))}, not {request.mimetype or 'untyped'}"
        )


def init_app(app: Flask) -> None:
    app.before_request(_check)
