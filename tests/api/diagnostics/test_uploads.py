"""The simple upload over HTTP with real multipart bodies: streamed to storage, fields
before or after the file, checksum, size limits (413 without reading the whole body),
magic bytes, idempotent retries, replacements, and who may upload for whom."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.test import EnvironBuilder, TestResponse
from werkzeug.wrappers import Request

from services.diagnostics import envelope
from services.models import Upload
from tests.checks import assert_problem, audit_events, count
from tests.conftest import AppFactory
from tests.factories.consent import withdraw_from_study
from tests.factories.people import headers_for, random_id

UPLOADS = "/api/v1/uploads"
BOUNDARY = "dct-test-7d1f0a"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
MiB = 1024 * 1024
# Tiny real files: what the server judges by is their first bytes.
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
CSV = b"measured_at,systolic,diastolic\n2026-11-20T08:00:00Z,128,84\n"
NOTES = b"Dear doctor\nthese are my notes\n"

Part = tuple[str, bytes | str, str | None]  # name, value, filename (files only)


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def fields_for(content: bytes, **overrides: str) -> dict[str, str]:
    """The text fields of a valid upload of `content` as an ECG."""
    captured = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    fields = {
        "kind": "ecg",
        "sha256": sha256(content),
        "captured_at": captured.isoformat(),
        "device": json.dumps({"manufacturer": "Acme", "model": "Beat 2", "serial": "A-17"}),
    }
    return {**fields, **overrides}


def encode(parts: Sequence[Part]) -> bytes:
    """A multipart/form-data body, built by hand in the order given."""
    body = bytearray()
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        body += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename is not None:
            body += b"Content-Type: application/octet-stream\r\n"
        body += b"\r\n" + (value.encode() if isinstance(value, str) else value) + b"\r\n"
    body += f"--{BOUNDARY}--\r\n".encode()
    return bytes(body)


def form_body(
    content: bytes,
    fields: dict[str, str] | None = None,
    *,
    filename: str = "ecg.pdf",
    file_first: bool = False,
) -> bytes:
    text = [(name, value, None) for name, value in (fields or fields_for(content)).items()]
    file: list[Part] = [("file", content, filename)]
    return encode([*file, *text] if file_first else [*text, *file])


def upload(
    client: FlaskClient,
    headers: dict[str, str],
    content: bytes,
    fields: dict[str, str] | None = None,
    **options: object,
) -> TestResponse:
    body = form_body(content, fields, **options)  # type: ignore[arg-type]
    return client.post(UPLOADS, data=body, content_type=MULTIPART, headers=headers)


class CountingReader(io.BytesIO):
    """A request body that counts how much of it the server read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.consumed = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.consumed += len(chunk)
        return chunk

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        read = super().readinto(buffer)
        self.consumed += read
        return read


def send_chunked(client: FlaskClient, headers: dict[str, str], body: io.BytesIO) -> TestResponse:
    """POST without a Content-Length, as a chunked request arrives from a server that
    terminates the input stream itself (gunicorn, werkzeug's)."""
    builder = EnvironBuilder(
        path=UPLOADS,
        method="POST",
        input_stream=body,
        content_type=MULTIPART,
        headers={**headers, "Transfer-Encoding": "chunked"},
    )
    environ = builder.get_environ()
    del environ["CONTENT_LENGTH"]
    environ["wsgi.input_terminated"] = True
    return client.open(Request(environ))


def stored(folder: Path) -> tuple[list[Path], list[Path]]:
    """The committed objects and the temporary ones left in the upload folder."""
    return sorted((folder / "objects").iterdir()), sorted((folder / "tmp").iterdir())


def assert_nothing_kept(db: Session, folder: Path) -> None:
    assert count(db, Upload) == 0
    assert stored(folder) == ([], [])


@pytest.fixture
def app_client(make_app: AppFactory, tmp_path: Path) -> FlaskClient:
    """An app storing into this test's own folder, so the folder can be inspected."""
    return make_app(DCT_UPLOAD_DIR=str(tmp_path)).test_client()


# --- accepted ------------------------------------------------------------------------


@pytest.mark.requirement("UPLOAD-1")
def test_a_patient_uploads_a_file(app_client, db, world, auth, enrolled, tmp_path):
    fields = fields_for(PDF, client_id=random_id())
    # The test client's own multipart encoder, as a browser form would send it.
    data = {**fields, "file": (io.BytesIO(PDF), "ecg 2026-11-20.pdf")}
    response = app_client.post(UPLOADS, data=data, headers=auth("patient"))

    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert response.headers["Location"].endswith(f"{UPLOADS}/{body['id']}")
    assert body["participant_id"] == str(world.patient_a.participant.id)
    assert (body["kind"], body["content_type"], body["size_bytes"]) == (
        "ecg",
        "application/pdf",
        len(PDF),
    )
    assert (body["sha256"], body["client_id"]) == (sha256(PDF), fields["client_id"])
    assert (body["originator"], body["transfer"], body["visit_id"]) == (
        "patient",
        "multipart",
        None,
    )
    assert body["filename"] == "ecg 2026-11-20.pdf"
    assert body["device"] == {"manufacturer": "Acme", "model": "Beat 2", "serial": "A-17"}
    objects, temporary = stored(tmp_path)
    assert len(objects) == 1 and temporary == []
    assert objects[0].stat().st_size == envelope.sealed_size(len(PDF))  # sealed
    assert objects[0].name not in json.dumps(body)  # the storage key stays inside
    (event,) = audit_events(db, "upload.create", body["id"])
    assert event.participant_id == world.patient_a.participant.id
    assert event.after["sha256"] == sha256(PDF)


def test_fields_may_follow_the_file(app_client, db, auth, enrolled, tmp_path):
    response = upload(app_client, auth("patient"), CSV, fields_for(CSV), file_first=True)

    assert response.status_code == 201, response.get_json()
    assert response.get_json()["content_type"] == "text/csv"
    assert count(db, Upload) == 1 and len(stored(tmp_path)[0]) == 1


def test_a_file_larger_than_the_json_request_limit_is_streamed_in(app_client, db, auth, enrolled):
    """The app refuses JSON bodies over 1 MiB; uploads have their own limits."""
    content = PDF + bytes(range(256)) * (12 * 1024)  # about 3 MiB
    response = upload(app_client, auth("patient"), content)

    assert response.status_code == 201, response.get_json()
    assert response.get_json()["size_bytes"] == len(content)


def test_a_nurse_uploads_during_their_visit(app_client, db, world, auth, visit):
    fields = fields_for(PDF, participant_id=str(world.patient_a.participant.id))
    response = upload(app_client, auth("nurse_a"), PDF, {**fields, "visit_id": str(visit.id)})

    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["originator"], body["visit_id"]) == ("nurse", str(visit.id))
    assert body["uploaded_by"] == str(world.nurse_a.id)


def test_a_nurse_without_a_visit_of_the_participant_is_refused(
    app_client, db, world, auth, enrolled, tmp_path
):
    fields = fields_for(PDF, participant_id=str(world.patient_a.participant.id))
    response = upload(app_client, auth("nurse_a"), PDF, fields)

    assert_problem(response, 404)
    assert_nothing_kept(db, tmp_path)


def test_a_nurse_names_the_participant(app_client, db, auth, visit, tmp_path):
    response = upload(app_client, auth("nurse_a"), PDF)

    assert "participant_id" in assert_problem(response, 422)["errors"]
    assert_nothing_kept(db, tmp_path)


# --- refused: nothing kept -------------------------------------------------------------


@pytest.mark.parametrize("file_first", [False, True], ids=["fields-first", "file-first"])
@pytest.mark.requirement("UPLOAD-1")
def test_a_checksum_mismatch_keeps_nothing(app_client, db, auth, enrolled, tmp_path, file_first):
    fields = fields_for(PDF, sha256=sha256(b"what the phone meant to send"))
    response = upload(app_client, auth("patient"), PDF, fields, file_first=file_first)

    body = assert_problem(response, 422)
    assert "checksum" in body["detail"] and sha256(PDF) in body["errors"]["sha256"][0]
    assert_nothing_kept(db, tmp_path)


@pytest.mark.parametrize("file_first", [False, True], ids=["fields-first", "file-first"])
def test_over_the_size_limit_the_body_is_not_read_to_its_end(
    make_app, db, world, enrolled, tmp_path, file_first
):
    client = make_app(DCT_UPLOAD_DIR=str(tmp_path), DCT_UPLOAD_MAX_BYTES=MiB).test_client()
    content = PDF + bytes(40 * MiB)
    body = CountingReader(form_body(content, file_first=file_first))

    response = send_chunked(client, headers_for(client, world.patient_a.user), body)

    assert "limit of 1048576 bytes" in assert_problem(response, 413)["detail"]
    assert body.consumed < 4 * MiB < len(body.getvalue())
    assert_nothing_kept(db, tmp_path)


def test_a_content_length_over_the_limit_is_refused_before_reading(
    make_app, db, world, enrolled, tmp_path
):
    client = make_app(DCT_UPLOAD_DIR=str(tmp_path), DCT_UPLOAD_MAX_BYTES=MiB).test_client()
    body = CountingReader(form_body(PDF + bytes(8 * MiB)))

    response = client.post(
        UPLOADS,
        input_stream=body,
        content_type=MULTIPART,
        headers=headers_for(client, world.patient_a.user),
    )

    assert_problem(response, 413)
    assert body.consumed == 0
    assert_nothing_kept(db, tmp_path)


@pytest.mark.parametrize("file_first", [False, True], ids=["fields-first", "file-first"])
def test_each_kind_may_have_its_own_limit(make_app, db, world, enrolled, tmp_path, file_first):
    client = make_app(
        DCT_UPLOAD_DIR=str(tmp_path), DCT_UPLOAD_MAX_BYTES_BY_KIND="image=1000"
    ).test_client()
    headers = headers_for(client, world.patient_a.user)
    picture = PNG + bytes(2000)

    too_large = upload(
        client, headers, picture, fields_for(picture, kind="image"), file_first=file_first
    )
    assert "1000 bytes" in assert_problem(too_large, 413)["detail"]
    assert_nothing_kept(db, tmp_path)

    other = upload(
        client, headers, picture, fields_for(picture, kind="other"), file_first=file_first
    )
    assert other.status_code == 201, other.get_json()


@pytest.mark.parametrize(
    ("content", "kind", "filename", "complaint"),
    [
        (PNG, "ecg", "ecg.pdf", "the content is PNG"),
        (NOTES, "ecg", "ecg.pdf", "not a recognised file type"),
        (PDF, "image", "photo.png", "the content is PDF"),
    ],
    ids=["png-as-ecg", "text-named-pdf", "pdf-as-image"],
)
def test_the_type_is_judged_from_the_content(
    app_client, db, auth, enrolled, tmp_path, content, kind, filename, complaint
):
    response = upload(
        app_client, auth("patient"), content, fields_for(content, kind=kind), filename=filename
    )

    assert complaint in assert_problem(response, 415)["detail"]
    assert_nothing_kept(db, tmp_path)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"kind": "x-ray"}, "kind"),
        ({"sha256": "ABC"}, "sha256"),
        ({"captured_at": "2026-11-20T08:00:00"}, "captured_at"),
        ({"captured_at": "2099-01-01T00:00:00Z"}, "captured_at"),
        ({"device": "Acme Beat 2"}, "device"),
        ({"device": '["Acme"]'}, "device"),
        ({"device": '{"colour": "red"}'}, "device"),
        ({"device": "[" * 5000}, "device"),  # nested past Python's recursion limit
        ({"device": '{"model": "Beat\\u0000"}'}, "device"),
        ({"device": '{"model": "\\ud800x"}'}, "device"),
        ({"device": '{"model": "Beat\\u202e2"}'}, "device"),
        ({"client_id": "not-a-uuid"}, "client_id"),
        ({"supersedes_id": random_id()}, "supersede_reason"),
        ({"shoe_size": "43"}, "shoe_size"),
    ],
)
def test_bad_fields_are_refused_with_their_errors(
    app_client, db, auth, enrolled, tmp_path, overrides, field
):
    response = upload(app_client, auth("patient"), PDF, fields_for(PDF, **overrides))

    errors = assert_problem(response, 422)["errors"]
    assert field in {name.split(".")[0] for name in errors}, errors
    assert_nothing_kept(db, tmp_path)


@pytest.mark.parametrize("missing", ["kind", "sha256", "captured_at"])
def test_required_fields(app_client, db, auth, enrolled, tmp_path, missing):
    fields = fields_for(PDF)
    del fields[missing]
    response = upload(app_client, auth("patient"), PDF, fields)

    assert missing in assert_problem(response, 422)["errors"]
    assert_nothing_kept(db, tmp_path)


def test_a_form_without_its_file(app_client, db, auth, enrolled, tmp_path):
    body = encode([(name, value, None) for name, value in fields_for(PDF).items()])
    response = app_client.post(UPLOADS, data=body, content_type=MULTIPART, headers=auth("patient"))

    assert "file" in assert_problem(response, 422)["errors"]
    assert_nothing_kept(db, tmp_path)


def test_two_files_are_refused(app_client, db, auth, enrolled, tmp_path):
    text = [(name, value, None) for name, value in fields_for(PDF).items()]
    body = encode([*text, ("file", PDF, "a.pdf"), ("file", PDF, "b.pdf")])
    response = app_client.post(UPLOADS, data=body, content_type=MULTIPART, headers=auth("patient"))

    assert "file" in assert_problem(response, 422)["errors"]
    assert_nothing_kept(db, tmp_path)


def test_a_boundary_longer_than_rfc_2046_allows_is_still_read(app_client, db, auth, enrolled):
    """Werkzeug's own test client sometimes makes 71 or 72 characters."""
    boundary = "x" * 90
    body = form_body(PDF).replace(BOUNDARY.encode(), boundary.encode())
    response = app_client.post(
        UPLOADS,
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
        headers=auth("patient"),
    )

    assert response.status_code == 201, response.get_json()


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (form_body(PDF)[:-40], MULTIPART),  # cut off before its end
        (b"no parts here", MULTIPART),
        (form_body(PDF), "multipart/form-data"),  # no boundary
        (form_body(PDF), f"multipart/form-data; boundary={'b' * 201}"),
    ],
    ids=["truncated", "no-parts", "no-boundary", "boundary-too-long"],
)
def test_a_malformed_body_is_a_bad_request(
    app_client, db, auth, enrolled, tmp_path, body, content_type
):
    response = app_client.post(
        UPLOADS, data=body, content_type=content_type, headers=auth("patient")
    )

    assert_problem(response, 400)
    assert_nothing_kept(db, tmp_path)


def test_only_multipart_is_read(app_client, auth, enrolled):
    response = app_client.post(UPLOADS, json=fields_for(PDF), headers=auth("patient"))

    assert_problem(response, 415)


# --- retries and replacements -------------------------------------------------------


@pytest.mark.parametrize("file_first", [False, True], ids=["fields-first", "file-first"])
def test_a_retry_answers_the_original(app_client, db, auth, enrolled, tmp_path, file_first):
    fields = fields_for(PDF, client_id=random_id())
    first = upload(app_client, auth("patient"), PDF, fields, file_first=file_first)
    again = upload(app_client, auth("patient"), PDF, fields, file_first=file_first)

    assert first.status_code == 201, first.get_json()
    assert again.status_code == 200, again.get_json()
    assert again.get_json() == first.get_json()
    assert again.headers["Location"] == first.headers["Location"]
    objects, temporary = stored(tmp_path)
    assert count(db, Upload) == len(objects) == 1 and temporary == []


@pytest.mark.parametrize("file_first", [False, True], ids=["fields-first", "file-first"])
def test_a_client_id_reused_for_another_file_is_a_conflict(
    app_client, db, auth, enrolled, tmp_path, file_first
):
    """A phone that reuses a client_id for a new file must hear it, not lose the file."""
    client_id = random_id()
    assert (
        upload(app_client, auth("patient"), PDF, fields_for(PDF, client_id=client_id)).status_code
        == 201
    )

    other = upload(
        app_client,
        auth("patient"),
        CSV,
        fields_for(CSV, client_id=client_id),
        file_first=file_first,
    )

    assert "another file" in assert_problem(other, 409)["detail"]
    objects, temporary = stored(tmp_path)
    assert count(db, Upload) == len(objects) == 1 and temporary == []


class WithdrawnMidway(io.BytesIO):
    """A body during whose transfer the participant withdraws (another request would
    do it; here the test's own session, on the same database)."""

    def __init__(self, body: bytes, withdraw: Callable[[], object]) -> None:
        super().__init__(body)
        self.withdraw, self.half = withdraw, len(body) // 2

    def read(self, size: int | None = -1) -> bytes:
        self._midway()
        return super().read(size)

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        self._midway()
        return super().readinto(buffer)

    def _midway(self) -> None:
        if self.withdraw is not None and self.tell() >= self.half:
            self.withdraw()
            self.withdraw = None


def test_a_consent_withdrawn_while_the_body_streams_keeps_nothing(
    app_client, db, world, auth, enrolled, tmp_path
):
    content = PDF + b"%" * (2 * MiB)
    body = WithdrawnMidway(
        form_body(content), lambda: withdraw_from_study(db, world.patient_a, world.coordinator_a)
    )

    response = app_client.post(
        UPLOADS,
        input_stream=body,
        content_type=MULTIPART,
        headers=auth("patient"),
        content_length=len(body.getvalue()),
    )

    assert "withdrew" in assert_problem(response, 409)["detail"]
    objects, temporary = stored(tmp_path)
    assert count(db, Upload) == 0 and objects == [] and temporary == []


def test_another_users_client_id_is_a_conflict(app_client, db, world, auth, enrolled):
    fields = fields_for(PDF, client_id=random_id())
    assert upload(app_client, auth("patient"), PDF, fields).status_code == 201

    response = upload(app_client, headers_for(app_client, world.patient_b.user), PDF, fields)

    assert_problem(response, 409)
    assert count(db, Upload) == 1


@pytest.mark.requirement("UPLOAD-2")
def test_a_replacement_points_to_the_upload_it_supersedes(app_client, db, auth, enrolled, tmp_path):
    old = upload(app_client, auth("patient"), PDF).get_json()
    corrected = PDF + b"% corrected\n"
    fields = fields_for(corrected, supersedes_id=old["id"], supersede_reason="wrong electrode")

    response = upload(app_client, auth("patient"), corrected, fields)

    assert response.status_code == 201, response.get_json()
    new = response.get_json()
    assert (new["supersedes_id"], new["supersede_reason"]) == (old["id"], "wrong electrode")
    (event,) = audit_events(db, "upload.create", new["id"])
    assert event.reason == "wrong electrode"
    still = app_client.get(f"{UPLOADS}/{old['id']}", headers=auth("patient"))
    assert still.status_code == 200 and still.get_json() == old
    assert len(stored(tmp_path)[0]) == 2


def test_a_replacement_needs_its_reason(app_client, db, auth, enrolled):
    old = upload(app_client, auth("patient"), PDF).get_json()
    for reason in (None, "  "):
        fields = fields_for(PDF, supersedes_id=old["id"])
        if reason is not None:
            fields["supersede_reason"] = reason
        response = upload(app_client, auth("patient"), PDF, fields)
        assert "supersede_reason" in assert_problem(response, 422)["errors"]
    assert count(db, Upload) == 1


# --- who -------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["coordinator_a", "monitor", "admin"])
def test_only_patients_and_nurses_upload(app_client, db, world, auth, enrolled, tmp_path, who):
    body = CountingReader(form_body(PDF))
    response = app_client.post(
        UPLOADS, input_stream=body, content_type=MULTIPART, headers=auth(who)
    )

    assert_problem(response, 403)
    assert body.consumed == 0
    assert_nothing_kept(db, tmp_path)


def test_a_patient_uploads_their_own_files_only(app_client, db, world, auth, enrolled, tmp_path):
    fields = fields_for(PDF, participant_id=str(world.patient_b.participant.id))
    response = upload(app_client, auth("patient"), PDF, fields)

    assert_problem(response, 403)
    assert_nothing_kept(db, tmp_path)


def test_a_nurse_attaches_files_to_their_own_visit_only(
    app_client, db, world, auth, visit, enrolled
):
    other_visit = enrolled[1]  # D14: not booked, not checked in
    fields = fields_for(PDF, participant_id=str(world.patient_a.participant.id))
    response = upload(app_client, auth("nurse_a"), PDF, {**fields, "visit_id": str(other_visit.id)})

    assert_problem(response, 409)
    assert count(db, Upload) == 0


def test_a_withdrawn_participant_uploads_nothing(app_client, db, world, auth, enrolled, tmp_path):
    withdraw_from_study(db, world.patient_a, world.coordinator_a)

    response = upload(app_client, auth("patient"), PDF)

    assert "withdrew" in assert_problem(response, 409)["detail"]
    assert_nothing_kept(db, tmp_path)


def test_without_a_consent_nothing_is_uploaded(app_client, db, world, tmp_path):
    headers = headers_for(app_client, world.patient_b.user)

    assert_problem(upload(app_client, headers, PDF), 409)
    assert_nothing_kept(db, tmp_path)


def test_the_upload_is_checked_before_the_file_is_read(
    app_client, db, world, auth, enrolled, tmp_path
):
    """Fields first: a refusal comes before the file's bytes are read."""
    withdraw_from_study(db, world.patient_a, world.coordinator_a)
    body = CountingReader(form_body(PDF + bytes(20 * MiB)))

    response = send_chunked(app_client, auth("patient"), body)

    assert_problem(response, 409)
    assert body.consumed < MiB
    assert_nothing_kept(db, tmp_path)


def test_the_storage_key_is_ours_never_the_file_name(app_client, db, auth, enrolled, tmp_path):
    """The key is an opaque id of ours: never the client's file name."""
    response = upload(app_client, auth("patient"), PDF, filename="../../etc/passwd.pdf")

    assert response.status_code == 201, response.get_json()
    row = db.scalars(select(Upload).where(Upload.id == uuid.UUID(response.get_json()["id"]))).one()
    assert [path.name for path in stored(tmp_path)[0]] == [row.storage_key]
    assert row.storage_key.isalnum() and row.filename == "../../etc/passwd.pdf"
