"""Operations: health, the OpenAPI document and docs, production configuration, logs."""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterator

import pytest

from api import config, create_app
from tests.checks import PROBLEM_JSON, captured_logs
from tests.conftest import TEST_AUDIT_KEY, TEST_JWT_SECRET, TEST_KEY
from tests.factories.people import headers_for, make_world

# The "Operations", "Identity and access", "eConsent" and "Home-nurse visits" tables
# of API.md, path parameters as {}.
CONTRACT = {
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/refresh"),
    ("post", "/api/v1/auth/logout"),
    ("post", "/api/v1/auth/activate"),
    ("get", "/api/v1/me"),
    ("post", "/api/v1/studies"),
    ("get", "/api/v1/studies"),
    ("post", "/api/v1/studies/{}/sites"),
    ("get", "/api/v1/studies/{}/sites"),
    ("post", "/api/v1/users"),
    ("get", "/api/v1/users"),
    ("post", "/api/v1/studies/{}/participants"),
    ("get", "/api/v1/studies/{}/participants"),
    ("post", "/api/v1/participants/{}/activation-code"),
    ("get", "/api/v1/participants/{}"),
    ("patch", "/api/v1/participants/{}"),
    ("get", "/api/v1/audit"),
    ("post", "/api/v1/participants/{}/enroll"),
    # eConsent
    ("post", "/api/v1/studies/{}/consent-documents"),
    ("post", "/api/v1/consent-documents/{}/approve"),
    ("get", "/api/v1/consent-documents/{}"),
    ("post", "/api/v1/participants/{}/consent-discussions"),
    ("get", "/api/v1/me/consents"),
    ("post", "/api/v1/consent-documents/{}/signatures"),
    ("get", "/api/v1/participants/{}/consents"),
    ("post", "/api/v1/consents/{}/withdraw"),
    ("get", "/api/v1/consents/{}/pdf"),
    # Home-nurse visits
    ("put", "/api/v1/studies/{}/visit-definitions"),
    ("get", "/api/v1/studies/{}/visit-definitions"),
    ("put", "/api/v1/nurses/{}/availability"),
    ("get", "/api/v1/nurses/{}/availability"),
    ("put", "/api/v1/nurses/{}/delegations"),
    ("get", "/api/v1/nurses/{}/delegations"),
    ("get", "/api/v1/participants/{}/visits"),
    ("get", "/api/v1/visits/{}/slots"),
    ("post", "/api/v1/visits/{}/schedule"),
    ("post", "/api/v1/visits/{}/confirm"),
    ("post", "/api/v1/visits/{}/check-in"),
    ("post", "/api/v1/visits/{}/check-out"),
    ("post", "/api/v1/visits/{}/missed"),
    ("post", "/api/v1/visits/{}/cancel"),
    ("get", "/api/v1/me/visits"),
    ("post", "/api/v1/me/calendar-token"),
    ("delete", "/api/v1/me/calendar-token"),
    ("get", "/api/v1/me/visits.ics"),
    # ePRO
    ("post", "/api/v1/studies/{}/questionnaires"),
    ("get", "/api/v1/studies/{}/questionnaires"),
    ("post", "/api/v1/questionnaires/{}/publish"),
    ("get", "/api/v1/questionnaires/{}"),
    ("get", "/api/v1/me/epro/due"),
    ("post", "/api/v1/epro/responses"),
    ("post", "/api/v1/epro/responses/batch"),
    ("get", "/api/v1/participants/{}/epro/responses"),
    ("get", "/api/v1/epro/responses/{}"),
    ("get", "/api/v1/studies/{}/reports/epro-compliance"),
    # Remote diagnostics
    ("post", "/api/v1/uploads"),
    ("get", "/api/v1/uploads/{}"),
    ("get", "/api/v1/uploads/{}/content"),
    ("get", "/api/v1/participants/{}/uploads"),
    ("post", "/api/v1/participants/{}/readings"),
    ("get", "/api/v1/participants/{}/readings"),
    ("get", "/api/v1/readings/{}"),
    ("get", "/api/v1/readings/{}/fhir"),
    ("put", "/api/v1/studies/{}/reading-thresholds"),
    ("get", "/api/v1/studies/{}/reading-thresholds"),
    ("get", "/api/v1/studies/{}/readings/flagged"),
    ("post", "/api/v1/uploads/tus/"),
    ("patch", "/api/v1/uploads/tus/{}"),
    ("delete", "/api/v1/uploads/tus/{}"),
    # Reminders
    ("get", "/api/v1/me/notification-preferences"),
    ("put", "/api/v1/me/notification-preferences"),
    ("get", "/api/v1/participants/{}/notifications"),
    ("post", "/api/v1/webhooks/twilio/status"),
    ("post", "/api/v1/webhooks/twilio/inbound"),
    # Accounts
    ("post", "/api/v1/auth/password"),
    ("post", "/api/v1/auth/password-reset"),
    ("post", "/api/v1/auth/password-reset/confirm"),
    ("post", "/api/v1/participants/{}/password-reset"),
    ("post", "/api/v1/users/{}/password-reset"),
    ("patch", "/api/v1/users/{}"),
    ("post", "/api/v1/users/{}/deactivate"),
    ("post", "/api/v1/users/{}/reactivate"),
    ("post", "/api/v1/users/{}/unlock"),
    ("patch", "/api/v1/studies/{}"),
    ("patch", "/api/v1/sites/{}"),
}
PUBLIC = {
    "/healthz",
    "/readyz",
    "/api/v1/auth/login",
    "/api/v1/auth/activate",
    "/api/v1/auth/password-reset",  # the holder has no password: the code is the credential
    "/api/v1/auth/password-reset/confirm",
    "/api/v1/me/visits.ics",  # the calendar feed: its token is the credential
    "/api/v1/webhooks/twilio/status",  # Twilio's signature is the credential
    "/api/v1/webhooks/twilio/inbound",
}
METHODS = {"get", "post", "put", "patch", "delete"}


def random_secret(size: int) -> str:
    return base64.urlsafe_b64encode(os.urandom(size)).decode()


def production(**settings: object) -> dict[str, object]:
    return {
        "DCT_ENV": "production",
        "JWT_SECRET_KEY": TEST_JWT_SECRET,
        "DCT_ENCRYPTION_KEY": TEST_KEY,
        "DCT_AUDIT_KEY": base64.urlsafe_b64encode(TEST_AUDIT_KEY).decode(),
        "DCT_PASSWORD_HASH_CHEAP": False,
        "DCT_SMS_GATEWAY": "twilio",
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": random_secret(24),
        "TWILIO_MESSAGING_SERVICE_SID": "MG" + "0" * 32,
        "PUBLIC_BASE_URL": "https://dct.example.org",
        "DCT_EMAIL_GATEWAY": "none",
        **settings,
    }


@pytest.fixture(scope="module")
def spec(app) -> dict:
    response = app.test_client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def operations(spec: dict) -> Iterator[tuple[str, str, dict]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


def test_healthz_answers(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_answers_when_the_database_does(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready"}


def test_openapi_is_3_1_and_lists_the_contract(spec):
    assert spec["openapi"].startswith("3.1.")
    served = {(method, re.sub(r"\{[^}]+\}", "{}", path)) for method, path, _ in operations(spec)}
    assert served >= CONTRACT


def test_protected_operations_declare_bearer_auth_and_401(spec):
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    protected = [(m, p, op) for m, p, op in operations(spec) if p not in PUBLIC]
    assert len(protected) >= len(CONTRACT) - len(PUBLIC)
    for method, path, operation in protected:
        assert operation.get("security") == [{"bearerAuth": []}], (method, path)
        assert "401" in operation["responses"], (method, path)


def test_error_responses_are_documented_as_problem_json(spec):
    for method, path, operation in operations(spec):
        for status, response in operation["responses"].items():
            if status != "default" and int(status) < 400:
                continue
            if "$ref" in response:
                response = spec["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
            assert list(response["content"]) == [PROBLEM_JSON], (method, path, status)
            schema = response["content"][PROBLEM_JSON]["schema"]
            assert schema == {"$ref": "#/components/schemas/Problem"}


def test_every_answer_and_body_has_a_schema(spec):
    for method, path, operation in operations(spec):
        for status, response in operation["responses"].items():
            if status.startswith("2") and status != "204":
                assert response["content"], (method, path)
                for media in response["content"].values():  # JSON, or a file (the signed PDF)
                    assert "schema" in media, (method, path)
        if "requestBody" in operation:
            for media in operation["requestBody"]["content"].values():
                assert "schema" in media, (method, path)


def test_docs_are_served_as_html(client):
    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    text = response.get_data(as_text=True)
    assert "swagger-ui" in text
    assert "/api/v1/openapi.json" in text


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        ({"JWT_SECRET_KEY": config.DEV_JWT_SECRET}, "JWT_SECRET_KEY"),
        ({"JWT_SECRET_KEY": "x" * 31}, "JWT_SECRET_KEY"),
        ({"DCT_ENCRYPTION_KEY": config.DEV_ENCRYPTION_KEY}, "DCT_ENCRYPTION_KEY"),
        ({"DCT_PASSWORD_HASH_CHEAP": True}, "DCT_PASSWORD_HASH_CHEAP"),
        ({"DCT_SMS_GATEWAY": "console"}, "DCT_SMS_GATEWAY"),
        ({"PUBLIC_BASE_URL": "http://127.0.0.1:5000"}, "PUBLIC_BASE_URL"),
    ],
)
@pytest.mark.requirement("X-OPEN-SYSTEM")
def test_production_refuses_development_secrets(database_url, settings, complaint):
    with pytest.raises(RuntimeError, match=complaint):
        config.load(production(**settings))
    with pytest.raises(RuntimeError, match="refusing to start in production"):
        create_app(production(DATABASE_URL=database_url, **settings))


def test_production_refuses_the_defaults(monkeypatch):
    for name in ("JWT_SECRET_KEY", "DCT_ENCRYPTION_KEY", "DCT_PASSWORD_HASH_CHEAP"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DCT_ENV", "production")

    with pytest.raises(RuntimeError, match=r"JWT_SECRET_KEY.*DCT_ENCRYPTION_KEY"):
        create_app()


def test_production_starts_with_proper_secrets(make_app):
    app = make_app(**production())
    assert app.config["DCT_ENV"] == "production"
    assert app.test_client().get("/readyz").status_code == 200
    other = config.load(production(JWT_SECRET_KEY=random_secret(32)))
    assert other["DCT_ENV"] == "production"


@pytest.mark.parametrize(
    "key", [random_secret(16), random_secret(48), "not base64 at all!", ""], ids=str
)
def test_an_encryption_key_that_is_not_32_bytes_is_refused(key):
    with pytest.raises(ValueError, match="DCT_ENCRYPTION_KEY"):
        config.load({"DCT_ENCRYPTION_KEY": key})


def test_request_id_is_echoed_or_generated(client):
    assert client.get("/healthz", headers={"X-Request-ID": "app-42.a_b"}).headers[
        "X-Request-ID"
    ] == ("app-42.a_b")
    for sent in ({}, {"X-Request-ID": "has spaces"}, {"X-Request-ID": "x" * 65}):
        generated = client.get("/healthz", headers=sent).headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", generated)


def test_logs_are_json_lines_with_request_id_and_no_personal_data(client, db):
    world = make_world(db)
    person = {
        "site_id": str(world.site_a.id),
        "full_name": "Griet Vandenbroucke",
        "phone": "+32 475 11 22 33",
        "email": "griet.vdb@example.org",
        "locale": "nl",
        "timezone": "Europe/Brussels",
        "address": "Veldstraat 12, 9000 Gent",
        "date_of_birth": "1958-02-03",
    }
    with captured_logs() as output:
        headers = headers_for(client, world.coordinator_a)
        created = client.post(
            f"/api/v1/studies/{world.study.id}/participants",
            headers={**headers, "X-Request-ID": "log-test-create"},
            json=person,
        )
        assert created.status_code == 201, created.get_json()
        client.get(f"/api/v1/participants/{created.get_json()['id']}", headers=headers)
        failed = client.post(
            "/api/v1/auth/login", json={"email": person["email"], "password": "wrong-password"}
        )
        assert failed.status_code == 401

    text = output.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    assert len(lines) >= 4
    assert all(
        {"time", "level", "logger", "message", "request_id"} <= line.keys() for line in lines
    )
    create_line = next(line for line in lines if line["request_id"] == "log-test-create")
    assert create_line["path"] == "/api/v1/studies/<uuid:study_id>/participants"
    assert create_line["status"] == 201
    secrets = [v for k, v in person.items() if k not in ("site_id", "locale", "timezone")]
    for value in [*secrets, "+32475112233", world.coordinator_a.email, "wrong-password"]:
        assert value not in text


def test_docs_assets_are_served_locally_and_confined_to_their_folder(client):
    page = client.get("/api/v1/docs").get_data(as_text=True)
    assert "/api/v1/docs/assets/swagger-ui-bundle.js" in page
    with client.get("/api/v1/docs/assets/swagger-ui-bundle.js") as bundle:
        assert bundle.status_code == 200
        assert b"SwaggerUIBundle" in bundle.data
    assert client.get("/api/v1/docs/assets/../../../../etc/passwd").status_code == 404


def test_answers_are_never_cached_nor_sniffed(client):
    response = client.get("/healthz")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("DCT_LOGIN_ALERT_CEILING", 0),
        ("DCT_MAX_FAILED_LOGINS", 0),
        ("DCT_LOCKOUT_MINUTES", -1),
        ("DCT_RESET_CODE_MINUTES", 0),
        ("DCT_EMAIL_MAX_ATTEMPTS", 0),
        ("DCT_SIGNATURE_HOLD_HOURS", -1),
    ],
)
def test_a_setting_that_would_switch_a_protection_off_is_refused(key, value):
    with pytest.raises(RuntimeError, match=key):
        config.load({key: value})
