"""Reading uploads back over HTTP: metadata and lists by role, the file streamed and
re-hashed (a tampered file is never delivered whole, and raises an integrity alert),
immutability, and `flask uploads verify`."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from api.resources.diagnostics.uploads import attachment
from services.actor import Role
from services.diagnostics import envelope
from services.diagnostics.models import UploadKey
from services.diagnostics.reads import IntegrityFailure
from services.models import Upload
from tests.api.diagnostics.test_uploads import (
    CSV,
    PDF,
    UPLOADS,
    fields_for,
    upload,
)
from tests.checks import assert_problem, audit_events, count
from tests.conftest import AppFactory
from tests.factories.people import Headers, World, headers_for, make_staff, user_of

MiB = 1024 * 1024
BIG = PDF + bytes(range(256)) * (10 * 1024)  # 2.5 MiB: three chunks from storage


@pytest.fixture
def upload_app(make_app: AppFactory, tmp_path: Path) -> Flask:
    """An app storing into this test's folder; the CLI runs in it too."""
    return make_app(DCT_UPLOAD_DIR=str(tmp_path))


@pytest.fixture
def app_client(upload_app: Flask) -> FlaskClient:
    return upload_app.test_client()


@pytest.fixture
def uploaded(app_client: FlaskClient, auth: Headers, enrolled) -> dict:
    """patient_a's ECG, sent by the patient."""
    response = upload(app_client, auth("patient"), PDF, filename="Jan Peeters ecg.pdf")
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def object_of(db: Session, folder: Path, upload_id: str) -> Path:
    row = db.get(Upload, uuid.UUID(upload_id))
    assert row is not None
    return folder / "objects" / row.storage_key


def received(app_client: FlaskClient, headers: dict[str, str], upload_id: str) -> bytes:
    """The body as far as it arrives; raises when the server aborts the transfer."""
    response = app_client.get(f"{UPLOADS}/{upload_id}/content", headers=headers)
    assert response.status_code == 200
    body = bytearray()
    for chunk in response.response:
        body += chunk
    return bytes(body)


# --- metadata ----------------------------------------------------------------------


@pytest.mark.parametrize("who", ["patient", "coordinator_a", "nurse_a", "monitor"])
@pytest.mark.requirement("UPLOAD-4")
def test_metadata_is_read_by_the_team_the_patient_and_monitors(
    app_client, auth, visit, uploaded, who
):
    response = app_client.get(f"{UPLOADS}/{uploaded['id']}", headers=auth(who))

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["sha256"] == uploaded["sha256"]
    if who == "monitor":  # free text: withheld (tests/api/test_disclosure.py)
        assert body["filename"] == {"withheld": True, "length": len("Jan Peeters ecg.pdf")}
    else:
        assert body == uploaded


@pytest.mark.parametrize("who", ["coordinator_b", "other_monitor", "nurse_a"])
def test_others_do_not_see_the_upload(app_client, auth, uploaded, who):
    """nurse_a has no visit with patient_a here."""
    assert_problem(app_client.get(f"{UPLOADS}/{uploaded['id']}", headers=auth(who)), 404)


def test_admins_read_no_participant_data(app_client, auth, uploaded):
    for path in (f"{UPLOADS}/{uploaded['id']}", f"{UPLOADS}/{uploaded['id']}/content"):
        assert_problem(app_client.get(path, headers=auth("admin")), 403)


def test_an_unknown_upload_is_not_found(app_client, auth, enrolled):
    assert_problem(app_client.get(f"{UPLOADS}/{uuid.uuid4()}", headers=auth("patient")), 404)


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
@pytest.mark.requirement("UPLOAD-2")
def test_uploads_are_never_changed_nor_deleted(app_client, db, auth, uploaded, method):
    for who in ("patient", "coordinator_a"):
        response = getattr(app_client, method)(f"{UPLOADS}/{uploaded['id']}", headers=auth(who))
        assert_problem(response, 405)
        assert "GET" in response.headers["Allow"]
    assert app_client.get(f"{UPLOADS}/{uploaded['id']}", headers=auth("patient")).get_json() == (
        uploaded
    )
    assert count(db, Upload) == 1


# --- a participant's uploads --------------------------------------------------------


def participant_uploads(world: World) -> str:
    return f"/api/v1/participants/{world.patient_a.participant.id}/uploads"


@pytest.mark.parametrize("who", ["patient", "coordinator_a", "nurse_a", "monitor"])
def test_a_participants_uploads_newest_first(app_client, world, auth, visit, who):
    first = upload(app_client, auth("patient"), PDF).get_json()
    second = upload(app_client, auth("patient"), CSV, fields_for(CSV, kind="glucose")).get_json()

    response = app_client.get(participant_uploads(world), headers=auth(who))

    assert response.status_code == 200, response.get_json()
    assert [item["id"] for item in response.get_json()] == [second["id"], first["id"]]
    name = response.get_json()[0]["filename"]
    assert name == ({"withheld": True, "length": 7} if who == "monitor" else "ecg.pdf")
    assert '"total": 2' in response.headers["X-Pagination"]


def test_a_participants_uploads_by_kind_and_page(app_client, world, auth, enrolled):
    upload(app_client, auth("patient"), PDF)
    glucose = upload(app_client, auth("patient"), CSV, fields_for(CSV, kind="glucose")).get_json()
    headers = auth("coordinator_a")

    by_kind = app_client.get(f"{participant_uploads(world)}?kind=glucose", headers=headers)
    assert [item["id"] for item in by_kind.get_json()] == [glucose["id"]]
    page = app_client.get(f"{participant_uploads(world)}?page=2&page_size=1", headers=headers)
    assert len(page.get_json()) == 1 and page.get_json()[0]["kind"] == "ecg"
    assert (
        "kind"
        in assert_problem(
            app_client.get(f"{participant_uploads(world)}?kind=x-ray", headers=headers), 422
        )["errors"]
    )


@pytest.mark.parametrize(("who", "status"), [("coordinator_b", 404), ("admin", 403)])
def test_a_participants_uploads_are_refused_to_others(
    app_client, world, auth, uploaded, who, status
):
    assert_problem(app_client.get(participant_uploads(world), headers=auth(who)), status)


# --- the file -----------------------------------------------------------------------


@pytest.mark.parametrize("who", ["patient", "coordinator_a", "nurse_a"])
def test_the_file_is_downloaded_as_uploaded(app_client, db, world, auth, visit, who):
    sent = upload(app_client, auth("patient"), BIG, filename="ecg.pdf").get_json()

    response = app_client.get(f"{UPLOADS}/{sent['id']}/content", headers=auth(who))

    assert response.status_code == 200
    assert response.get_data() == BIG
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.headers["Content-Length"] == str(len(BIG))
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Content-SHA256"] == sent["sha256"]
    assert response.headers["Content-Disposition"] == (
        "attachment; filename=\"ecg.pdf\"; filename*=UTF-8''ecg.pdf"
    )
    (event,) = audit_events(db, "upload.download", sent["id"])
    assert event.actor_id == user_of(world, who).id
    assert event.participant_id == world.patient_a.participant.id


def test_every_download_is_audited(app_client, db, auth, uploaded):
    for _ in range(2):
        assert received(app_client, auth("coordinator_a"), uploaded["id"]) == PDF

    assert len(audit_events(db, "upload.download", uploaded["id"])) == 2


def test_a_csv_keeps_its_type_exactly(app_client, auth, enrolled):
    sent = upload(app_client, auth("patient"), CSV, fields_for(CSV, kind="glucose")).get_json()

    response = app_client.get(f"{UPLOADS}/{sent['id']}/content", headers=auth("patient"))

    assert response.headers["Content-Type"] == "text/csv"
    assert response.get_data() == CSV


@pytest.mark.parametrize(("who", "status"), [("monitor", 403), ("coordinator_b", 404)])
@pytest.mark.requirement("UPLOAD-4", "X-ACCESS")
def test_the_file_is_refused_to_monitors_and_other_sites(
    app_client, db, auth, uploaded, who, status
):
    response = app_client.get(f"{UPLOADS}/{uploaded['id']}/content", headers=auth(who))

    assert_problem(response, status)
    assert audit_events(db, "upload.download", uploaded["id"]) == []


@pytest.mark.parametrize(
    ("filename", "ascii_name", "utf8_name"),
    [
        ("../../etc/passwd", "passwd.pdf", "passwd.pdf"),
        ("report.html", "report.pdf", "report.pdf"),  # the judged type names the extension
        ("C:\\Users\\jan\\ecg.pdf", "ecg.pdf", "ecg.pdf"),
        ('my "best" ecg.pdf', "my best ecg.pdf", "my best ecg.pdf"),
        ("ecg\x00\x1b[2J\u202efdp.exe", "ecg_2Jfdp.pdf", "ecg[2Jfdp.pdf"),
        ("électrocardiogramme 心电图.pdf", "electrocardiogramme ___.pdf", None),
        ("..", "ecg-{id}.pdf", "ecg-{id}.pdf"),
        (None, "ecg-{id}.pdf", "ecg-{id}.pdf"),
    ],
)
def test_the_download_name_is_made_harmless(filename, ascii_name, utf8_name):
    row = Upload(id=uuid.uuid4(), kind="ecg", content_type="application/pdf", filename=filename)
    header = attachment(row)

    ascii_name = ascii_name.format(id=row.id)
    utf8_name = (utf8_name or filename or "").format(id=row.id)
    assert header == f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(utf8_name)}"
    assert header.isascii() and "/" not in header.replace("%2F", "")


def test_a_non_ascii_name_survives_the_round_trip(app_client, auth, enrolled):
    name = "électrocardiogramme 心电图.pdf"
    sent = upload(app_client, auth("patient"), PDF, filename=name).get_json()
    assert sent["filename"] == name

    response = app_client.get(f"{UPLOADS}/{sent['id']}/content", headers=auth("patient"))

    assert f"filename*=UTF-8''{quote(name, safe='')}" in response.headers["Content-Disposition"]


# --- integrity ----------------------------------------------------------------------


def records(sealed: bytes) -> list[bytes]:
    """A sealed object's records (the header apart)."""
    body = sealed[envelope.HEADER_SIZE :]
    return [body[at : at + envelope.RECORD] for at in range(0, len(body), envelope.RECORD)]


def flipped(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


def swapped(sealed: bytes) -> bytes:
    first, second, *rest = records(sealed)
    return b"".join([sealed[: envelope.HEADER_SIZE], second, first, *rest])


def last_record_dropped(sealed: bytes) -> bytes:
    return sealed[: envelope.HEADER_SIZE] + b"".join(records(sealed)[:-1])


TAMPERING = {
    "last-byte": lambda sealed: flipped(sealed, len(sealed) - 1),  # the final tag
    "first-chunk": lambda sealed: flipped(sealed, envelope.HEADER_SIZE + envelope.NONCE + 1),
    "header": lambda sealed: flipped(sealed, 7),  # its chunk size
    "cut-mid-record": lambda sealed: sealed[: len(sealed) // 2],
    "cut-at-a-record": last_record_dropped,
    "longer": lambda sealed: sealed + b"appended",
    "longer-by-a-record": lambda sealed: sealed + records(sealed)[0],
}


@pytest.mark.parametrize("tamper", TAMPERING.values(), ids=TAMPERING.keys())
@pytest.mark.parametrize("content", [PDF, BIG], ids=["small", "multi-chunk"])
def test_a_tampered_file_is_never_delivered_whole(
    app_client,
    db,
    auth,
    enrolled,
    tmp_path,
    content,
    tamper,
):
    sent = upload(app_client, auth("patient"), content).get_json()
    path = object_of(db, tmp_path, sent["id"])
    path.write_bytes(tamper(path.read_bytes()))

    body = bytearray()
    with pytest.raises(IntegrityFailure):  # the server aborts: on its first chunk, or later
        response = app_client.get(f"{UPLOADS}/{sent['id']}/content", headers=auth("coordinator_a"))
        for chunk in response.response:
            body += chunk

    assert len(body) < len(content) and content.startswith(bytes(body))
    (alert,) = audit_events(db, "upload.integrity_failure", sent["id"])
    assert alert.after["problem"] == "tampered" and alert.after["detected_by"] == "download"
    assert alert.after["expected_sha256"] == sent["sha256"]
    assert alert.after["detail"]  # what failed: a record's authentication, the header, the end
    assert alert.actor_role == "coordinator"
    assert len(audit_events(db, "upload.download", sent["id"])) == 1


def test_chunks_swapped_or_from_another_file_are_never_delivered(
    app_client, db, auth, enrolled, tmp_path
):
    """Same index, same size, another file (another data key); or two chunks swapped."""
    first = upload(app_client, auth("patient"), BIG).get_json()
    other = upload(app_client, auth("patient"), BIG[:-1] + b"!").get_json()
    target, donor = object_of(db, tmp_path, first["id"]), object_of(db, tmp_path, other["id"])
    original = target.read_bytes()
    borrowed = records(donor.read_bytes())[1]

    for altered in (swapped(original), original.replace(records(original)[1], borrowed)):
        target.write_bytes(altered)
        with pytest.raises(IntegrityFailure):
            b"".join(
                app_client.get(f"{UPLOADS}/{first['id']}/content", headers=auth("patient")).response
            )

    alerts = audit_events(db, "upload.integrity_failure", first["id"])
    assert [alert.after["problem"] for alert in alerts] == ["tampered", "tampered"]
    assert all("record 0" in a.after["detail"] or "record 1" in a.after["detail"] for a in alerts)


@pytest.mark.requirement("UPLOAD-1")
def test_a_file_that_opens_but_is_another_one_is_a_mismatch(
    app_client, db, auth, enrolled, tmp_path
):
    """Another upload's sealed object and data key put in place: every chunk opens, the
    plaintext's SHA-256 is still checked."""
    mine = upload(app_client, auth("patient"), BIG).get_json()
    theirs = upload(app_client, auth("patient"), BIG[:-1] + b"!").get_json()
    object_of(db, tmp_path, mine["id"]).write_bytes(
        object_of(db, tmp_path, theirs["id"]).read_bytes()
    )
    key_of = {
        upload_id: db.get(UploadKey, db.get(Upload, uuid.UUID(upload_id)).storage_key)
        for upload_id in (mine["id"], theirs["id"])
    }
    key_of[mine["id"]].key_id = key_of[theirs["id"]].key_id
    key_of[mine["id"]].wrapped_key = key_of[theirs["id"]].wrapped_key
    db.flush()

    body = bytearray()
    with pytest.raises(IntegrityFailure):
        for chunk in app_client.get(
            f"{UPLOADS}/{mine['id']}/content", headers=auth("patient")
        ).response:
            body += chunk

    assert len(body) < len(BIG)
    (alert,) = audit_events(db, "upload.integrity_failure", mine["id"])
    assert alert.after["problem"] == "mismatch"
    assert alert.after["actual_sha256"] == theirs["sha256"]


def test_a_missing_file_is_an_error_with_an_alert(app_client, db, auth, uploaded, tmp_path):
    object_of(db, tmp_path, uploaded["id"]).unlink()

    response = app_client.get(f"{UPLOADS}/{uploaded['id']}/content", headers=auth("patient"))

    assert "missing" in assert_problem(response, 500)["detail"]
    (alert,) = audit_events(db, "upload.integrity_failure", uploaded["id"])
    assert alert.after["problem"] == "missing"
    assert audit_events(db, "upload.download", uploaded["id"]) == []


def verify(app: Flask) -> tuple[int, str]:
    result = app.test_cli_runner().invoke(args=["uploads", "verify"])
    return result.exit_code, result.output


def test_verify_passes_when_every_file_is_intact(upload_app, app_client, auth, enrolled):
    upload(app_client, auth("patient"), PDF)
    upload(app_client, auth("patient"), BIG)

    exit_code, output = verify(upload_app)

    assert exit_code == 0, output
    assert "2 files checked: 0 failed, 2 intact" in output


def test_verify_finds_tampered_and_missing_files(
    upload_app, app_client, db, auth, enrolled, tmp_path
):
    intact = upload(app_client, auth("patient"), PDF).get_json()
    tampered = upload(app_client, auth("patient"), BIG).get_json()
    missing = upload(app_client, auth("patient"), CSV, fields_for(CSV, kind="glucose")).get_json()
    path = object_of(db, tmp_path, tampered["id"])
    path.write_bytes(flipped(path.read_bytes(), envelope.HEADER_SIZE + envelope.RECORD + 50))
    object_of(db, tmp_path, missing["id"]).unlink()

    exit_code, output = verify(upload_app)

    assert exit_code == 1, output
    assert "3 files checked: 2 failed, 1 intact" in output
    lines = output.splitlines()
    assert any(
        line.startswith("TAMPERED") and tampered["id"] in line and "record 1 fails" in line
        for line in lines
    )
    assert any(line.startswith("MISSING") and missing["id"] in line for line in lines)
    assert not any(intact["id"] in line for line in lines)
    (alert,) = audit_events(db, "upload.integrity_failure", tampered["id"])
    assert (alert.actor_role, alert.after["detected_by"]) == ("system", "verify")
    assert alert.after["expected_sha256"] == tampered["sha256"]
    assert (alert.after["problem"], alert.after["actual_size"]) == ("tampered", envelope.CHUNK)
    assert audit_events(db, "upload.integrity_failure", missing["id"])[0].after["problem"] == (
        "missing"
    )


def test_a_nurse_of_another_site_reads_nothing(app_client, db, world, auth, uploaded):
    """A nurse of another site, never assigned to patient_a, sees nothing of theirs."""
    other = make_staff(db, Role.NURSE, sites=[world.site_b])
    headers = headers_for(app_client, other)

    assert_problem(app_client.get(f"{UPLOADS}/{uploaded['id']}", headers=headers), 404)
    assert_problem(app_client.get(f"{UPLOADS}/{uploaded['id']}/content", headers=headers), 404)
