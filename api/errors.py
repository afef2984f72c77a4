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
from services import errors as domain
from services.diagnostics.reads import StoredFileMissing
from services.diagnostics.tus import ChecksumMismatch

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "https://dct.example/problems/"
log = logging.getLogger("dct.errors")

# The HTTP status and reason phrase that answer each kind of domain error; an error
# takes the entry of the nearest class in its ancestry. The titles are the reason
# phrases of RFC 9110 (460 is tus's checksum extension, not a registered status).
STATUSES: dict[type[domain.DomainError], tuple[int, str]] = {
    domain.DomainError: (400, "Bad Request"),
    domain.Unauthenticated: (401, "Unauthorized"),
    domain.Forbidden: (403, "Forbidden"),
    domain.NotFound: (404, "Not Found"),
    domain.Conflict: (409, "Conflict"),
    domain.TooLarge: (413, "Content Too Large"),
    domain.UnsupportedType: (415, "Unsupported Media Type"),
    domain.Invalid: (422, "Unprocessable Entity"),
    domain.TooManyAttempts: (429, "Too Many Requests"),
    ChecksumMismatch: (460, "Checksum Mismatch"),
    StoredFileMissing: (500, "Internal Server Error"),
    domain.Unavailable: (503, "Service Unavailable"),
}


def status_of(error: type[domain.DomainError]) -> tuple[int, str]:
    """The status and title answering a kind of domain error."""
    return next(STATUSES[kind] for kind in error.__mro__ if kind in STATUSES)


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


def domain_problem(error: domain.DomainError) -> Response:
    """A domain error as problem+json, with the headers its status calls for."""
    status, title = status_of(type(error))
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if isinstance(error, domain.TooManyAttempts):
        headers["Retry-After"] = str(error.retry_after_seconds)
    return problem(
        status, title, error.detail, kind=error.kind, errors=error.errors, headers=headers
    )


def _domain_error(error: domain.DomainError) -> Response:
    if error.keep_changes:
        db.finish(commit=True)
    return domain_problem(error)


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
    app.register_error_handler(domain.DomainError, _domain_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(InternalServerError, _unexpected)
    app.register_error_handler(Exception, _unexpected)
