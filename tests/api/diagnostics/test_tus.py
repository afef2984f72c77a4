"""Resumable uploads (tus 1.0): the real tuspy client against a live server, interrupted
and resumed; each protocol answer through the test client; the expiry job."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import os
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session
from tusclient import client as tus_client
from tusclient.uploader import Uploader
from werkzeug.serving import make_server
from werkzeug.test import TestResponse

from scheduling.jobs import job_specs
from scheduling.runner import run_job
from services.db import utcnow
from services.diagnostics import envelope, tus, upload_keys
from services.diagnostics.envelope import SealedStaging
from services.diagnostics.reads import StoredFile
from services.diagnostics.uploads import Limits
from services.models import TusTransfer, Upload
from tests.checks import assert_problem, audit_events, count
from tests.concurrency import fresh_postgres_database, wait_until_blocked
from tests.conftest import joined_sessions
from tests.factories.consent import make_complete_consent, withdraw_from_study
from tests.factories.people import Patient, World, headers_for, make_world, random_id, user_of
from tests.factories.visits import consent_document_for

URL = "/api/v1/uploads/tus/"
TUS = {"Tus-Resumable": "1.0.0"}
OFFSET_STREAM = "application/offset+octet-stream"
MIB = 1024 * 1024
KIB = 1024
CAPTURED = "2026-03-16T09:00:00+01:00"


def pdf(size: int) -> bytes:
    head = b"%PDF-1.7\n"
    return head + os.urandom(size - len(head))


def hexdigest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def metadata(content: bytes, **changes: str | None) -> dict[str, str]:
    values: dict[str, str | None] = {
        "kind": "ecg",
        "filename": "ecg-2026-03-16.pdf",
        "sha256": hexdigest(content),
        "captured_at": CAPTURED,
        "device": json.dumps({"manufacturer": "Acme", "model": "E1", "firmware": "2.1"}),
        **changes,
    }
    return {key: value for key, value in values.items() if value is not None}


def encoded(values: dict[str, str]) -> str:
    return ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in values.items()
    )


def create(
    http: FlaskClient, headers: dict[str, str], content: bytes, **changes: str | None
) -> TestResponse:
    return http.post(
        URL,
        headers={
            **headers,
            "Upload-Length": str(len(content)),
            "Upload-Metadata": encoded(metadata(content, **changes)),
        },
    )


def created(
    http: FlaskClient, headers: dict[str, str], content: bytes, **changes: str | None
) -> str:
    response = create(http, headers, content, **changes)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.headers["Location"]


def send(
    http: FlaskClient,
    headers: dict[str, str],
    url: str,
    body: bytes,
    offset: int,
    **extra: str,
) -> TestResponse:
    return http.patch(
        url,
        data=body,
        headers={
            **headers,
            "Upload-Offset": str(offset),
            "Content-Type": OFFSET_STREAM,
            **extra,
        },
    )


def checksum(body: bytes) -> str:
    return "sha256 " + base64.b64encode(hashlib.sha256(body).digest()).decode()


def offset_of(http: FlaskClient, headers: dict[str, str], url: str) -> int:
    response = http.head(url, headers=headers)
    assert response.status_code == 200
    return int(response.headers["Upload-Offset"])


def staged(upload_dir: Path) -> list[Path]:
    return list((upload_dir / "tus").iterdir())


def stored_objects(upload_dir: Path) -> list[Path]:
    return list((upload_dir / "objects").iterdir())


def the_upload(db: Session, http_response: TestResponse) -> Upload:
    upload_id = uuid.UUID(http_response.headers["Upload-Record"].rsplit("/", 1)[1])
    db.expire_all()
    return db.scalars(select(Upload).where(Upload.id == upload_id)).one()


def content_of(app: Flask, upload: Upload) -> bytes:
    """The stored file, opened with its data key (the object holds it sealed)."""
    with app.extensions["db"].sessions() as session:
        stored = StoredFile.of(session, upload)
    return b"".join(stored.plaintext(app.extensions["storage"].open(upload.storage_key)))


def staged_content(app: Flask, path: Path) -> bytes:
    """A transfer's staged bytes, opened with its data key (staged sealed too)."""
    transfer_id = uuid.UUID(path.name)
    with app.extensions["db"].sessions() as session:
        transfer = session.get_one(TusTransfer, transfer_id)
        staging = upload_keys.staging(session, app.extensions["storage"], transfer)
        return b"".join(staging.read_staged(transfer_id))


@pytest.fixture
def upload_dir(tmp_path: Path) -> Path:
    return tmp_path / "uploads"


@pytest.fixture
def tus_app(make_app, upload_dir: Path) -> Flask:
    return make_app(DCT_UPLOAD_DIR=str(upload_dir))


@pytest.fixture
def http(tus_app: Flask) -> FlaskClient:
    return tus_app.test_client()


@pytest.fixture
def patient(db: Session, world: World) -> Patient:
    """patient_a with a complete consent: allowed to upload."""
    make_complete_consent(db, world.patient_a, world.coordinator_a, consent_document_for(db, world))
    return world.patient_a


@pytest.fixture
def auth(http: FlaskClient, patient: Patient) -> dict[str, str]:
    return {**headers_for(http, patient.user), **TUS}


# --- the real client --------------------------------------------------------------------


@dataclass
class Live:
    app: Flask
    url: str


@pytest.fixture
def live(tus_app: Flask) -> Iterator[Live]:
    """The app served over HTTP in a thread, one request at a time, its sessions still
    in the test's transaction."""
    server = make_server("127.0.0.1", 0, tus_app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Live(tus_app, f"http://127.0.0.1:{server.port}")
    finally:
        server.shutdown()
        thread.join()


class Sha256Uploader(Uploader):
    """tuspy sends sha1 checksums by default; this server checks sha256."""

    CHECKSUM_ALGORITHM_PAIR = ("sha256", hashlib.sha256)


@pytest.mark.parametrize("with_checksum", [False, True], ids=["plain", "checksum"])
def test_tuspy_upload_interrupted_and_resumed(
    live: Live, db: Session, patient: Patient, with_checksum: bool
):
    content = pdf(3 * MIB + 12345)
    headers = headers_for(live.app.test_client(), patient.user)
    server = tus_client.TusClient(f"{live.url}{URL}", headers=headers)
    options = {
        "file_stream": io.BytesIO(content),  # tuspy leaves files it opens unclosed
        "client": server,
        "chunk_size": 256 * KIB,
        "upload_checksum": with_checksum,
    }

    first = Sha256Uploader(metadata=metadata(content), **options)
    first.upload(stop_at=MIB)  # the phone loses its network here
    assert first.offset == MIB

    resumed = Sha256Uploader(url=first.url, **options)
    assert resumed.offset == MIB  # asked the server (HEAD)
    resumed.upload()

    assert resumed.offset == len(content)
    upload = db.scalars(select(Upload).where(Upload.participant_id == patient.participant.id)).one()
    assert resumed.request.response_headers["upload-record"] == f"/api/v1/uploads/{upload.id}"
    assert upload.transfer == "tus"
    assert upload.sha256 == hexdigest(content)
    assert upload.size_bytes == len(content)
    assert upload.content_type == "application/pdf"
    assert upload.filename == "ecg-2026-03-16.pdf"
    assert upload.device == {"manufacturer": "Acme", "model": "E1", "firmware": "2.1"}
    assert upload.originator == "patient"
    assert content_of(live.app, upload) == content
    transfer = db.scalars(select(TusTransfer).where(TusTransfer.upload_id == upload.id)).one()
    assert audit_events(db, "tus.complete", transfer.id)


# --- discovery and the protocol version -------------------------------------------------


def test_options_describes_the_server_without_a_token(http: FlaskClient, tus_app: Flask):
    response = http.options(URL)
    assert response.status_code == 204
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert response.headers["Tus-Version"] == "1.0.0"
    assert response.headers["Tus-Extension"] == "creation,termination,checksum"
    assert response.headers["Tus-Checksum-Algorithm"] == "sha256"
    assert int(response.headers["Tus-Max-Size"]) == Limits.from_settings(tus_app.config).of(None)


@pytest.mark.parametrize("version", [None, "0.2.2"])
def test_other_tus_versions_are_refused_with_412(
    http: FlaskClient, auth: dict[str, str], version: str | None
):
    headers = {key: value for key, value in auth.items() if key != "Tus-Resumable"}
    if version:
        headers["Tus-Resumable"] = version
    assert_problem(create(http, headers, pdf(100)), 412)
    for response in (
        create(http, headers, pdf(100)),
        http.head(f"{URL}{random_id()}", headers=headers),  # no body: a HEAD
    ):
        assert response.status_code == 412
        assert response.headers["Tus-Version"] == "1.0.0"
        assert response.headers["Tus-Resumable"] == "1.0.0"


def test_a_token_is_needed(http: FlaskClient, db: Session):
    response = create(http, TUS, pdf(100))
    assert_problem(response, 401)
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert count(db, TusTransfer) == 0


# --- creation ---------------------------------------------------------------------------


def test_creation_answers_the_transfer_url(
    http: FlaskClient, auth: dict[str, str], db: Session, patient: Patient
):
    content = pdf(1000)
    response = create(http, auth, content)
    assert response.status_code == 201
    assert response.headers["Location"].startswith(URL)
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert "GMT" in response.headers["Upload-Expires"]
    transfer = db.scalars(select(TusTransfer)).one()
    assert response.headers["Location"] == f"{URL}{transfer.id}"
    assert response.get_json()["url"] == response.headers["Location"]
    assert response.get_json()["length_bytes"] == 1000
    assert transfer.participant_id == patient.participant.id
    assert transfer.length_bytes == 1000
    assert transfer.offset_bytes == 0
    assert transfer.filename == "ecg-2026-03-16.pdf"
    assert transfer.metadata_["sha256"] == hexdigest(content)
    expected_expiry = utcnow() + dt.timedelta(hours=24)
    assert abs(transfer.expires_at - expected_expiry) < dt.timedelta(minutes=1)
    assert audit_events(db, "tus.create", transfer.id)

    head = http.head(response.headers["Location"], headers=auth)
    assert head.status_code == 200
    assert head.headers["Upload-Offset"] == "0"
    assert head.headers["Upload-Length"] == "1000"
    assert head.headers["Cache-Control"] == "no-store"
    assert head.headers["Upload-Expires"] == response.headers["Upload-Expires"]


def _bad_base64(content: bytes) -> str:
    return encoded(metadata(content)) + ",filename not*base64"


@pytest.mark.parametrize(
    ("headers", "field"),
    [
        (lambda content: {"Upload-Metadata": _bad_base64(content)}, "Upload-Metadata"),
        (lambda content: {"Upload-Metadata": encoded(metadata(content, sha256=None))}, "sha256"),
        (lambda content: {"Upload-Metadata": encoded(metadata(content, sha256="ab"))}, "sha256"),
        (lambda content: {"Upload-Metadata": encoded(metadata(content, kind="x-ray"))}, "kind"),
        (
            lambda content: {
                "Upload-Metadata": encoded(metadata(content, captured_at="2026-03-16T09:00:00"))
            },
            "captured_at",
        ),
        (lambda content: {"Upload-Metadata": encoded(metadata(content, device="[1]"))}, "device"),
        (
            lambda content: {"Upload-Metadata": encoded(metadata(content, device="[" * 5000))},
            "device",
        ),
        (
            lambda content: {
                "Upload-Metadata": encoded(metadata(content, device='{"model": "E\\u0000"}'))
            },
            "device",
        ),
        (lambda content: {"Upload-Length": "0"}, "Upload-Length"),
        (lambda content: {"Upload-Length": "-5"}, "Upload-Length"),
        (lambda content: {"Upload-Length": ""}, "Upload-Length"),
    ],
    ids=[
        "bad-base64",
        "no-sha256",
        "short-sha256",
        "unknown-kind",
        "naive-captured-at",
        "device-not-an-object",
        "device-nested-deep",
        "device-with-nul",
        "zero-length",
        "negative-length",
        "no-length",
    ],
)
def test_creation_validates_its_headers(
    http: FlaskClient, auth: dict[str, str], db: Session, headers, field: str
):
    content = pdf(1000)
    response = http.post(
        URL,
        headers={
            **auth,
            "Upload-Length": str(len(content)),
            "Upload-Metadata": encoded(metadata(content)),
            **headers(content),
        },
    )
    body = assert_problem(response, 422)
    assert field in {name.split(".")[0] for name in body["errors"]}
    assert count(db, TusTransfer) == 0


def test_creation_over_the_kinds_limit_is_413(
    http: FlaskClient, auth: dict[str, str], db: Session, tus_app: Flask
):
    limit = Limits.from_settings(tus_app.config).of("ecg")
    response = http.post(
        URL,
        headers={
            **auth,
            "Upload-Length": str(limit + 1),
            "Upload-Metadata": encoded(metadata(b"")),
        },
    )
    assert_problem(response, 413)
    assert count(db, TusTransfer) == 0


def test_creation_takes_no_body(http: FlaskClient, auth: dict[str, str], db: Session):
    content = pdf(1000)
    response = http.post(
        URL,
        data=content,
        headers={
            **auth,
            "Content-Type": OFFSET_STREAM,
            "Upload-Length": str(len(content)),
            "Upload-Metadata": encoded(metadata(content)),
        },
    )
    assert_problem(response, 400)
    assert count(db, TusTransfer) == 0


@pytest.mark.parametrize("who", ["coordinator_a", "monitor", "admin"])
def test_only_patients_and_nurses_upload(
    http: FlaskClient, world: World, patient: Patient, db: Session, who: str
):
    headers = {**headers_for(http, user_of(world, who)), **TUS}
    response = create(http, headers, pdf(1000), participant_id=str(patient.participant.id))
    assert_problem(response, 403)
    assert count(db, TusTransfer) == 0


def test_a_nurse_uploads_only_for_participants_of_their_visits(
    http: FlaskClient, world: World, patient: Patient, db: Session
):
    headers = {**headers_for(http, world.nurse_a), **TUS}
    unnamed = create(http, headers, pdf(1000))
    assert "participant_id" in assert_problem(unnamed, 422)["errors"]
    not_theirs = create(http, headers, pdf(1000), participant_id=str(patient.participant.id))
    assert_problem(not_theirs, 404)
    assert count(db, TusTransfer) == 0


def test_a_withdrawn_participant_is_refused_with_409(
    http: FlaskClient, auth: dict[str, str], world: World, patient: Patient, db: Session
):
    withdraw_from_study(db, patient, world.coordinator_a)
    assert_problem(create(http, auth, pdf(1000)), 409)
    assert count(db, TusTransfer) == 0


def test_a_replayed_client_id_answers_its_upload(
    http: FlaskClient, auth: dict[str, str], db: Session
):
    content = pdf(5000)
    client_id = random_id()
    url = created(http, auth, content, client_id=client_id)
    done = send(http, auth, url, content, 0)
    assert done.status_code == 204

    replay = create(http, auth, content, client_id=client_id)
    assert replay.status_code == 200
    assert replay.headers["Upload-Record"] == done.headers["Upload-Record"]
    assert replay.headers["Upload-Offset"] == replay.headers["Upload-Length"] == "5000"
    assert replay.get_json()["record"] == done.headers["Upload-Record"]
    assert "Location" not in replay.headers
    assert count(db, TusTransfer) == 1
    assert count(db, Upload) == 1


# --- sending the bytes ------------------------------------------------------------------


def test_bytes_in_several_requests_make_the_upload(
    http: FlaskClient, auth: dict[str, str], db: Session, tus_app: Flask, upload_dir: Path
):
    content = pdf(10_000)
    url = created(http, auth, content)

    first = send(
        http, auth, url, content[:4000], 0, **{"Upload-Checksum": checksum(content[:4000])}
    )
    assert first.status_code == 204
    assert first.headers["Upload-Offset"] == "4000"
    assert "Upload-Record" not in first.headers
    assert offset_of(http, auth, url) == 4000

    last = send(http, auth, url, content[4000:], 4000)
    assert last.status_code == 204
    assert last.headers["Upload-Offset"] == "10000"
    upload = the_upload(db, last)
    assert last.headers["Upload-Record"] == f"/api/v1/uploads/{upload.id}"
    assert content_of(tus_app, upload) == content
    assert staged(upload_dir) == []
    assert audit_events(db, "upload.create", upload.id)[0].after["transfer"] == "tus"

    finished = http.head(url, headers=auth)  # a phone that lost the last answer
    assert finished.status_code == 200
    assert finished.headers["Upload-Offset"] == finished.headers["Upload-Length"] == "10000"
    assert finished.headers["Upload-Record"] == last.headers["Upload-Record"]
    assert_problem(send(http, auth, url, b"", 10_000), 404)
    assert_problem(http.delete(url, headers=auth), 404)


def test_a_body_may_exceed_the_apps_request_limit(
    http: FlaskClient, auth: dict[str, str], db: Session, tus_app: Flask
):
    content = pdf(3 * tus_app.config["MAX_CONTENT_LENGTH"])
    url = created(http, auth, content)
    done = send(http, auth, url, content, 0)
    assert done.status_code == 204
    assert content_of(tus_app, the_upload(db, done)) == content


def test_behind_gunicorn_the_last_byte_completes_the_upload(
    http: FlaskClient, auth: dict[str, str], db: Session, tus_app: Flask
):
    """gunicorn marks its input terminated, so werkzeug enforces the request's limit on
    the stream itself: the body that fills the transfer exactly must still pass, and
    one byte more must not."""
    behind_gunicorn = {"wsgi.input_terminated": True}
    content = pdf(300_000)
    url = created(http, auth, content)
    headers = {**auth, "Upload-Offset": "0", "Content-Type": OFFSET_STREAM}

    too_long = http.patch(
        url, data=content + b"x", headers=headers, environ_overrides=behind_gunicorn
    )
    done = http.patch(url, data=content, headers=headers, environ_overrides=behind_gunicorn)

    assert_problem(too_long, 413)
    assert done.status_code == 204, done.get_data(as_text=True)
    assert content_of(tus_app, the_upload(db, done)) == content


def test_a_transfer_in_one_process_is_hashed_as_it_arrives(
    http: FlaskClient, auth: dict[str, str], db: Session, tus_app: Flask, monkeypatch
):
    content = pdf(10_000)
    url = created(http, auth, content)
    assert send(http, auth, url, content[:6000], 0).status_code == 204

    def read_back(_staging: SealedStaging, _transfer_id: uuid.UUID) -> None:
        raise AssertionError("the staged file was read back")

    monkeypatch.setattr(SealedStaging, "read_staged", read_back)
    last = send(http, auth, url, content[6000:], 6000)
    assert last.status_code == 204
    assert the_upload(db, last).sha256 == hexdigest(content)


def test_a_transfer_continued_by_another_process_is_hashed_from_storage(
    http: FlaskClient, auth: dict[str, str], db: Session, tus_app: Flask, monkeypatch
):
    content = pdf(10_000)
    url = created(http, auth, content)
    assert send(http, auth, url, content[:6000], 0).status_code == 204
    monkeypatch.setattr(tus, "_hashes", {})  # as if the next request went elsewhere
    last = send(http, auth, url, content[6000:], 6000)
    assert last.status_code == 204
    assert content_of(tus_app, the_upload(db, last)) == content


def test_a_wrong_offset_is_409(http: FlaskClient, auth: dict[str, str]):
    content = pdf(1000)
    url = created(http, auth, content)
    assert send(http, auth, url, content[:100], 0).status_code == 204
    response = send(http, auth, url, content[100:200], 0)
    assert_problem(response, 409)
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert offset_of(http, auth, url) == 100


def test_a_missing_offset_is_422(http: FlaskClient, auth: dict[str, str]):
    url = created(http, auth, pdf(1000))
    response = http.patch(url, data=b"x", headers={**auth, "Content-Type": OFFSET_STREAM})
    assert "Upload-Offset" in assert_problem(response, 422)["errors"]


@pytest.mark.parametrize("content_type", ["application/octet-stream", None])
def test_patch_needs_the_offset_stream_type(
    http: FlaskClient, auth: dict[str, str], content_type: str | None
):
    content = pdf(1000)
    url = created(http, auth, content)
    headers = {**auth, "Upload-Offset": "0"}
    if content_type:
        headers["Content-Type"] = content_type
    assert_problem(http.patch(url, data=content, headers=headers), 415)
    assert_problem(http.patch(url, headers=headers), 415)
    assert offset_of(http, auth, url) == 0


def test_a_checksum_mismatch_is_460_and_keeps_none_of_the_body(
    http: FlaskClient, auth: dict[str, str], upload_dir: Path, db: Session, tus_app: Flask
):
    content = pdf(2000)
    url = created(http, auth, content)
    assert send(http, auth, url, content[:500], 0).status_code == 204

    response = send(
        http, auth, url, content[500:1500], 500, **{"Upload-Checksum": checksum(b"other")}
    )
    assert_problem(response, 460)
    assert response.status == "460 Checksum Mismatch"
    assert offset_of(http, auth, url) == 500
    (path,) = staged(upload_dir)
    assert staged_content(tus_app, path) == content[:500]

    retried = send(
        http, auth, url, content[500:], 500, **{"Upload-Checksum": checksum(content[500:])}
    )
    assert retried.status_code == 204
    assert the_upload(db, retried).sha256 == hexdigest(content)


@pytest.mark.parametrize(
    "header", ["sha1 " + base64.b64encode(bytes(20)).decode(), "sha256 ???"], ids=["sha1", "bad"]
)
def test_an_unusable_checksum_header_is_400(http: FlaskClient, auth: dict[str, str], header: str):
    url = created(http, auth, pdf(1000))
    response = send(http, auth, url, b"x", 0, **{"Upload-Checksum": header})
    assert "Upload-Checksum" in assert_problem(response, 400)["errors"]
    assert offset_of(http, auth, url) == 0


def test_a_body_past_the_length_is_413_and_not_kept(
    http: FlaskClient, auth: dict[str, str], upload_dir: Path, tus_app: Flask
):
    content = pdf(1000)
    url = created(http, auth, content)
    assert send(http, auth, url, content[:400], 0).status_code == 204
    assert_problem(send(http, auth, url, content[400:] + b"extra", 400), 413)
    assert offset_of(http, auth, url) == 400
    assert staged_content(tus_app, staged(upload_dir)[0]) == content[:400]


class CutBody(io.RawIOBase):
    """A request body announcing `length` bytes that stops after `data`: it just ends
    (a short read) or fails as a dropped connection does."""

    def __init__(self, data: bytes, length: int, *, fails: bool) -> None:
        self._data = io.BytesIO(data)
        self._length = length
        self._fails = fails
        self._at_end = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """The test client measures a body by seeking to its end: it finds `length`."""
        self._at_end = whence == io.SEEK_END
        return self.tell()

    def tell(self) -> int:
        return self._length if self._at_end else self._data.tell()

    def readinto(self, buffer) -> int:  # type: ignore[override]
        size = self._data.readinto(buffer)
        if not size and self._fails:
            raise ConnectionResetError("the phone lost its network")
        return size


def send_cut(
    http: FlaskClient, headers: dict[str, str], url: str, body: CutBody, **extra: str
) -> TestResponse:
    return http.patch(
        url,
        input_stream=body,
        headers={**headers, "Upload-Offset": "0", "Content-Type": OFFSET_STREAM, **extra},
    )


@pytest.mark.parametrize("fails", [False, True], ids=["ends-early", "connection-error"])
def test_a_body_cut_short_keeps_what_arrived(
    http: FlaskClient, auth: dict[str, str], db: Session, tus_app: Flask, fails: bool
):
    content = pdf(10_000)
    url = created(http, auth, content)
    cut = send_cut(http, auth, url, CutBody(content[:3000], len(content), fails=fails))
    assert "resume at offset 3000" in assert_problem(cut, 400)["detail"]
    assert offset_of(http, auth, url) == 3000

    last = send(http, auth, url, content[3000:], 3000)
    assert last.status_code == 204
    assert content_of(tus_app, the_upload(db, last)) == content


def test_a_body_cut_short_with_a_checksum_keeps_nothing(
    http: FlaskClient, auth: dict[str, str], upload_dir: Path
):
    content = pdf(10_000)
    url = created(http, auth, content)
    cut = send_cut(
        http,
        auth,
        url,
        CutBody(content[:3000], len(content), fails=True),
        **{"Upload-Checksum": checksum(content)},
    )
    assert "nothing of it was kept" in assert_problem(cut, 400)["detail"]
    assert offset_of(http, auth, url) == 0
    assert all(path.stat().st_size == 0 for path in staged(upload_dir))


# --- verification at completion ---------------------------------------------------------


def assert_nothing_left(db: Session, upload_dir: Path) -> None:
    assert count(db, Upload) == 0
    assert count(db, TusTransfer) == 0
    assert staged(upload_dir) == []
    assert stored_objects(upload_dir) == []


def test_a_wrong_file_checksum_is_422_and_leaves_nothing(
    http: FlaskClient, auth: dict[str, str], db: Session, upload_dir: Path
):
    content = pdf(5000)
    url = created(http, auth, content, sha256=hexdigest(b"another file"))
    assert send(http, auth, url, content[:2000], 0).status_code == 204
    response = send(http, auth, url, content[2000:], 2000)
    assert "sha256" in assert_problem(response, 422)["errors"]
    assert_nothing_left(db, upload_dir)
    transfer_id = url.rsplit("/", 1)[1]
    (refusal,) = audit_events(db, "tus.refuse", transfer_id)
    assert "checksum mismatch" in refusal.reason
    assert http.head(url, headers=auth).status_code == 404


def test_content_the_kind_does_not_accept_is_415_and_leaves_nothing(
    http: FlaskClient, auth: dict[str, str], db: Session, upload_dir: Path
):
    content = pdf(5000)  # a PDF is no image
    url = created(http, auth, content, kind="image", filename="photo.png")
    response = send(http, auth, url, content, 0)
    assert "PDF" in assert_problem(response, 415)["detail"]
    assert_nothing_left(db, upload_dir)


# --- access, termination, expiry --------------------------------------------------------


def test_another_users_transfer_is_404(
    http: FlaskClient, auth: dict[str, str], world: World, db: Session
):
    content = pdf(1000)
    url = created(http, auth, content)
    other = {**headers_for(http, world.patient_b.user), **TUS}
    assert http.head(url, headers=other).status_code == 404
    assert_problem(send(http, other, url, content, 0), 404)
    assert_problem(http.delete(url, headers=other), 404)
    coordinator = {**headers_for(http, world.coordinator_a), **TUS}
    assert http.head(url, headers=coordinator).status_code == 403
    assert http.head(f"{URL}{random_id()}", headers=auth).status_code == 404
    assert offset_of(http, auth, url) == 0
    assert count(db, TusTransfer) == 1


def test_termination_drops_the_bytes(
    http: FlaskClient, auth: dict[str, str], db: Session, upload_dir: Path
):
    content = pdf(1000)
    url = created(http, auth, content)
    assert send(http, auth, url, content[:300], 0).status_code == 204
    response = http.delete(url, headers=auth)
    assert response.status_code == 204
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert_nothing_left(db, upload_dir)
    (event,) = audit_events(db, "tus.terminate", url.rsplit("/", 1)[1])
    assert event.before["offset_bytes"] == 300
    assert http.head(url, headers=auth).status_code == 404


def test_the_expiry_job_drops_unfinished_transfers(
    http: FlaskClient,
    auth: dict[str, str],
    db: Session,
    tus_app: Flask,
    connection: Connection,
    upload_dir: Path,
):
    content = pdf(1000)
    stale_url = created(http, auth, content)
    assert send(http, auth, stale_url, content[:300], 0).status_code == 204
    fresh_url = created(http, auth, content)
    assert send(http, auth, fresh_url, content[:200], 0).status_code == 204
    stale_id = stale_url.rsplit("/", 1)[1]
    db.expire_all()
    stale = db.get(TusTransfer, uuid.UUID(stale_id))
    assert stale is not None
    stale.expires_at = utcnow() - dt.timedelta(minutes=1)
    db.flush()
    assert http.head(stale_url, headers=auth).status_code == 404  # expired, even before the job

    (spec,) = [s for s in job_specs(tus_app.config) if s.id == "expire-tus-uploads"]
    run_job(joined_sessions(connection), spec.id, spec.func)

    db.expire_all()
    assert [str(t.id) for t in db.scalars(select(TusTransfer))] == [fresh_url.rsplit("/", 1)[1]]
    assert [path.name for path in staged(upload_dir)] == [
        fresh_url.rsplit("/", 1)[1].replace("-", "")
    ]
    (event,) = audit_events(db, "tus.expire", stale_id)
    assert event.actor_role == "system"
    assert event.before["offset_bytes"] == 300
    assert offset_of(http, auth, fresh_url) == 200


# --- two PATCHes of one transfer at once (PostgreSQL) -----------------------------------


@pytest.fixture(scope="module")
def fresh_url(database_url: str) -> Iterator[str]:
    with fresh_postgres_database(
        database_url, "dct_tus", "needs concurrent connections to a server database"
    ) as url:
        yield url


class HeldBody(io.RawIOBase):
    """A body that sends its first half, then waits for `release` before the rest."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self._half = len(data) // 2
        self.streaming = threading.Event()
        self.release = threading.Event()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._data.seek(offset, whence)

    def readinto(self, buffer) -> int:  # type: ignore[override]
        position = self._data.tell()
        if position == self._half:
            self.streaming.set()
            assert self.release.wait(30)
        end = self._half if position < self._half else len(self._data.getbuffer())
        return self._data.readinto(memoryview(buffer)[: end - position])


@pytest.mark.slow
def test_a_patch_waits_for_the_one_streaming_and_then_finds_the_offset_moved(
    fresh_url: str, make_app, upload_dir: Path
):
    app = make_app(DATABASE_URL=fresh_url, DCT_UPLOAD_DIR=str(upload_dir))
    with Session(app.extensions["db"].engine, expire_on_commit=False) as setup:
        world = make_world(setup)
        make_complete_consent(
            setup, world.patient_a, world.coordinator_a, consent_document_for(setup, world)
        )
        setup.commit()
    headers = {**headers_for(app.test_client(), world.patient_a.user), **TUS}
    content = pdf(200_000)
    url = created(app.test_client(), headers, content)
    held = HeldBody(content[:100_000])
    patch_headers = {**headers, "Upload-Offset": "0", "Content-Type": OFFSET_STREAM}

    def first() -> int:
        return app.test_client().patch(url, input_stream=held, headers=patch_headers).status_code

    def second() -> int:
        return send(app.test_client(), headers, url, content[:100_000], 0).status_code

    with ThreadPoolExecutor(2) as pool:
        streaming = pool.submit(first)
        assert held.streaming.wait(30)
        waiting = pool.submit(second)
        wait_until_blocked(app.extensions["db"].engine)
        held.release.set()
        assert (streaming.result(), waiting.result()) == (204, 409)

    assert offset_of(app.test_client(), headers, url) == 100_000
    (path,) = staged(upload_dir)
    assert staged_content(app, path) == content[:100_000]


@pytest.mark.parametrize(
    ("cut", "intact"),
    [
        # the second record cut back to nothing: the first stays whole
        (lambda raw: envelope.HEADER_SIZE + envelope.RECORD, envelope.CHUNK),
        # the second record torn part-way: back to the start of its chunk
        (lambda raw: raw - 100, envelope.CHUNK),
        # only the header left (a crash while re-sealing the first chunk)
        (lambda raw: envelope.HEADER_SIZE, 0),
    ],
    ids=["record-cut", "record-torn", "header-only"],
)
def test_a_staging_left_behind_its_offset_by_a_crash_winds_back_and_resumes(
    http, auth, db, upload_dir, cut, intact
):
    """A process that stops inside an append (after cutting the tail record back,
    before sealing it again) leaves less than the acknowledged offset: the next PATCH
    answers 409 with where to resume, HEAD agrees, and the transfer completes."""
    content = pdf(envelope.CHUNK + 60 * KIB)
    url = created(http, auth, content)
    half = envelope.CHUNK + 40 * KIB
    assert send(http, auth, url, content[:half], 0).status_code == 204
    (path,) = staged(upload_dir)
    with path.open("r+b") as file:
        file.truncate(cut(path.stat().st_size))

    response = send(http, auth, url, content[half:], half)

    assert f"resume at offset {intact}" in assert_problem(response, 409)["detail"]
    assert offset_of(http, auth, url) == intact
    done = send(http, auth, url, content[intact:], intact)
    assert done.status_code == 204, done.get_data(as_text=True)
    (upload,) = db.scalars(select(Upload)).all()
    assert upload.sha256 == hexdigest(content)
