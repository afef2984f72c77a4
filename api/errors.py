"""Every error as RFC 9457 problem+json: one format for the apps to parse.

Domain errors, werkzeug's HTTP errors (404, 405, 413, ...), webargs validation
errors, JWT errors and unexpected exceptions all end here.
"""

from __future__ import annotations

import logging
from typing import Any

import marshmallow as ma
from flask import Flask, Response, g, json, request
from werkzeug.exceptions import HTTPException, InternalServerError

from api import db
from services.errors import DomainError, TooManyAttempts

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "https://dct.example/problems/"
log = logging.getLogger("dct.errors")


class ProblemSchema(ma.Schema):
    """RFC 9457 problem details (documentation only; `problem()` builds the body)."""

    type = ma.fields.String(metadata={"description": "URI naming the kind of problem"})
    title = ma.fields.String(metadata={"description": "Short summary of the kind of problem"})
    status = ma.fields.Integer()
    detail = ma.fields.String(metadata={"description": "What went wrong, for a developer"})
    instance = ma.fields.String(metadata={"description": "The request path"})
    request_id = ma.fields.String()
    errors = ma.fields.Dict(metadata={"description": "Per-field messages (400, 422)"})


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    kind: str | None = None,
    errors: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + (kind or title.lower().replace(" ", "-")),
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.path,
    }
    if "request_id" in g:
        body["request_id"] = g.request_id
    if errors:
        body["errors"] = errors
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _domain_error(error: DomainError) -> Response:
    if error.keep_changes:
        db.finish(commit=True)
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else {}
    if isinstance(error, TooManyAttempts):
        headers["Retry-After"] = str(error.retry_after_seconds)
    return problem(
        error.status,
        error.title,
        error.detail,
        kind=error.kind,
        errors=error.errors,
        headers=headers,
    )


def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    if status >= 500:
        return _unexpected(error)
    data = getattr(error, "data", None) or {}
    errors = data.get("errors") or data.get("messages")
    if status == 422 and isinstance(errors, dict):
        errors = _flatten_locations(errors)
        detail = "the request did not validate; see errors for each field"
    elif status == 400 and errors:
        detail = "the request body is not valid JSON"
    else:
        detail = data.get("message") or error.description or error.name
    headers = {}
    if status == 405 and error.valid_methods:  # type: ignore[attr-defined]
        headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
    if status == 429:
        detail = "too many requests from this address; slow down and retry later"
    return problem(status, error.name, detail, errors=errors, headers=headers)


def _flatten_locations(errors: dict[str, Any]) -> dict[str, Any]:
    """webargs nests messages by location ({"json": {...}}); clients want field names."""
    flat: dict[str, Any] = {}
    for location, messages in errors.items():
        if isinstance(messages, dict):
            flat.update(messages)
        else:
            flat[location] = messages
    return flat


def _unexpected(error: BaseException) -> Response:
    original = getattr(error, "original_exception", None) or error
    log.error("unhandled error", exc_info=original)
    return problem(
        500,
        "Internal Server Error",
        "the server failed to handle this request; quote the request_id when reporting it",
    )


def init_app(app: Flask) -> None:
    app.register_error_handler(DomainError, _domain_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(InternalServerError, _unexpected)
    app.register_error_handler(Exception, _unexpected)
