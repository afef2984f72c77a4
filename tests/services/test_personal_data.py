"""Direct identifiers at rest: read the raw tables with plain SQL, as a stolen backup would."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import Connection, TextClause, Uuid, bindparam, select, text
from sqlalchemy.orm import Session

from services import crypto
from services.db import Base
from services.models import AuditEvent, User
from tests.factories.people import PASSWORD, activate_with_code, headers_for, make_world


@dataclass
class Person:
    id: str
    secrets: tuple[str, ...]


PATIENT = {
    "full_name": "Marie Peeters",
    "phone": "0485 11 22 33",
    "email": "Marie.Peeters@Example.org",
    "locale": "nl",
    "timezone": "Europe/Brussels",
    "address": "Kerkstraat 7, 9000 Gent",
    "date_of_birth": "1961-04-23",
}
PATIENT_SECRETS = (
    "Marie Peeters",
    "Peeters",
    "+32485112233",
    "485112233",
    "marie.peeters@example.org",
    "Marie.Peeters",
    "Kerkstraat",
    "1961-04-23",
)
EMAIL_LESS = {
    **PATIENT,
    "full_name": "Jozef Vermeulen",
    "phone": "+32 496 55 44 33",
    "email": None,
    "address": "Veldstraat 12, 2000 Antwerpen",
    "date_of_birth": "1948-11-02",
}
EMAIL_LESS_SECRETS = ("Jozef Vermeulen", "Vermeulen", "+32496554433", "496554433", "Veldstraat")
NEW_CONTACT = {
    "full_name": "Marie Janssens",
    "phone": "+32 477 66 55 44",
    "address": "Markt 3, Gent",
}
NEW_CONTACT_SECRETS = ("Janssens", "+32477665544", "477665544", "Markt 3")
STAFF = {
    "email": "Dirk.Claes@Hospital.example",
    "full_name": "Dirk Claes",
    "role": "admin",
    "phone": "+32 2 555 12 34",
}
STAFF_SECRETS = (
    "Dirk Claes",
    "dirk.claes@hospital.example",
    "Dirk.Claes",
    "+3225551234",
    "25551234",
)


@pytest.fixture
def people(client, db) -> dict[str, Person]:
    """A patient, an email-less patient and a staff member created through the API, then
    the patient's contact data changed, so every path that writes identifiers ran."""
    world = make_world(db)
    coordinator = headers_for(client, world.coordinator_a)
    url = f"/api/v1/studies/{world.study.id}/participants"
    site_id = str(world.site_a.id)
    patient = client.post(url, json={**PATIENT, "site_id": site_id}, headers=coordinator)
    email_less = client.post(url, json={**EMAIL_LESS, "site_id": site_id}, headers=coordinator)
    staff = client.post("/api/v1/users", json=STAFF, headers=headers_for(client, world.admin))
    assert (patient.status_code, email_less.status_code, staff.status_code) == (201, 201, 201)
    participant_id = patient.get_json()["id"]
    changed = client.patch(
        f"/api/v1/participants/{participant_id}", json=NEW_CONTACT, headers=coordinator
    )
    assert changed.status_code == 200
    activated = activate_with_code(client, email_less.get_json()["activation_code"])
    assert activated.status_code == 200
    return {
        "patient": Person(participant_id, PATIENT_SECRETS + NEW_CONTACT_SECRETS),
        "email_less": Person(email_less.get_json()["id"], EMAIL_LESS_SECRETS),
        "staff": Person(staff.get_json()["id"], STAFF_SECRETS),
    }


def all_secrets(people: dict[str, Person]) -> list[str]:
    return [secret for person in people.values() for secret in person.secrets]


def raw_rows(connection: Connection, table: str) -> list[str]:
    """Every row of a table as the text of all its columns, read without the ORM."""
    rows = connection.execute(text(f"SELECT * FROM {table}")).all()  # noqa: S608 - our own names
    return [" | ".join(str(value) for value in row) for row in rows]


def by_id(statement: str) -> TextClause:
    """Plain SQL with an `:id` bound as a UUID (hex text on SQLite, uuid on PostgreSQL)."""
    return text(statement).bindparams(bindparam("id", type_=Uuid()))


def as_uuid(raw: object) -> uuid.UUID:
    return uuid.UUID(str(raw))


def user_id_of_participant(connection: Connection, participant_id: str) -> uuid.UUID:
    return connection.execute(
        select(Base.metadata.tables["participants"].c.user_id).where(
            Base.metadata.tables["participants"].c.id == uuid.UUID(participant_id)
        )
    ).scalar_one()


@pytest.mark.parametrize("table", ["users", "participants"])
def test_no_plaintext_identifier_in_people_tables(connection, people, table):
    rows = raw_rows(connection, table)
    assert rows
    for row in rows:
        for secret in all_secrets(people):
            assert secret.lower() not in row.lower(), f"{secret!r} in plain text in {table}"


def test_identifier_columns_hold_ciphertext_that_decrypts(connection, people):
    user_id = user_id_of_participant(connection, people["patient"].id)
    user = connection.execute(
        by_id("SELECT full_name, phone, email FROM users WHERE id = :id"), {"id": user_id}
    ).one()
    participant = connection.execute(
        by_id("SELECT address, date_of_birth FROM participants WHERE user_id = :id"),
        {"id": user_id},
    ).one()
    assert all(value.startswith("v1:") for value in (*user, *participant))
    assert crypto.decrypt(user.full_name, "users.full_name") == "Marie Janssens"
    assert crypto.decrypt(user.phone, "users.phone") == "+32477665544"
    assert crypto.decrypt(user.email, "users.email") == "marie.peeters@example.org"
    assert crypto.decrypt(participant.address, "participants.address") == "Markt 3, Gent"
    assert crypto.decrypt(participant.date_of_birth, "participants.date_of_birth") == "1961-04-23"


@pytest.mark.requirement("X-GDPR")
def test_no_plaintext_identifier_anywhere_in_the_database(connection, people):
    """Audit payloads, sessions, codes, chain heads: no table may copy an identifier."""
    for table in Base.metadata.sorted_tables:
        for row in raw_rows(connection, table.name):
            for secret in all_secrets(people):
                assert secret.lower() not in row.lower(), f"{secret!r} in plain text in {table}"


def test_audit_events_hold_no_identifier_values(connection, db, people):
    """Not in the stored rows, nor inside their payloads once decrypted: a change to an
    identifier is recorded by name only."""
    rows = raw_rows(connection, "audit_events")
    text_of_all = "\n".join(rows).lower()
    assert people["patient"].id in text_of_all  # the events are there, by id
    payloads = "\n".join(
        json.dumps([event.before, event.after]) for event in db.scalars(select(AuditEvent))
    ).lower()
    assert "[changed]" in payloads
    for secret in all_secrets(people):
        assert secret.lower() not in text_of_all
        assert secret.lower() not in payloads


def test_phone_blind_index_finds_the_user(connection, client, people):
    index = crypto.blind_index("+32496554433", "phone")
    found = connection.execute(
        text("SELECT id, role, email_index FROM users WHERE phone_index = :index"), {"index": index}
    ).all()
    assert len(found) == 1
    assert found[0].role == "patient"
    assert found[0].email_index is None
    assert as_uuid(found[0].id) == user_id_of_participant(connection, people["email_less"].id)
    # The same index is how an email-less patient logs in with their phone.
    login = client.post("/api/v1/auth/login", json={"phone": "+32496554433", "password": PASSWORD})
    assert login.status_code == 200


def test_phone_blind_index_follows_a_changed_phone(connection, people):
    user_id = user_id_of_participant(connection, people["patient"].id)
    old = crypto.blind_index("+32485112233", "phone")
    new = crypto.blind_index("+32477665544", "phone")
    assert (
        connection.execute(
            text("SELECT count(*) FROM users WHERE phone_index = :index"), {"index": old}
        ).scalar_one()
        == 0
    )
    found = connection.execute(
        text("SELECT id FROM users WHERE phone_index = :index"), {"index": new}
    ).scalar_one()
    assert as_uuid(found) == user_id


def test_ciphertext_copied_into_another_column_does_not_decrypt(connection, db: Session, people):
    user_id = user_id_of_participant(connection, people["patient"].id)
    name = connection.execute(
        by_id("SELECT full_name FROM users WHERE id = :id"), {"id": user_id}
    ).scalar_one()
    with pytest.raises(InvalidTag):
        crypto.decrypt(name, "users.phone")

    connection.execute(by_id("UPDATE users SET phone = full_name WHERE id = :id"), {"id": user_id})
    with pytest.raises(InvalidTag):
        db.scalars(select(User.phone).where(User.id == user_id)).one()
    assert db.scalars(select(User.full_name).where(User.id == user_id)).one() == "Marie Janssens"
