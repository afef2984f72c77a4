"""CORS for browser-based staff tools on another origin: an allow-list of exact
origins (`DCT_CORS_ORIGINS`, none by default), for the API only.

Bearer tokens, never cookies: no credentials are allowed, so a page on an origin not
listed gets no CORS headers and its browser refuses to show it the answer. Errors
carry the headers too (flask-cors adds them to every answer of a matching path), so
a listed tool can read a 401 or 404 problem+json.
"""

from __future__ import annotations

from flask import Flask
from flask_cors import CORS

from api.config import cors_origins

# What a browser may send cross-origin beyond the simple headers: the token, JSON or a
# form, a request id of its own, and tus's headers for resumable uploads.
ALLOW_HEADERS = [
    "Authorization",
    "Content-Type",
    "X-Request-ID",
    "Tus-Resumable",
    "Upload-Length",
    "Upload-Offset",
    "Upload-Metadata",
    "Upload-Checksum",
]
# What its scripts may read: the request id, pagination, downloads' checksum and the
# answers of tus.
EXPOSE_HEADERS = [
    "X-Request-ID",
    "X-Pagination",
    "ETag",
    "Location",
    "Content-Disposition",
    "X-Content-SHA256",
    "Retry-After",
    "Tus-Resumable",
    "Tus-Version",
    "Tus-Extension",
    "Tus-Max-Size",
    "Tus-Checksum-Algorithm",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Expires",
    "Upload-Record",
]
MAX_AGE_SECONDS = 600


def init_app(app: Flask) -> None:
    """Nothing at all without listed origins: no header names an origin by accident."""
    origins = cors_origins(app.config)
    if not origins:
        return
    CORS(
        app,
        resources={r"/api/v1/*": {"origins": origins}},
        allow_headers=ALLOW_HEADERS,
        expose_headers=EXPOSE_HEADERS,
        supports_credentials=False,
        max_age=MAX_AGE_SECONDS,
        vary_header=True,
    )
