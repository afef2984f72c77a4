"""No input answers a 5xx (issue 12, finding 6): hostile JSON, numbers, pages, strings and
forged tokens all answer a 4xx problem+json and leave nothing behind; names, addresses
and consent document text refuse control characters and bidirectional overrides."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from consent.models import ConsentDocument
from services import validation
from services.errors import Invalid
from services.models import AuditEvent, Participant, Study, User
from tests.checks import assert_problem, count
from tests.factories.people import World, headers_for, login, make_world, user_of

# --- the endpoints the hostile bodies are sent to ------------------------------------


@dataclass(frozen=True)
class Write:
    """A JSON write as one member of the world, with the string field a test spoils."""

    who: str | None  # None: no token (log-in)
    path: Callable[[World], str]
    body: Callable[[World], dict[str, Any]]
    field: str
    model: type


WRITES = {
    "login": Write(
        None,
        lambda w: "/api/v1/auth/login",
        lambda w: {"email": "nobody@example.org", "password": "correct horse battery"},
        "email",
        User,
    ),
    "study": Write(
        "admin",
        lambda w: "/api/v1/studies",
        lambda w: {
            "code": "ROB1",
            "title": "Robust",
            "languages": ["en"],
            "default_timezone": "UTC",
        },
        "title",
        Study,
    ),
    "staff": Write(
        "admin",
        lambda w: "/api/v1/users",
        lambda w: {
            "email": "robust.nurse@example.org",
            "full_name": "Robust Nurse",
            "role": "nurse",
            "site_ids": [str(w.site_a.id)],
        },
        "full_name",
        User,
    ),
    "participant": Write(
        "coordinator_a",
        lambda w: f"/api/v1/studies/{w.study.id}/participants",
        lambda w: {
            "site_id": str(w.site_a.id),
            "full_name": "Robust Patient",
            "phone": "+32470999111",
            "locale": "nl",
            "timezone": "Europe/Brussels",
            "address": "Straat 1, 1000 Brussel",
        },
        "address",
        Participant,
    ),
    "consent_document": Write(
        "coordinator_a",
        lambda w: f"/api/v1/studies/{w.study.id}/consent-documents",
        lambda w: {
            "language": "en",
            "title": "Informed consent",
            "body_markdown": "## Why\n\nWe study home monitoring.",
            "signer_roles": ["participant", "investigator"],
        },
        "body_markdown",
        ConsentDocument,
    ),
}


@dataclass
class Attempt:
    """One write tried with a spoilt body: logged in first (a log-in is audited), then
    the rows counted, so `nothing_stored` sees only what the write left."""

    client: FlaskClient
    db: Session
    world: World
    write: Write
    headers: dict[str, str]
    before: tuple[int, int]

    def send(self, raw: str) -> Any:
        return self.client.post(
            self.write.path(self.world),
            data=raw,
            content_type="application/json",
            headers=self.headers,
        )

    def body(self, **changes: Any) -> dict[str, Any]:
        return {**self.write.body(self.world), **changes}

    def nothing_stored(self) -> None:
        assert _counts(self.db, self.write.model) == self.before


def _counts(db: Session, model: type) -> tuple[int, int]:
    return count(db, model), count(db, AuditEvent)


def attempt(client: FlaskClient, db: Session, name: str) -> Attempt:
    world, write = make_world(db), WRITES[name]
    headers = headers_for(client, user_of(world, write.who)) if write.who else {}
    return Attempt(client, db, world, write, headers, _counts(db, write.model))


# --- JSON bodies: depth, numbers, strings ---------------------------------------------


@pytest.mark.parametrize("name", WRITES)
@pytest.mark.parametrize("opening", ["[", '{"a":'])
def test_json_nested_10000_deep_is_a_400(client, db, name, opening):
    tried = attempt(client, db, name)
    closing = "]" if opening == "[" else "}"

    response = tried.send(opening * 10_000 + "1" + closing * 10_000)

    assert "deep" in assert_problem(response, 400)["detail"]
    tried.nothing_stored()


def test_json_nested_a_little_deeper_than_allowed_is_a_400(client, db):
    tried = attempt(client, db, "study")
    nested: Any = "x"
    for _ in range(100):
        nested = [nested]

    response = tried.send(json.dumps(tried.body(languages=nested)))

    assert "deep" in assert_problem(response, 400)["detail"]
    tried.nothing_stored()


def _with_literal(body: dict[str, Any], field: str, literal: str) -> str:
    """The body as JSON text with `literal` (not valid Python) as the field's value."""
    return json.dumps({**body, field: "PLACEHOLDER"}).replace('"PLACEHOLDER"', literal)


@pytest.mark.parametrize("name", WRITES)
@pytest.mark.parametrize("digits", [4_301, 20, 100_000])
def test_huge_integer_is_a_422_naming_the_field(client, db, name, digits):
    tried = attempt(client, db, name)

    response = tried.send(_with_literal(tried.body(), tried.write.field, "9" * digits))

    assert tried.write.field in assert_problem(response, 422)["errors"]
    tried.nothing_stored()


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_are_a_422(client, db, literal):
    tried = attempt(client, db, "consent_document")

    response = tried.send(_with_literal(tried.body(), "quiz_pass_mark", literal))

    assert "quiz_pass_mark" in assert_problem(response, 422)["errors"]
    tried.nothing_stored()


def test_an_integer_too_large_for_the_database_is_a_422(client, db):
    tried = attempt(client, db, "consent_document")
    quiz = [{"question": "Can you stop?", "options": ["yes", "no"], "answer": "yes"}]

    response = tried.send(json.dumps(tried.body(quiz=quiz, quiz_pass_mark=2**40)))

    assert "quiz_pass_mark" in assert_problem(response, 422)["errors"]
    tried.nothing_stored()


@pytest.mark.parametrize("name", WRITES)
@pytest.mark.parametrize(
    "spoilt",
    [
        '"\\ud800x"',  # a lone high surrogate, as JSON escapes it
        '"x\\udfff"',  # a lone low surrogate
        '"a\\u0000b"',  # NUL, which PostgreSQL refuses in text
    ],
    ids=["high-surrogate", "low-surrogate", "nul"],
)
def test_unencodable_strings_are_a_422_naming_the_field(client, db, name, spoilt):
    tried = attempt(client, db, name)

    response = tried.send(_with_literal(tried.body(), tried.write.field, spoilt))

    assert tried.write.field in assert_problem(response, 422)["errors"]
    tried.nothing_stored()


def test_a_lone_surrogate_deep_in_a_list_is_named_by_its_path(client, db):
    tried = attempt(client, db, "consent_document")
    clauses = [{"code": "c1", "text": "fine"}, {"code": "c2", "text": "SPOILT"}]
    raw = json.dumps(tried.body(optional_clauses=clauses)).replace('"SPOILT"', '"\\ud83d"')

    response = tried.send(raw)

    assert "optional_clauses.1.text" in assert_problem(response, 422)["errors"]
    tried.nothing_stored()


def test_a_nul_in_a_key_is_a_422(client, db):
    tried = attempt(client, db, "study")
    raw = json.dumps(tried.body(PLACEHOLDER=1)).replace('"PLACEHOLDER"', '"ti\\u0000tle"')

    assert_problem(tried.send(raw), 422)
    tried.nothing_stored()


def test_a_surrogate_in_a_patch_is_a_422_and_changes_nothing(client, db):
    world = make_world(db)
    participant = world.patient_a.participant
    headers = headers_for(client, world.coordinator_a)
    before = count(db, AuditEvent)

    response = client.patch(
        f"/api/v1/participants/{participant.id}",
        data='{"address": "Straat \\udc00 9"}',
        content_type="application/json",
        headers=headers,
    )

    assert "address" in assert_problem(response, 422)["errors"]
    assert count(db, AuditEvent) == before


# --- query strings ------------------------------------------------------------------


LISTS = {
    "studies": ("admin", lambda w: "/api/v1/studies"),
    "users": ("admin", lambda w: "/api/v1/users"),
    "audit": ("admin", lambda w: "/api/v1/audit"),
    "participants": ("coordinator_a", lambda w: f"/api/v1/studies/{w.study.id}/participants"),
    "consent_documents": (
        "coordinator_a",
        lambda w: f"/api/v1/studies/{w.study.id}/consent-documents",
    ),
}


@pytest.mark.parametrize("name", LISTS)
@pytest.mark.parametrize(
    "query",
    ["page=99999999999999999999", "page=1000001", "page=" + "9" * 5000, "page_size=1e9"],
)
def test_out_of_range_pages_are_a_422(client, db, name, query):
    world = make_world(db)
    who, path = LISTS[name]

    response = client.get(
        f"{path(world)}?{query}", headers=headers_for(client, user_of(world, who))
    )

    assert_problem(response, 422)


def test_the_page_limit_is_documented(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    parameters = spec["paths"]["/api/v1/studies"]["get"]["parameters"]
    page = next(p for p in parameters if p["name"] == "page")
    assert page["schema"]["maximum"] == 1_000_000


@pytest.mark.parametrize("name", LISTS)
@pytest.mark.parametrize("value", ["%00", "a%00b"])
def test_a_nul_in_a_query_parameter_is_a_422(client, db, name, value):
    world = make_world(db)
    who, path = LISTS[name]

    response = client.get(
        f"{path(world)}?language={value}&action={value}&role={value}",
        headers=headers_for(client, user_of(world, who)),
    )

    assert_problem(response, 422)


def test_a_nul_in_a_path_is_a_404(client):
    assert_problem(client.get("/api/v1/docs/assets/a%00b.js"), 404)


# --- forged tokens (signed with the right key, malformed claims) ---------------------


def _unset(claims: dict[str, Any], name: str) -> dict[str, Any]:
    return {key: value for key, value in claims.items() if key != name}


FORGERIES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "sub-not-a-uuid": lambda c: {**c, "sub": "admin"},
    "sub-uuid-in-braces": lambda c: {**c, "sub": "{" + c["sub"] + "}"},
    "sub-a-number": lambda c: {**c, "sub": 12345},
    "sub-missing": lambda c: _unset(c, "sub"),
    "sid-missing": lambda c: _unset(c, "sid"),
    "sid-a-number": lambda c: {**c, "sid": 123},
    "sid-a-list": lambda c: {**c, "sid": [c["sid"]]},
    "sid-not-a-uuid": lambda c: {**c, "sid": "session"},
    "role-unknown": lambda c: {**c, "role": "superuser"},
    "role-another": lambda c: {**c, "role": "admin"},
    "role-missing": lambda c: _unset(c, "role"),
    "role-a-list": lambda c: {**c, "role": ["nurse"]},
    "type-missing": lambda c: _unset(c, "type"),
    "type-unknown": lambda c: {**c, "type": "id"},
    "jti-missing": lambda c: _unset(c, "jti"),
    "jti-an-object": lambda c: {**c, "jti": {"a": 1}},
    "extra-large-claim": lambda c: {**c, "blob": "x" * 100_000},
    "iat-a-string": lambda c: {**c, "iat": "yesterday"},
    "exp-a-string": lambda c: {**c, "exp": "tomorrow"},
}


def _forge(app: Flask, token: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> str:
    key = app.config["JWT_SECRET_KEY"]
    claims = jwt.decode(token, key, algorithms=["HS256"])
    return jwt.encode(change(claims), key, algorithm="HS256")


PROTECTED = [("GET", "/api/v1/me"), ("GET", "/api/v1/studies"), ("POST", "/api/v1/auth/logout")]


@pytest.mark.parametrize("forgery", FORGERIES)
@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_forged_access_tokens_are_a_401(app, client, db, forgery, method, path):
    world = make_world(db)
    token = login(client, world.nurse_a)["access_token"]
    forged = _forge(app, token, FORGERIES[forgery])

    response = client.open(path, method=method, headers={"Authorization": f"Bearer {forged}"})

    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "forgery", ["jti-missing", "jti-an-object", "sid-a-number", "sub-not-a-uuid", "role-unknown"]
)
def test_forged_refresh_tokens_are_a_401(app, client, db, forgery):
    world = make_world(db)
    token = login(client, world.nurse_a)["refresh_token"]
    forged = _forge(app, token, FORGERIES[forgery])

    response = client.post("/api/v1/auth/refresh", headers={"Authorization": f"Bearer {forged}"})

    assert_problem(response, 401)


def test_a_refresh_jti_that_is_not_a_uuid_is_a_401(app, client, db):
    world = make_world(db)
    token = login(client, world.nurse_a)["refresh_token"]
    forged = _forge(app, token, lambda c: {**c, "jti": "not-a-uuid"})

    response = client.post("/api/v1/auth/refresh", headers={"Authorization": f"Bearer {forged}"})

    assert_problem(response, 401)


def test_an_untouched_token_still_works(app, client, db):
    world = make_world(db)
    token = login(client, world.nurse_a)["access_token"]
    same = _forge(app, token, lambda c: c)
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {same}"}).status_code == 200


# --- names, addresses and document text ---------------------------------------------

SPOILERS = {
    "bell": "Ann\x07e",
    "escape": "Anne\x1b[2J",
    "delete": "An\x7fne",
    "c1-control": "An\x85ne",
    "file-separator": "An\x1cne",
    "nul": "An\x00ne",
    "rlo-override": "Anne \u202egnp.exe",
    "lro-override": "\u202dAnne",
    "rle-embedding": "\u202bAnne",
    "isolate": "\u2066Anne\u2069",
    "line-separator": "Anne\u2028Smith",
}


def _refused(response: Any, field: str) -> None:
    assert field in assert_problem(response, 422)["errors"]


@pytest.mark.parametrize("spoiler", SPOILERS)
@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("staff", "full_name"),
        ("participant", "full_name"),
        ("participant", "address"),
        ("consent_document", "title"),
        ("consent_document", "body_markdown"),
    ],
)
def test_names_addresses_and_document_text_refuse_controls(client, db, spoiler, name, field):
    tried = attempt(client, db, name)

    response = tried.send(json.dumps(tried.body(**{field: SPOILERS[spoiler]})))

    _refused(response, field)
    tried.nothing_stored()


@pytest.mark.parametrize("spoiler", ["escape", "rlo-override", "nul"])
@pytest.mark.parametrize("field", ["full_name", "address"])
def test_a_participant_update_refuses_controls(client, db, spoiler, field):
    world = make_world(db)
    participant = world.patient_a.participant
    headers = headers_for(client, world.coordinator_a)
    before = count(db, AuditEvent)

    response = client.patch(
        f"/api/v1/participants/{participant.id}", json={field: SPOILERS[spoiler]}, headers=headers
    )

    _refused(response, field)
    assert count(db, AuditEvent) == before


@pytest.mark.parametrize("spoiler", ["bell", "isolate"])
def test_clause_and_quiz_text_refuse_controls(client, db, spoiler):
    tried = attempt(client, db, "consent_document")
    text = SPOILERS[spoiler]
    body = tried.body(
        optional_clauses=[{"code": "c1", "text": text}],
        quiz=[{"question": text, "options": ["yes", "no"], "answer": "yes"}],
        quiz_pass_mark=1,
    )

    errors = assert_problem(tried.send(json.dumps(body)), 422)["errors"]

    assert {"optional_clauses.0.text", "quiz.0.question"} <= errors.keys()
    tried.nothing_stored()


@pytest.mark.parametrize(
    "name",
    ["José Ñúñez-Lötter", "محمد عبد الله", "李小龍", "O'Brien\u200dx", "Anne\u200fMarie"],
)
def test_real_names_are_accepted(name):
    assert validation.person_name(name) == name


def test_a_name_still_folds_ordinary_white_space():
    assert validation.person_name("  Anne \t Marie\n") == "Anne Marie"


def test_addresses_and_document_text_keep_their_line_breaks():
    assert validation.postal_address("Straat 1\n1000 Brussel") == "Straat 1\n1000 Brussel"
    assert validation.document_text("## A\r\n\n\tB", field="body") == "## A\r\n\n\tB"


@pytest.mark.parametrize("spoiler", SPOILERS)
def test_the_validators_refuse_controls_everywhere(spoiler):
    for check in (
        lambda v: validation.person_name(v),
        lambda v: validation.postal_address(v),
        lambda v: validation.document_text(v, field="body"),
        lambda v: validation.document_text(v, field="title", multiline=False),
    ):
        with pytest.raises(Invalid):
            check(SPOILERS[spoiler])
