"""CORS for staff tools on another origin: only the origins of DCT_CORS_ORIGINS, only
under /api/v1/, no credentials; errors readable by a listed origin too."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.checks import assert_problem
from tests.factories.people import headers_for

TOOL = "https://tools.example.org"
OTHER = "https://evil.example"
STUDIES = "/api/v1/studies"


@pytest.fixture
def cors_app(make_app) -> Flask:
    return make_app(DCT_CORS_ORIGINS=f"{TOOL}, https://monitor.example.org:8443")


def preflight(client: FlaskClient, origin: str, path: str = STUDIES):
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


def cors_headers(response) -> list[str]:
    return [name for name, _ in response.headers.items() if name.startswith("Access-Control")]


def test_a_preflight_from_a_listed_origin_is_allowed(cors_app):
    response = preflight(cors_app.test_client(), TOOL)

    assert response.status_code in (200, 204)
    assert response.headers["Access-Control-Allow-Origin"] == TOOL
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "Access-Control-Allow-Credentials" not in response.headers  # bearer tokens only
    assert "Origin" in response.headers.get("Vary", "")


def test_a_preflight_for_tus_allows_its_headers(cors_app):
    response = cors_app.test_client().options(
        "/api/v1/uploads/tus/",
        headers={
            "Origin": TOOL,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "tus-resumable, upload-offset, content-type",
        },
    )

    assert response.headers["Access-Control-Allow-Origin"] == TOOL
    assert "upload-offset" in response.headers["Access-Control-Allow-Headers"].lower()


@pytest.mark.parametrize("origin", [OTHER, "https://tools.example.org.evil.example", "null"])
def test_a_preflight_from_another_origin_gets_no_cors_headers(cors_app, origin):
    response = preflight(cors_app.test_client(), origin)

    assert cors_headers(response) == []


def test_without_listed_origins_nobody_gets_cors_headers(client):
    response = preflight(client, TOOL)

    assert cors_headers(response) == []


def test_only_the_api_answers_cross_origin(cors_app):
    response = cors_app.test_client().get("/docs", headers={"Origin": TOOL})

    assert "Access-Control-Allow-Origin" not in response.headers


def test_an_answer_exposes_the_request_id_and_pagination(cors_app, world):
    client = cors_app.test_client()
    headers = {**headers_for(client, world.coordinator_a), "Origin": TOOL}

    response = client.get(f"{STUDIES}/{world.study.id}/participants", headers=headers)

    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == TOOL
    exposed = {
        name.strip().lower()
        for name in response.headers["Access-Control-Expose-Headers"].split(",")
    }
    assert {"x-request-id", "x-pagination", "upload-offset", "tus-resumable"} <= exposed


@pytest.mark.parametrize(("path", "status"), [(STUDIES, 401), ("/api/v1/no-such-thing", 404)])
def test_errors_reach_a_listed_origin_with_cors_headers(cors_app, path, status):
    response = cors_app.test_client().get(path, headers={"Origin": TOOL})

    assert_problem(response, status)
    assert response.headers["Access-Control-Allow-Origin"] == TOOL


@pytest.mark.parametrize("value", ["*", "tools.example.org", "https://tools.example.org/path"])
def test_a_setting_that_is_not_an_origin_is_refused(make_app, value):
    with pytest.raises(RuntimeError, match="DCT_CORS_ORIGINS"):
        make_app(DCT_CORS_ORIGINS=value)
