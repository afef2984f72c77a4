"""Every error class answers RFC 9457 problem+json, and bad input leaves no trace."""

from __future__ import annotations

import json

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from api.errors import STATUSES
from services import errors as domain
from services.actor import Role
from services.models import AuditEvent, Study
from tests.checks import assert_problem, captured_logs, count
from tests.factories.people import PASSWORD, headers_for, login, make_staff, make_world, random_id

STUDY = {"code": "ERR1", "title": "Errors", "languages": ["en"], "default_timezone": "UTC"}


def admin_headers(client: FlaskClient, db: Session) -> dict[str, str]:
    return headers_for(client, make_staff(db, Role.ADMIN))


def test_malformed_json_is_a_400(client, db):
    response = client.post(
        "/api/v1/studies",
        headers=admin_headers(client, db),
        data='{"code": "ERR1", ',
        content_type="application/json",
    )

    assert_problem(response, 400)
    assert count(db, Study) == 0


def test_missing_token_is_a_401(client, db):
    body = assert_problem(client.get("/api/v1/me"), 401)
    assert "Bearer" in body["detail"]


def test_garbage_token_is_a_401(client, db):
    response = client.get("/api/v1/me", headers={"Authorization": "Bearer not.a.jwt"})
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_wrong_role_is_a_403_and_creates_nothing(client, db):
    world = make_world(db)
    studies_before = count(db, Study)

    response = client.post(
        "/api/v1/studies", headers=headers_for(client, world.coordinator_a), json=STUDY
    )

    assert_problem(response, 403)
    assert count(db, Study) == studies_before


def test_unknown_route_is_a_404(client, db):
    body = assert_problem(client.get("/api/v1/no-such-thing"), 404)
    assert body["instance"] == "/api/v1/no-such-thing"


def test_foreign_and_unknown_ids_are_the_same_404(client, db):
    world = make_world(db)
    headers = headers_for(client, world.coordinator_a)

    foreign = client.get(f"/api/v1/participants/{world.patient_b.participant.id}", headers=headers)
    unknown = client.get(f"/api/v1/participants/{random_id()}", headers=headers)

    assert assert_problem(foreign, 404)["title"] == assert_problem(unknown, 404)["title"]


def test_a_patient_asking_for_another_patient_gets_a_404(client, db):
    world = make_world(db)
    response = client.get(
        f"/api/v1/participants/{world.patient_b.participant.id}",
        headers=headers_for(client, world.patient_a.user),
    )
    assert_problem(response, 404)


def test_wrong_method_is_a_405_with_allow(client, db):
    response = client.delete("/api/v1/me")

    assert_problem(response, 405)
    assert "GET" in response.headers["Allow"]


def test_duplicate_is_a_409_and_leaves_no_trace(client, db):
    headers = admin_headers(client, db)
    assert client.post("/api/v1/studies", headers=headers, json=STUDY).status_code == 201
    events_before = count(db, AuditEvent)

    response = client.post("/api/v1/studies", headers=headers, json={**STUDY, "title": "Again"})

    assert_problem(response, 409)
    assert count(db, Study) == 1
    assert count(db, AuditEvent) == events_before


def test_body_over_the_limit_is_a_413(make_app, db):
    client = make_app(DCT_MAX_REQUEST_BYTES=1024).test_client()
    headers = headers_for(client, make_staff(db, Role.ADMIN))

    response = client.post("/api/v1/studies", headers=headers, json={**STUDY, "title": "x" * 2000})

    assert_problem(response, 413)
    assert count(db, Study) == 0


def test_non_json_body_is_a_415(client, db):
    response = client.post(
        "/api/v1/studies",
        headers=admin_headers(client, db),
        data="code=ERR1&title=Errors",
        content_type="text/plain",
    )

    body = assert_problem(response, 415)
    assert "application/json" in body["detail"]
    assert count(db, Study) == 0


def test_invalid_fields_are_a_422_with_errors_per_field(client, db):
    response = client.post(
        "/api/v1/studies",
        headers=admin_headers(client, db),
        json={"code": "", "languages": "en", "default_timezone": "UTC"},
    )

    body = assert_problem(response, 422)
    assert {"code", "title", "languages"} <= body["errors"].keys()
    assert count(db, Study) == 0


def test_a_rule_of_the_domain_is_a_422_with_its_field(client, db):
    response = client.post(
        "/api/v1/studies",
        headers=admin_headers(client, db),
        json={**STUDY, "default_timezone": "Mars/Olympus_Mons"},
    )

    body = assert_problem(response, 422)
    assert list(body["errors"]) == ["default_timezone"]
    assert count(db, Study) == 0


def test_naive_datetime_is_a_422(client, db):
    headers = admin_headers(client, db)
    for name in ("since", "until"):
        response = client.get(
            "/api/v1/audit", headers=headers, query_string={name: "2026-03-29T02:30:00"}
        )
        assert "naive" in assert_problem(response, 422)["errors"][name][0]


def test_a_locked_log_in_is_a_plain_401_problem(client, db):
    user = make_staff(db, Role.NURSE, sites=[make_world(db).site_a])
    for _ in range(5):
        wrong = client.post("/api/v1/auth/login", json={"email": user.email, "password": "nope"})
        assert_problem(wrong, 401)

    response = client.post("/api/v1/auth/login", json={"email": user.email, "password": PASSWORD})

    assert assert_problem(response, 401)["detail"] == "email, phone or password is wrong"


def test_rate_limited_address_is_a_429(make_app, db):
    client = make_app(DCT_LOGIN_RATE_LIMIT="2 per minute").test_client()
    user = make_staff(db, Role.ADMIN)
    login(client, user)
    login(client, user)

    response = client.post("/api/v1/auth/login", json={"email": user.email, "password": PASSWORD})

    body = assert_problem(response, 429)
    assert "too many requests" in body["detail"]


def test_unexpected_error_is_a_500_without_internals_and_logged_with_request_id(make_app):
    def explode() -> None:
        raise RuntimeError("secret internal state 0xdeadbeef")

    other = make_app()
    other.add_url_rule("/api/v1/explode", "explode", explode)
    with captured_logs() as output:
        response = other.test_client().get(
            "/api/v1/explode", headers={"X-Request-ID": "req-explode-1"}
        )

    body = assert_problem(response, 500)
    assert body["request_id"] == "req-explode-1"
    text = response.get_data(as_text=True)
    assert "RuntimeError" not in text
    assert "0xdeadbeef" not in text
    lines = [json.loads(line) for line in output.getvalue().splitlines()]
    errors = [line for line in lines if line["level"] == "ERROR"]
    assert len(errors) == 1
    assert errors[0]["request_id"] == "req-explode-1"
    assert "RuntimeError: secret internal state 0xdeadbeef" in errors[0]["exception"]


def test_authentication_comes_before_argument_validation(client):
    """A caller without a token learns nothing from validation messages."""
    response = client.get("/api/v1/audit?since=2026-01-01T00:00:00&page_size=9999")
    assert "errors" not in assert_problem(response, 401)


def _kinds(base: type[domain.DomainError]) -> list[type[domain.DomainError]]:
    return [base, *(kind for sub in base.__subclasses__() for kind in _kinds(sub))]


def test_domain_errors_carry_no_http_status_and_each_kernel_kind_has_one_here(app):
    """The domain names what went wrong; api/errors.py alone says which status that is,
    and an error defined in a package answers as the kernel kind it extends."""
    kernel = {
        kind
        for kind in vars(domain).values()
        if isinstance(kind, type) and issubclass(kind, domain.DomainError)
    }
    assert kernel <= set(STATUSES)
    with_status = [
        kind.__qualname__
        for kind in _kinds(domain.DomainError)
        if {"status", "status_code", "title"} & set(vars(kind))
    ]
    assert not with_status
