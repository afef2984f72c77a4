"""ZIP archives inspected before they are accepted, and HTML never stored (issue 12,
finding 8): through the API, as a simple upload and as a resumable one, each refusal
answering 422 or 415 and leaving no row, object or staged byte."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import zipfile
import zlib
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from services.diagnostics.zip_inspection import ZipInspector, ZipLimits
from services.models import TusTransfer, Upload
from tests.api.diagnostics.test_tus import TUS, created, send, staged, stored_objects
from tests.api.diagnostics.test_uploads import assert_nothing_kept, fields_for, upload
from tests.checks import assert_problem, count
from tests.conftest import AppFactory

MiB = 1024 * 1024


def archive(*entries: tuple[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as zipped:
        for name, data in entries:
            zipped.writestr(name, data)
    return buffer.getvalue()


def bomb(inflated: int = 200 * MiB) -> bytes:
    """One entry of zeros, deflated as it is written (never whole in memory): a few
    hundred KiB that inflate to `inflated` bytes."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zipped,
        zipped.open("readings.csv", "w", force_zip64=True) as entry,
    ):
        zeros = bytes(MiB)
        for _ in range(inflated // MiB):
            entry.write(zeros)
    return buffer.getvalue()


def encrypted_entry() -> bytes:
    """An archive whose entry says it is encrypted (general purpose flag bit 0)."""
    data = bytearray(archive(("a.csv", b"a,b\n1,2\n")))
    flags = struct.unpack_from("<H", data, 6)[0]
    struct.pack_into("<H", data, 6, flags | 1)
    return bytes(data)


def miscounted() -> bytes:
    """An end record listing more entries than the archive holds."""
    data = bytearray(archive(("a.csv", b"a,b\n"), ("b.csv", b"c,d\n")))
    end = data.rfind(b"PK\x05\x06")
    struct.pack_into("<H", data, end + 10, 3)
    return bytes(data)


GOOD = archive(("steps.csv", b"day,steps\n" + b"2026-12-01,4200\n" * 500), ("meta.json", b"{}"))
REFUSED = {
    "bomb": (bomb(), "inflates to more than 100 times its compressed size"),
    "cut-short": (GOOD[:-30], "cut short"),
    "encrypted": (encrypted_entry(), "is encrypted"),
    "nested-by-name": (archive(("inner.zip", GOOD)), "is itself an archive"),
    "nested-by-content": (archive(("inner.dat", GOOD)), "is itself an archive"),
    "miscounted": (miscounted(), "central directory lists"),
    "lzma": (archive(("a.csv", b"a,b\n" * 100), method=zipfile.ZIP_LZMA), "method 14"),
}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "uploads"


@pytest.fixture
def app_client(make_app: AppFactory, folder: Path) -> FlaskClient:
    return make_app(DCT_UPLOAD_DIR=str(folder)).test_client()


def wearable(content: bytes) -> dict[str, str]:
    return fields_for(content, kind="wearable_export")


# --- simple uploads ------------------------------------------------------------------


def test_a_good_archive_is_accepted_and_read_back(app_client, db, auth, enrolled):
    response = upload(app_client, auth("patient"), GOOD, wearable(GOOD), filename="steps.zip")

    assert response.status_code == 201, response.get_json()
    assert response.get_json()["content_type"] == "application/zip"
    content = app_client.get(
        f"/api/v1/uploads/{response.get_json()['id']}/content", headers=auth("coordinator_a")
    )
    assert content.data == GOOD


@pytest.mark.parametrize(("content", "complaint"), REFUSED.values(), ids=REFUSED.keys())
def test_an_archive_that_fails_inspection_is_refused_and_nothing_kept(
    app_client, db, auth, enrolled, folder, content, complaint
):
    response = upload(app_client, auth("patient"), content, wearable(content))

    body = assert_problem(response, 422)
    assert complaint in body["detail"] and complaint in body["errors"]["file"][0]
    assert_nothing_kept(db, folder)


@pytest.mark.parametrize(
    ("settings", "content", "complaint"),
    [
        (
            {"DCT_ZIP_MAX_ENTRIES": 5},
            archive(*((f"day-{n}.csv", b"a,b\n") for n in range(6))),
            "more than 5 entries",
        ),
        (
            {"DCT_ZIP_MAX_UNCOMPRESSED_BYTES": MiB},
            archive(("a.bin", os.urandom(MiB // 2)), ("b.bin", os.urandom(MiB // 2 + 1))),
            f"more than {MiB} bytes in all",
        ),
        (
            {"DCT_ZIP_MAX_RATIO": 2},
            archive(("a.csv", b"2026-12-01,4200\n" * 200_000)),
            "more than 2 times",
        ),
    ],
    ids=["entries", "uncompressed", "ratio"],
)
def test_the_limits_are_settings(
    make_app, db, auth, enrolled, folder, settings, content, complaint
):
    client = make_app(DCT_UPLOAD_DIR=str(folder), **settings).test_client()

    response = upload(client, auth("patient"), content, wearable(content))

    assert complaint in assert_problem(response, 422)["detail"]
    assert_nothing_kept(db, folder)


# --- resumable uploads ------------------------------------------------------------------


@pytest.fixture
def tus_headers(app_client, auth, enrolled) -> dict[str, str]:
    return {**auth("patient"), **TUS}


def test_a_resumable_bomb_is_refused_at_its_last_byte_and_nothing_kept(
    app_client, db, tus_headers, folder
):
    content = REFUSED["bomb"][0]
    url = created(app_client, tus_headers, content, kind="wearable_export", filename="x.zip")
    half = len(content) // 2
    assert send(app_client, tus_headers, url, content[:half], 0).status_code == 204

    response = send(app_client, tus_headers, url, content[half:], half)

    assert "inflates to more than 100 times" in assert_problem(response, 422)["detail"]
    assert count(db, Upload) == 0
    assert staged(folder) == [] and stored_objects(folder) == []
    assert count(db, TusTransfer) == 0


def test_a_good_resumable_archive_is_accepted(app_client, db, tus_headers):
    url = created(app_client, tus_headers, GOOD, kind="wearable_export", filename="steps.zip")

    response = send(app_client, tus_headers, url, GOOD, 0)

    assert response.status_code == 204, response.get_data(as_text=True)
    (stored,) = db.query(Upload).all()
    assert stored.content_type == "application/zip"
    assert stored.sha256 == hashlib.sha256(GOOD).hexdigest()


# --- HTML -----------------------------------------------------------------------------

HTML = {
    "doctype": b"<!DOCTYPE html><html><body><script>fetch('/api')</script></body></html>",
    "xhtml-as-xml": b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"></html>',
    "script-in-a-csv": b"time,value\n<script>alert(document.cookie)</script>,1\n",
    "svg": b'\xef\xbb\xbf<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
    "fragment": b"<p>Take <b>two</b> tablets</p>",
}


@pytest.mark.parametrize("content", HTML.values(), ids=HTML.keys())
@pytest.mark.parametrize(
    "kind", ["ecg", "spirometry", "blood_pressure", "glucose", "wearable_export", "other"]
)
def test_html_is_never_stored_under_any_kind(app_client, db, auth, enrolled, folder, kind, content):
    response = upload(app_client, auth("patient"), content, fields_for(content, kind=kind))

    assert "HTML is never accepted" in assert_problem(response, 415)["detail"]
    assert_nothing_kept(db, folder)


def test_html_sent_resumably_is_refused_too(app_client, db, tus_headers, folder):
    content = HTML["doctype"]
    url = created(app_client, tus_headers, content, kind="other", filename="page.xml")

    response = send(app_client, tus_headers, url, content, 0)

    assert "HTML is never accepted" in assert_problem(response, 415)["detail"]
    assert count(db, Upload) == 0
    assert staged(folder) == [] and stored_objects(folder) == []


# --- the inspector alone -----------------------------------------------------------------


DEFAULT_LIMITS = ZipLimits()


def inspect(content: bytes, limits: ZipLimits = DEFAULT_LIMITS, step: int = 4096) -> ZipInspector:
    inspector = ZipInspector(limits)
    for start in range(0, len(content), step):
        inspector.feed(content[start : start + step])
    return inspector


@pytest.mark.parametrize("step", [1, 7, 4096, 1 << 20])
def test_any_cut_of_the_stream_gives_the_same_verdict(step):
    """The bytes arrive in pieces of any size, a header split anywhere."""
    assert inspect(GOOD, step=step).problem() is None
    assert inspect(GOOD, step=step).entries == 2


def test_a_streamed_archive_with_data_descriptors_is_read(tmp_path):
    """Written to a pipe (no seeking back), the sizes follow each entry's data."""
    read, write = os.pipe()
    with (
        os.fdopen(write, "wb") as pipe,
        zipfile.ZipFile(pipe, "w", zipfile.ZIP_DEFLATED) as zipped,
        zipped.open("a.csv", "w") as entry,
    ):
        entry.write(b"a,b\n" * 1000)
    with os.fdopen(read, "rb") as pipe:
        content = pipe.read()

    inspector = inspect(content)

    assert inspector.problem() is None and inspector.entries == 1


def test_a_bomb_stops_inflating_at_the_limit():
    inspector = inspect(REFUSED["bomb"][0])

    assert inspector.problem()
    assert inspector.inflated < 2 * MiB  # stopped just past the ratio's floor


def test_headers_that_understate_an_entry_are_caught():
    """The declared size is never trusted: it must be what inflating gives."""
    data = bytearray(archive(("a.csv", b"a,b\n" * 1000)))
    struct.pack_into("<I", data, 22, 10)  # the local header's uncompressed size

    assert "declares 10 bytes but inflates to 4000" in inspect(bytes(data)).problem()


def test_an_empty_archive_passes_and_other_files_are_left_alone():
    assert inspect(archive()).problem() is None
    other = inspect(b"%PDF-1.7\n" + os.urandom(1000))
    assert not other.is_zip and other.problem() is None
    assert not inspect(b"").is_zip


def test_an_entry_whose_bytes_were_changed_fails_its_crc():
    data = bytearray(archive(("a.csv", os.urandom(2000))))
    data[60:80] = b"\xff" * 20  # inside the entry's (stored-block) deflate data

    assert "fails its CRC-32" in inspect(bytes(data)).problem()


def test_deflate_that_is_not_deflate_is_malformed():
    data = bytearray(archive(("a.csv", b"a,b\n" * 1000)))
    data[40:44] = b"\xff\xff\xff\xff"  # the first bytes of the compressed data

    assert "malformed" in inspect(bytes(data)).problem()


def test_stored_entries_count_as_inflated_bytes():
    content = archive(("a.bin", os.urandom(3000)), method=zipfile.ZIP_STORED)

    inspector = inspect(content, ZipLimits(uncompressed=2000))

    assert "more than 2000 bytes in all" in inspector.problem()


def test_a_raw_deflate_check_of_the_fixture():
    """The bomb fixture really is one: it inflates 200 MiB from a few hundred KiB."""
    content = REFUSED["bomb"][0]
    assert len(content) < MiB
    start = content.index(b"readings.csv") + len("readings.csv")
    extra = struct.unpack_from("<H", content, 28)[0]
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    assert len(inflater.decompress(content[start + extra :], 4 * MiB)) == 4 * MiB
