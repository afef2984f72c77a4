"""The whole served OpenAPI document fuzzed as each role (issue 12, finding 10): for
every operation, schemathesis generates requests (valid and invalid) from the document
itself, deterministic and bounded, and every answer must be no 5xx, match its
documented status, media type and schema, and be problem+json when it is an error.

Path parameters are the ids of a real world (a study, a participant enrolled with
visits, consent and a questionnaire answered), so requests reach the handlers instead
of stopping at 404. `DCT_FUZZ_EXAMPLES` sets the examples per operation and role
(default 3): `DCT_FUZZ_EXAMPLES=50 make test PYTEST_ARGS=tests/api/test_fuzz.py`.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from api import create_app
from api.errors import PROBLEM_JSON
from consent.models import Consent
from tests.conftest import app_settings
from tests.factories.epro import make_instance, make_questionnaire
from tests.factories.people import World, headers_for, user_of
from tests.factories.visits import enrolled_with_visits

# Several processes or racing threads: run by `make test`, skipped by `-m 'not slow'`.
pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("DCT_FUZZ_EXAMPLES", "3"))
ROLES = ("patient", "nurse_a", "coordinator_a", "monitor", "admin")

# Only the document is read from this app; requests go to the test's own app.
schema = schemathesis.openapi.from_wsgi(
    "/api/v1/openapi.json", create_app(app_settings("sqlite://"))
)
schema.config.seed = 20261203  # the same cases in every run


@schemathesis.check
def errors_are_problem_json(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx and 5xx answers application/problem+json (RFC 9457)."""
    if response.status_code >= 400:
        values = {name.lower(): value for name, value in response.headers.items()}
        media_type = values.get("content-type", [""])[0].split(";")[0]
        assert media_type == PROBLEM_JSON, (
            f"{response.status_code} answered {media_type or 'no media type'}, not {PROBLEM_JSON}"
        )
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    errors_are_problem_json,
]


@pytest.fixture
def ids(db: Session, world: World) -> dict[str, str]:
    """Path parameter values by name: real objects the roles may or may not reach."""
    visits = enrolled_with_visits(db, world)
    participant = world.patient_a.participant
    questionnaire = make_questionnaire(db, world.study, world.coordinator_a)
    instance = make_instance(db, participant, questionnaire)
    consent = db.scalars(select(Consent).where(Consent.participant_id == participant.id)).one()
    ids = {
        "study_id": world.study.id,
        "site_id": world.site_a.id,
        "participant_id": participant.id,
        "visit_id": visits[0].id,
        "user_id": world.nurse_a.id,
        "consent_id": consent.id,
        "document_id": consent.document_id,
        "questionnaire_id": questionnaire.id,
        "instance_id": instance.id,
    }
    return {name: str(value) for name, value in ids.items()}


@pytest.fixture
def logins(client: Any, world: World) -> dict[str, dict[str, str]]:
    return {role: headers_for(client, user_of(world, role)) for role in ROLES}


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(case, app: Flask, ids, logins):
    """Each generated request is sent as every role (one world per operation: building
    it is most of the cost)."""
    if case.path_parameters:
        case.path_parameters = {
            name: ids.get(name, value) for name, value in case.path_parameters.items()
        }
    for role, headers in logins.items():
        try:
            case.call_and_validate(app=app, headers=headers, checks=CHECKS)
        except Exception as failure:
            failure.add_note(f"sent as {role}")
            raise
