"""HTTP edge: the app factory wires configuration, extensions and blueprints in order."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from api import auth, config, content_types, cors, db, errors, headers, limits, logs
from api.openapi import Api, init_docs_assets, openapi_config
from api.resources import BLUEPRINTS
from services import crypto, passwords
from services.audit import key as audit_key
from services.diagnostics.storage import make_storage


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    settings = config.load(overrides)
    app = Flask(__name__)
    app.config.update(settings)
    app.config.update(openapi_config())
    app.config["MAX_CONTENT_LENGTH"] = settings["DCT_MAX_REQUEST_BYTES"]
    app.config["RATELIMIT_STORAGE_URI"] = settings["DCT_RATELIMIT_STORAGE_URI"]
    app.config["RATELIMIT_HEADERS_ENABLED"] = True
    if settings["DCT_TRUSTED_PROXIES"]:
        count = settings["DCT_TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count)  # type: ignore[method-assign]

    logs.configure(settings["DCT_LOG_LEVEL"])
    crypto.configure(crypto.decode_master_key(settings["DCT_ENCRYPTION_KEY"]))
    audit_key.configure(audit_key.decode_audit_key(settings["DCT_AUDIT_KEY"]))
    passwords.configure(cheap=settings["DCT_PASSWORD_HASH_CHEAP"])

    logs.init_app(app)
    headers.init_app(app)
    cors.init_app(app)  # before the routes' checks: a preflight carries no token
    db.init_app(app)
    app.extensions["storage"] = make_storage(settings)
    auth.init_app(app)
    content_types.init_app(app)
    api = Api(app)
    for blueprint in BLUEPRINTS:
        api.register_blueprint(blueprint)
    limits.init_app(app)  # after the blueprints: wraps the views marked for the log-in limit
    init_docs_assets(app)
    errors.init_app(app)  # after Api: replaces flask-smorest's JSON error handler

    from api import cli

    cli.init_app(app)
    cli.start_scheduler_under_flask_run(app)
    return app
