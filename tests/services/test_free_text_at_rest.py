"""Free text people type and the signed consent PDF at rest (issue 12, findings 1 and
3): read the raw columns with plain SQL, as a stolen backup would."""

from __future__ import annotations

import hashlib
import json

import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import select

from consent.models import Consent
from services import crypto
from tests.factories.free_text import (
    JSON_COLUMNS,
    Stored,
    as_text,
    model_value,
    raw_value,
    write_free_text,
)
from tests.factories.people import headers_for


@pytest.fixture
def stored(db, world) -> list[Stored]:
    return write_free_text(db, world)


def opened(raw: object, stored: Stored) -> object:
    """The raw value decrypted with the column's purpose, as the model reads it."""
    if stored.column == "pdf":
        return crypto.decrypt_bytes(bytes(raw), stored.purpose)  # type: ignore[arg-type]
    is_json = stored.purpose in JSON_COLUMNS
    token = json.loads(raw) if is_json and raw.startswith('"') else raw
    plain = crypto.decrypt(token, stored.purpose)
    return json.loads(plain) if is_json else plain


def test_every_free_text_column_holds_ciphertext_of_what_was_typed(connection, stored):
    raws = [raw_value(connection, value) for value in stored]
    for value, raw in zip(stored, raws, strict=True):
        for secret in value.secrets:
            assert secret not in as_text(raw), f"{secret!r} readable in {value.purpose}"
    for value, raw in zip(stored, raws, strict=True):
        assert opened(raw, value) == value.value, value.purpose


def test_the_models_read_back_what_was_typed(db, stored):
    db.expire_all()
    for value in stored:
        assert model_value(db, value) == value.value, value.purpose


def test_no_free_text_readable_anywhere_in_those_tables(connection, stored):
    """Not only the columns: nothing else in the rows copies the text in clear (the
    audit trail is checked by its own tests)."""
    for table in {value.table for value in stored}:
        rows = connection.exec_driver_sql(f"SELECT * FROM {table}").all()  # noqa: S608
        dump = "\n".join(" | ".join(as_text(cell) for cell in row) for row in rows)
        for value in stored:
            for secret in value.secrets:
                assert secret not in dump, f"{secret!r} readable in {table}"


def test_a_token_moved_to_another_free_text_column_does_not_decrypt(connection, stored):
    cancel = next(value for value in stored if value.purpose == "visits.cancel_reason")
    with pytest.raises(InvalidTag):
        crypto.decrypt(raw_value(connection, cancel), "visits.deviation_reason")


def test_the_signed_pdf_is_stored_sealed_and_served_as_signed(client, connection, db, world):
    """The stored bytes are ciphertext; the download, its SHA-256 and ETag are those of
    the plaintext the participant receives, the same at every download."""
    write_free_text(db, world)
    consent = db.scalars(
        select(Consent).where(Consent.participant_id == world.patient_a.participant.id)
    ).one()
    headers = headers_for(client, world.coordinator_a)

    first = client.get(f"/api/v1/consents/{consent.id}/pdf", headers=headers)
    again = client.get(f"/api/v1/consents/{consent.id}/pdf", headers=headers)

    assert first.status_code == again.status_code == 200
    data = first.get_data()
    digest = hashlib.sha256(data).hexdigest()
    assert data.startswith(b"%PDF") and again.get_data() == data
    assert first.headers["ETag"] == again.headers["ETag"] == f'"{digest}"'
    assert first.headers["X-Content-SHA256"] == digest
    raw = bytes(
        raw_value(connection, Stored("consents", "pdf", consent.id, data, ())),
    )
    assert b"%PDF" not in raw
    assert crypto.decrypt_bytes(raw, "consents.pdf") == data
    stored_hash = raw_value(connection, Stored("consents", "pdf_sha256", consent.id, digest, ()))
    assert stored_hash == digest
