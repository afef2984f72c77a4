"""flask-smorest's Api with problem+json errors documented and the bearer scheme declared."""

from __future__ import annotations

import functools
import http
from collections.abc import Callable
from pathlib import Path
from typing import Any

import marshmallow as ma
import swagger_ui
from flask import Flask, Response, send_from_directory
from flask_smorest import Api as SmorestApi
from flask_smorest import Blueprint as SmorestBlueprint
from flask_smorest.pagination import PaginationMetadataSchema
from flask_smorest.utils import prepare_response
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from api import content_types
from api.auth import current_actor
from api.errors import PROBLEM_JSON, ProblemSchema

API_PREFIX = "/api/v1"


class Api(SmorestApi):
    ERROR_SCHEMA = ProblemSchema

    def _register_responses(self) -> None:
        """Document every error response as application/problem+json."""
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if status >= 400:
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, PROBLEM_JSON)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Default error response", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_JSON)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)

    def _register_pagination_header(self) -> None:
        """X-Pagination is a JSON object in a header: OpenAPI says so with `content`, not
        with an object `schema` (which would promise exploded key=value pairs)."""
        self.spec.components.header(
            "PAGINATION",
            {
                "description": "Pagination metadata, a JSON object",
                "content": {"application/json": {"schema": PaginationMetadataSchema}},
            },
            lazy=True,
        )


def openapi_config() -> dict[str, Any]:
    return {
        "API_TITLE": "DCT backend",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.1.0",
        "OPENAPI_URL_PREFIX": API_PREFIX,
        "OPENAPI_JSON_PATH": "openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": "/docs",
        # Swagger UI 5 (OpenAPI 3.1) served from the swagger-ui-py wheel: docs work offline.
        "OPENAPI_SWAGGER_UI_URL": f"{API_PREFIX}/docs/assets/",
        "API_SPEC_OPTIONS": {
            "info": {
                "description": "Backend of a decentralised clinical trial. Log in with "
                "POST /api/v1/auth/login, then press Authorize and paste the access_token."
            },
            "components": {
                "securitySchemes": {
                    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
                }
            },
        },
    }


def init_docs_assets(app: Flask) -> None:
    """Serve the Swagger UI files the interactive docs page loads."""
    folder = Path(swagger_ui.__file__).parent / "static"

    def asset(filename: str) -> Response:
        return send_from_directory(folder, filename, max_age=86400)

    app.add_url_rule(f"{API_PREFIX}/docs/assets/<path:filename>", "docs_asset", asset)


def documents_errors(blp: SmorestBlueprint, *statuses: int) -> Callable[[Any], Any]:
    """Declare the problem+json responses a view may answer, for the OpenAPI document."""

    def decorate(view: Any) -> Any:
        for status in statuses:
            view = blp.alt_response(status, response=http.HTTPStatus(status).name)(view)
        return view

    return decorate


class Parser(FlaskParser):
    """webargs reading the JSON body `content_types` parsed and checked, never its own
    parse of the raw bytes (which a 10,000-deep body or a 5,000-digit number crashes)."""

    def _raw_load_json(self, req: Any) -> Any:
        if not is_json_request(req) or not req.get_data(cache=True):
            return core.missing
        return content_types.json_body()


MAX_PAGE = 1_000_000  # offsets stay far inside every database's integers


class Blueprint(SmorestBlueprint):
    """Pagination defaults of the API contract: page_size 50, at most 500; page at most
    `MAX_PAGE` (documented, and a 422 beyond, rather than an offset no database holds)."""

    ARGUMENTS_PARSER = Parser()
    PAGINATION_ARGUMENTS_PARSER = Parser()
    DEFAULT_PAGINATION_PARAMETERS = {"page": 1, "page_size": 50, "max_page_size": 500}  # noqa: RUF012

    def paginate(self, *args: Any, **kwargs: Any) -> Callable[[Any], Any]:
        decorate = super().paginate(*args, **kwargs)

        def bounded(view: Any) -> Any:
            wrapper = decorate(view)
            # flask-smorest builds the parameters' schema inside `paginate`; bound its page.
            schema = wrapper._apidoc["pagination"]["parameters"]["schema"]
            schema._declared_fields["page"].validators.append(ma.validate.Range(max=MAX_PAGE))
            return wrapper

        return bounded


def protected(blp: Blueprint, *statuses: int, refresh: bool = False) -> Callable[[Any], Any]:
    """Authenticate before anything else (a caller without a valid token learns nothing
    about the arguments), and document the bearer scheme and the error responses.

    Put it on top of a view's decorators, so it runs first.
    """

    def decorate(view: Any) -> Any:
        view = documents_errors(blp, 401, *statuses)(view)
        view = blp.doc(security=[{"bearerAuth": []}])(view)

        @functools.wraps(view)
        def authenticated(*args: Any, **kwargs: Any) -> Any:
            current_actor(refresh=refresh)
            return view(*args, **kwargs)

        return authenticated

    return decorate


class QueryResults:
    """A SELECT that flask-smorest's `Page` can count and slice in the database."""

    def __init__(self, session: Session, query: Select[Any]) -> None:
        self.session = session
        self.query = query

    def __len__(self) -> int:
        counted = select(func.count()).select_from(self.query.order_by(None).subquery())
        return self.session.scalar(counted) or 0

    def __getitem__(self, window: slice) -> list[Any]:
        start = window.start or 0
        limited = self.query.offset(start).limit((window.stop or start) - start)
        return list(self.session.scalars(limited))
