"""Response headers every answer carries.

API answers hold tokens and personal data: no cache (browser, proxy or app) may keep
them, and no browser may guess their type.
"""

from __future__ import annotations

from flask import Flask, Response


def _secure(response: Response) -> Response:
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def init_app(app: Flask) -> None:
    app.after_request(_secure)
