"""Uploaded files at rest, over HTTP on the local backend: sealed in the upload folder
after a multipart and a resumable upload (and while one is staged), downloaded as the
exact plaintext, and their data keys rotated without touching a file. The S3 backend's
twins are in tests/api/diagnostics/test_uploads_s3.py; the format's own tests in
tests/services/diagnostics/test_envelope.py."""

from __future__ import annotations

import itertools
import re
import uuid
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.diagnostics import envelope
from services.diagnostics.models import UploadKey, UploadWrappingKey
from services.models import TusTransfer, Upload
from tests.api.diagnostics.test_tus import TUS, created, send
from tests.api.diagnostics.test_uploads import UPLOADS, fields_for, sha256, upload
from tests.checks import audit_events
from tests.conftest import AppFactory
from tests.factories.people import Headers

PATIENT_NAME = b"Jan Peeters"
# A glucose export naming its patient, long enough to span several sealed chunks.
NAMED_CSV = b"patient,measured_at,mmol_l\n" + b"".join(
    b"Jan Peeters,2026-11-%02dT08:00:00Z,%d.%d\n" % (day % 28 + 1, 4 + day % 6, day % 10)
    for day in range(40_000)
)


@pytest.fixture
def upload_app(make_app: AppFactory, tmp_path: Path) -> Flask:
    return make_app(DCT_UPLOAD_DIR=str(tmp_path))


@pytest.fixture
def app_client(upload_app: Flask) -> FlaskClient:
    return upload_app.test_client()


def raw_files(folder: Path) -> dict[str, bytes]:
    """Every file the backend holds (objects, temporary, staged), by its path."""
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in folder.rglob("*")
        if path.is_file()
    }


def assert_sealed(files: dict[str, bytes]) -> None:
    assert files
    for name, raw in files.items():
        assert PATIENT_NAME not in raw, name
        assert NAMED_CSV[:40] not in raw, name
        assert raw.startswith(envelope.HEADER), name


def tus_upload(client: FlaskClient, headers: Headers, content: bytes, folder: Path) -> str:
    """A resumable upload in three requests, one ending inside a sealed chunk; the
    staging area is checked between them. Returns the upload's id."""
    headers = {**headers, **TUS}
    url = created(client, headers, content, kind="glucose", filename="Jan Peeters.csv")
    cuts = [0, 5000, 2 * envelope.CHUNK + 1, len(content)]
    for start, end in itertools.pairwise(cuts):
        response = send(client, headers, url, content[start:end], start)
        assert response.status_code == 204, response.get_data(as_text=True)
        if end < len(content):
            assert_sealed(raw_files(folder))
    return response.headers["Upload-Record"].rsplit("/", 1)[1]


def download(client: FlaskClient, headers: Headers, upload_id: str) -> tuple[bytes, str]:
    response = client.get(f"{UPLOADS}/{upload_id}/content", headers=headers)
    assert response.status_code == 200
    return response.get_data(), response.headers["X-Content-SHA256"]


@pytest.mark.requirement("X-OPEN-SYSTEM")
def test_a_multipart_upload_is_stored_sealed_and_read_back_exactly(
    app_client, db, auth, enrolled, tmp_path
):
    sent = upload(
        app_client,
        auth("patient"),
        NAMED_CSV,
        fields_for(NAMED_CSV, kind="glucose"),
        filename="Jan Peeters.csv",
    ).get_json()

    files = raw_files(tmp_path)
    assert list(files) == [f"objects/{db.get(Upload, uuid.UUID(sent['id'])).storage_key}"]
    assert_sealed(files)
    assert len(next(iter(files.values()))) == envelope.sealed_size(len(NAMED_CSV))
    assert sent["sha256"] == sha256(NAMED_CSV)  # the plaintext's, as the client sent it
    assert download(app_client, auth("coordinator_a"), sent["id"]) == (NAMED_CSV, sent["sha256"])


def test_a_resumable_upload_is_staged_and_stored_sealed_and_read_back_exactly(
    app_client, db, auth, enrolled, tmp_path
):
    upload_id = tus_upload(app_client, auth("patient"), NAMED_CSV, tmp_path)

    files = raw_files(tmp_path)
    assert list(files) == [f"objects/{db.get(Upload, uuid.UUID(upload_id)).storage_key}"]
    assert_sealed(files)
    assert download(app_client, auth("patient"), upload_id) == (NAMED_CSV, sha256(NAMED_CSV))


def test_every_stored_file_has_its_own_wrapped_data_key(app_client, db, auth, enrolled):
    first = upload(app_client, auth("patient"), NAMED_CSV, fields_for(NAMED_CSV, kind="glucose"))
    second = upload(app_client, auth("patient"), NAMED_CSV, fields_for(NAMED_CSV, kind="glucose"))

    rows = [
        db.get(UploadKey, db.get(Upload, uuid.UUID(r.get_json()["id"])).storage_key)
        for r in (first, second)
    ]
    assert all(row is not None for row in rows)
    assert rows[0].wrapped_key != rows[1].wrapped_key
    assert len(rows[0].wrapped_key) == 12 + 32 + 16  # nonce, the key, tag: never in clear
    current = db.scalars(
        select(UploadWrappingKey.key_id).order_by(UploadWrappingKey.generation.desc())
    ).first()
    assert {row.key_id for row in rows} == {current}


def rotate(app: Flask) -> str:
    result = app.test_cli_runner().invoke(args=["uploads", "rotate-keys"])
    assert result.exit_code == 0, result.output
    found = re.search(r"key id ([0-9a-f]+) now wraps the data keys of (\d+) files", result.output)
    assert found, result.output
    return found.group(1)


def key_ids(db: Session) -> tuple[set[str], set[str | None], set[str]]:
    """The key ids of the files' keys, of the transfers' keys, and those listed."""
    db.expire_all()
    return (
        set(db.scalars(select(UploadKey.key_id))),
        set(db.scalars(select(TusTransfer.key_id).where(TusTransfer.key_id.is_not(None)))),
        set(db.scalars(select(UploadWrappingKey.key_id))),
    )


def test_rotation_rewraps_every_key_without_touching_a_file(
    upload_app, app_client, db, auth, enrolled, tmp_path
):
    patient = auth("patient")
    multipart = upload(
        app_client, patient, NAMED_CSV, fields_for(NAMED_CSV, kind="glucose")
    ).get_json()
    resumable = tus_upload(app_client, patient, NAMED_CSV[::-1], tmp_path)
    half = {**patient, **TUS}
    unfinished = created(app_client, half, NAMED_CSV, kind="glucose")
    assert send(app_client, half, unfinished, NAMED_CSV[:7000], 0).status_code == 204
    before = raw_files(tmp_path)
    (old,) = key_ids(db)[2]
    assert key_ids(db)[:2] == ({old}, {old})

    new = rotate(upload_app)

    assert new != old
    assert key_ids(db) == ({new}, {new}, {new})  # the old key id is gone everywhere
    assert raw_files(tmp_path) == before  # byte for byte: no object rewritten
    assert download(app_client, patient, multipart["id"])[0] == NAMED_CSV
    assert download(app_client, patient, resumable)[0] == NAMED_CSV[::-1]
    finished = send(app_client, half, unfinished, NAMED_CSV[7000:], 7000)
    assert finished.status_code == 204, finished.get_data(as_text=True)
    completed = finished.headers["Upload-Record"].rsplit("/", 1)[1]
    assert download(app_client, patient, completed)[0] == NAMED_CSV
    verified = upload_app.test_cli_runner().invoke(args=["uploads", "verify"])
    assert verified.exit_code == 0, verified.output
    assert "3 files checked: 0 failed, 3 intact" in verified.output
    (event,) = audit_events(db, "upload.keys_rotated", new)
    assert (event.actor_role, event.before, event.after) == (
        "system",
        {"key_ids": [old]},
        {"key_id": new, "files": 2, "transfers": 1},
    )


def test_rotating_again_retires_the_previous_key_id(upload_app, app_client, db, auth, enrolled):
    sent = upload(app_client, auth("patient"), NAMED_CSV, fields_for(NAMED_CSV, kind="glucose"))
    first = rotate(upload_app)

    second = rotate(upload_app)

    assert key_ids(db) == ({second}, set(), {second}) and first != second
    assert download(app_client, auth("patient"), sent.get_json()["id"])[0] == NAMED_CSV


def test_a_file_stored_before_encryption_is_still_read_and_verified(
    upload_app, app_client, db, auth, enrolled, tmp_path
):
    """A file from before migration 0010: its object in clear, no data key."""
    sent = upload(app_client, auth("patient"), NAMED_CSV, fields_for(NAMED_CSV, kind="glucose"))
    row = db.get(Upload, uuid.UUID(sent.get_json()["id"]))
    (tmp_path / "objects" / row.storage_key).write_bytes(NAMED_CSV)
    db.delete(db.get(UploadKey, row.storage_key))
    db.flush()

    assert download(app_client, auth("patient"), str(row.id))[0] == NAMED_CSV
    verified = upload_app.test_cli_runner().invoke(args=["uploads", "verify"])
    assert verified.exit_code == 0, verified.output
    assert "1 of them stored in clear" in verified.output
