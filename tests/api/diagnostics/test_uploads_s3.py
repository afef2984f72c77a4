"""The whole upload path on the S3 backend (moto's server over HTTP): a multipart
upload, a resumable one (both sealed in the bucket, staged parts too), a refused one
that leaves nothing in the bucket, a tampered object caught on download, and a key
rotation that leaves every object as it was."""

from __future__ import annotations

import hashlib
import os
import uuid

import boto3
import pytest
from flask.testing import FlaskClient

from services.diagnostics import envelope
from services.models import Upload
from tests.api.diagnostics.test_tus import TUS, created, send
from tests.api.diagnostics.test_uploads import UPLOADS, fields_for, upload
from tests.checks import audit_events, count
from tests.factories.people import headers_for
from tests.factories.visits import enrolled_with_visits
from tests.fakes.s3 import BUCKET

MiB = 1024 * 1024


@pytest.fixture
def prefix() -> str:
    return f"api-{uuid.uuid4().hex}/"


@pytest.fixture
def bucket(s3_endpoint: str, prefix: str):
    """What the app stored under its prefix, and multipart uploads left open."""
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)

    def contents() -> tuple[list[str], list[str]]:
        objects = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
        pending = s3.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix).get("Uploads", [])
        return [o["Key"] for o in objects], [u["Key"] for u in pending]

    contents.client = s3  # type: ignore[attr-defined]
    return contents


@pytest.fixture
def s3_client(make_app, s3_endpoint: str, prefix: str, db, world) -> FlaskClient:
    enrolled_with_visits(db, world)
    app = make_app(
        DCT_STORAGE_BACKEND="s3",
        DCT_S3_BUCKET=BUCKET,
        DCT_S3_PREFIX=prefix,
        DCT_S3_ENDPOINT_URL=s3_endpoint,
        DCT_S3_REGION="us-east-1",
    )
    return app.test_client()


def pdf(size: int) -> bytes:
    return b"%PDF-1.7\n" + os.urandom(size - 9)


def bodies(bucket) -> dict[str, bytes]:
    """Every object under the prefix, read whole (test files are small)."""
    objects, _ = bucket()
    read = bucket.client.get_object
    return {key: read(Bucket=BUCKET, Key=key)["Body"].read() for key in objects}


def assert_sealed(bucket, *plaintexts: bytes) -> None:
    found = bodies(bucket)
    assert found
    for key, raw in found.items():
        assert raw.startswith(envelope.HEADER), key
        assert not any(text[:64] in raw or text[-64:] in raw for text in plaintexts), key


NAMED_CSV = b"patient,measured_at,mmol_l\n" + b"Jan Peeters,2026-11-20T08:00:00Z,5.4\n" * 250_000


def test_a_multipart_upload_lands_in_the_bucket_and_reads_back(s3_client, world, bucket):
    content = pdf(9 * MiB)  # more than one S3 part
    patient = headers_for(s3_client, world.patient_a.user)

    response = upload(s3_client, patient, content, fields_for(content))

    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    objects, pending = bucket()
    assert len(objects) == 1 and pending == []
    assert_sealed(bucket, content)
    download = s3_client.get(f"{UPLOADS}/{body['id']}/content", headers=patient)
    assert hashlib.sha256(download.data).hexdigest() == body["sha256"]
    assert download.data == content


def test_a_csv_naming_its_patient_is_sealed_in_the_bucket(s3_client, world, bucket):
    patient = headers_for(s3_client, world.patient_a.user)

    body = upload(s3_client, patient, NAMED_CSV, fields_for(NAMED_CSV, kind="glucose")).get_json()

    assert_sealed(bucket, NAMED_CSV)
    assert all(b"Jan Peeters" not in raw for raw in bodies(bucket).values())
    download = s3_client.get(f"{UPLOADS}/{body['id']}/content", headers=patient)
    assert download.data == NAMED_CSV
    assert download.headers["X-Content-SHA256"] == hashlib.sha256(NAMED_CSV).hexdigest()


def test_a_checksum_mismatch_leaves_nothing_in_the_bucket(s3_client, db, world, bucket):
    content = pdf(9 * MiB)
    patient = headers_for(s3_client, world.patient_a.user)

    response = upload(s3_client, patient, content, fields_for(content, sha256="0" * 64))

    assert response.status_code == 422
    assert bucket() == ([], [])
    assert count(db, Upload) == 0


def test_a_resumable_upload_completes_in_the_bucket(s3_client, db, world, bucket):
    content = pdf(3 * MiB)
    headers = {**headers_for(s3_client, world.patient_a.user), **TUS}
    url = created(s3_client, headers, content)

    first = send(s3_client, headers, url, content[: MiB + 5000], 0)  # ends inside a chunk
    assert_sealed(bucket, content)  # the staged part
    last = send(s3_client, headers, url, content[MiB + 5000 :], MiB + 5000)

    assert (first.status_code, last.status_code) == (204, 204)
    record = last.headers["Upload-Record"]
    objects, pending = bucket()
    assert len(objects) == 1 and pending == []  # the staged parts are gone
    assert_sealed(bucket, content)
    download = s3_client.get(f"{record}/content", headers=headers)
    assert download.data == content


def test_a_resumable_csv_naming_its_patient_is_sealed_in_the_bucket(s3_client, world, bucket):
    headers = {**headers_for(s3_client, world.patient_a.user), **TUS}
    url = created(s3_client, headers, NAMED_CSV, kind="glucose", filename="Jan Peeters.csv")
    middle = 6 * MiB + 123  # parts S3 can copy server-side, the first ending mid-chunk

    assert send(s3_client, headers, url, NAMED_CSV[:middle], 0).status_code == 204
    assert all(b"Jan Peeters" not in raw for raw in bodies(bucket).values())
    last = send(s3_client, headers, url, NAMED_CSV[middle:], middle)

    assert last.status_code == 204, last.get_data(as_text=True)
    assert_sealed(bucket, NAMED_CSV)
    assert all(b"Jan Peeters" not in raw for raw in bodies(bucket).values())
    download = s3_client.get(f"{last.headers['Upload-Record']}/content", headers=headers)
    assert download.data == NAMED_CSV


def test_a_key_rotation_leaves_every_object_as_it_was(s3_client, make_app, world, bucket):
    patient = headers_for(s3_client, world.patient_a.user)
    body = upload(s3_client, patient, NAMED_CSV, fields_for(NAMED_CSV, kind="glucose")).get_json()
    before = bodies(bucket)

    rotated = s3_client.application.test_cli_runner().invoke(args=["uploads", "rotate-keys"])

    assert rotated.exit_code == 0, rotated.output
    assert "data keys of 1 files" in rotated.output
    assert bodies(bucket) == before
    download = s3_client.get(f"{UPLOADS}/{body['id']}/content", headers=patient)
    assert download.data == NAMED_CSV


def test_a_tampered_object_is_caught_on_download(s3_client, db, world, bucket, prefix):
    content = pdf(3 * MiB)
    patient = headers_for(s3_client, world.patient_a.user)
    body = upload(s3_client, patient, content, fields_for(content)).get_json()
    (key,), _ = bucket()
    bucket.client.put_object(Bucket=BUCKET, Key=key, Body=content[:-1] + b"X")

    try:
        received = s3_client.get(f"{UPLOADS}/{body['id']}/content", headers=patient).data
    except Exception:  # the server aborts the transfer instead of finishing it
        received = b""

    assert received != content and len(received) < len(content)
    (alert,) = audit_events(db, "upload.integrity_failure", body["id"])
    assert alert.after["expected_sha256"] == body["sha256"]
