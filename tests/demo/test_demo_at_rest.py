"""Issue 12's "done when": after `make run`'s demo seed and a journey through the API
that types free text everywhere people can, the raw SQLite file (with its WAL), the
upload folder and the S3 bucket hold none of the demo people's names, phones, e-mail
addresses, addresses, dates of birth, nor any of the free text typed, as someone who
copied the disk or the bucket would read them."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from flask import Flask
from flask.testing import FlaskClient

from demo.seed import DEMO_PASSWORD, PATIENTS, STAFF
from tests.api.diagnostics.test_tus import TUS, created, send
from tests.api.diagnostics.test_uploads import upload as post_form
from tests.fakes.s3 import BUCKET

# Free text typed in the journey: a relative's name and phone, as reviewers found.
REMARK = "Kleindochter Lotte Verbruggen doet mijn boodschappen"
CORRECTED_REMARK = "Kleindochter Lotte Verbruggen kookt elke dinsdag"
CORRECTION_REASON = "Lotte Verbruggen belde: het is dinsdag, niet maandag"
CANCEL_REASON = "In het ziekenhuis, dochter Griet bellen op +32 478 55 66 77"
WITHDRAWAL_REASON = "Zoon Pieter Janssens zegt dat het te vermoeiend is"
RESET_REASON = "Gebeld door schoonzoon Koen Wuyts vanaf +32 479 11 22 33"
CSV_NAME = "Janssens Jan, Kerkstraat 1"  # a device export that prints who it is for
SUPERSEDE_REASON = "Verkeerde meter, die van buurman Dirk Mertens"
FILENAMES = ("janssens-glucose", "janssens-week2")

FREE_TEXT = (
    "Lotte Verbruggen",
    "boodschappen",
    "dinsdag",
    "Griet",
    "478 55 66 77",
    "Pieter Janssens",
    "vermoeiend",
    "Koen Wuyts",
    "479 11 22 33",
    "Dirk Mertens",
    *FILENAMES,
)


def personal_data() -> set[str]:
    """Every identifying string of the demo's people, in the forms a scan would find."""
    found = {"Alex Admin"}
    for email, full_name, *_rest in STAFF:
        found |= {email, full_name}
    for _site, full_name, phone, email, _locale, address, born in PATIENTS:
        found |= {full_name, phone, phone.removeprefix("+"), address, address.split(",")[0]}
        found |= {born.isoformat(), born.strftime("%d/%m/%Y"), born.strftime("%Y%m%d")}
        if email:
            found.add(email)
    return found


def readable(data: bytes, secrets: set[str]) -> set[str]:
    """The secrets found in raw bytes, as UTF-8 or as UTF-16 (SQLite may use either)."""
    return {
        secret
        for secret in secrets
        if secret.encode() in data
        or secret.encode("utf-16-le") in data
        or secret.encode("latin-1", "ignore") in data
    }


@pytest.fixture
def s3_settings(s3_endpoint: str) -> dict[str, str]:
    return {
        "DCT_STORAGE_BACKEND": "s3",
        "DCT_S3_BUCKET": BUCKET,
        "DCT_S3_PREFIX": f"demo-{uuid.uuid4().hex}/",
        "DCT_S3_ENDPOINT_URL": s3_endpoint,
        "DCT_S3_REGION": "us-east-1",
    }


@pytest.fixture(params=["local", "s3"])
def demo_app(request, make_app, tmp_path) -> Flask:
    """The demo on a file database, uploads in a folder of the test's or in the bucket."""
    storage = request.getfixturevalue("s3_settings") if request.param == "s3" else {}
    app = make_app(
        DATABASE_URL=f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        DCT_UPLOAD_DIR=str(tmp_path / "uploads"),
        DCT_CONSOLE_SMS_INBOX=str(tmp_path / "inbox" / "console-sms.txt"),
        DCT_CONSOLE_MAIL_INBOX=str(tmp_path / "inbox" / "console-mail.txt"),
        **storage,
    )
    runner = app.test_cli_runner()
    for command in (["db", "upgrade"], ["demo", "seed"]):
        result = runner.invoke(args=command)
        assert result.exit_code == 0, result.output
    return app


def login(client: FlaskClient, email: str) -> dict[str, str]:
    answer = client.post("/api/v1/auth/login", json={"email": email, "password": DEMO_PASSWORD})
    assert answer.status_code == 200, answer.get_json()
    return {"Authorization": f"Bearer {answer.get_json()['access_token']}"}


def ok(answer, status: int = 200):  # type: ignore[no-untyped-def]
    assert answer.status_code == status, answer.get_json()
    return answer.get_json()


def journey(client: FlaskClient) -> None:
    """What the demo's people do in a first week, typing free text wherever they can."""
    coordinator = login(client, "coordinator.brussels@demo.dct.example")
    patient = login(client, "jan.janssens@demo.dct.example")
    me = ok(client.get("/api/v1/me", headers=patient))
    participant_id = me["participant_id"]

    due = ok(client.get("/api/v1/me/epro/due", headers=patient))["instances"]
    (baseline,) = [i for i in due if i["code"] == "QOL-BASELINE" and i["state"] == "open"]
    done = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    answered = ok(
        client.post(
            "/api/v1/epro/responses",
            headers=patient,
            json={
                "client_id": str(uuid.uuid4()),
                "instance_id": baseline["instance_id"],
                "status": "completed",
                "answers": [
                    {"item": "health_today", "value": 70},
                    {"item": "remarks", "value": REMARK},
                ],
                "started_at": (done - dt.timedelta(minutes=4)).isoformat(),
                "completed_at": done.isoformat(),
                "device_timezone": "Europe/Brussels",
            },
        ),
        201,
    )
    ok(
        client.post(
            f"/api/v1/epro/responses/{answered['id']}/corrections",
            headers=coordinator,
            json={
                "answers": [
                    {"item": "health_today", "value": 70},
                    {"item": "remarks", "value": CORRECTED_REMARK},
                ],
                "reason": CORRECTION_REASON,
            },
        ),
        201,
    )

    first = upload(client, patient, export_naming(6.1), done)
    upload(
        client,
        patient,
        export_naming(6.2),
        done,
        supersedes_id=first["id"],
        supersede_reason=SUPERSEDE_REASON,
    )
    half_sent(client, patient, export_naming(6.3) * 20_000, done)

    visits = ok(client.get(f"/api/v1/participants/{participant_id}/visits", headers=coordinator))
    open_visit = next(v for v in visits if v["status"] in ("planned", "scheduled", "confirmed"))
    ok(
        client.post(
            f"/api/v1/visits/{open_visit['id']}/cancel",
            headers=coordinator,
            json={"reason": CANCEL_REASON},
        )
    )
    ok(
        client.post(
            f"/api/v1/participants/{participant_id}/password-reset",
            headers=coordinator,
            json={"reason": RESET_REASON},
        ),
        202,
    )
    consents = ok(
        client.get(f"/api/v1/participants/{participant_id}/consents", headers=coordinator)
    )
    signed = next(c for c in consents if c["status"] == "complete")
    ok(client.get(f"/api/v1/consents/{signed['id']}/pdf", headers=coordinator))
    ok(
        client.post(
            f"/api/v1/consents/{signed['id']}/withdraw",
            headers=coordinator,
            json={"scope": "all", "reason": WITHDRAWAL_REASON},
        )
    )


def export_naming(value: float) -> bytes:
    return f"time,glucose\n{CSV_NAME}\n2026-12-01T08:00:00Z,{value}\n".encode()


def device() -> str:
    return json.dumps({"manufacturer": "Acme", "model": "G1", "serial": "S-1"})


def upload(
    client: FlaskClient,
    headers: dict[str, str],
    export: bytes,
    captured: dt.datetime,
    **fields: str,
) -> dict:
    form = {
        "kind": "glucose",
        "sha256": hashlib.sha256(export).hexdigest(),
        "captured_at": captured.isoformat(),
        "device": device(),
        **fields,
    }
    return ok(post_form(client, headers, export, form, filename=f"{FILENAMES[0]}.csv"), 201)


def half_sent(
    client: FlaskClient, headers: dict[str, str], export: bytes, captured: dt.datetime
) -> None:
    """A resumable upload left half-way: its metadata and staged bytes stay at rest."""
    headers = {**headers, **TUS}
    url = created(
        client,
        headers,
        export,
        kind="glucose",
        filename=f"{FILENAMES[1]}.csv",
        captured_at=captured.isoformat(),
        device=device(),
    )
    assert send(client, headers, url, export[: len(export) // 2], 0).status_code == 204


def stored_files(app: Flask, folder: Path) -> Iterator[tuple[str, bytes]]:
    """Every object the app stored: files under the upload folder, or the bucket's."""
    if app.config["DCT_STORAGE_BACKEND"] == "s3":
        s3 = boto3.client("s3", endpoint_url=app.config["DCT_S3_ENDPOINT_URL"])
        prefix = app.config["DCT_S3_PREFIX"]
        listing = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
        assert listing, "the demo and journey stored no object in the bucket"
        for entry in listing:
            body = s3.get_object(Bucket=BUCKET, Key=entry["Key"])["Body"].read()
            yield entry["Key"], body
        return
    paths = [p for p in folder.rglob("*") if p.is_file()]
    assert paths, "the demo and journey stored no file in the upload folder"
    for path in paths:
        yield str(path), path.read_bytes()


@pytest.mark.requirement("X-GDPR")
def test_nothing_identifying_is_readable_at_rest_after_the_demo_and_a_journey(demo_app, tmp_path):
    journey(demo_app.test_client())
    demo_app.extensions["db"].engine.dispose()  # close connections; the WAL stays if any
    secrets = personal_data() | set(FREE_TEXT) | {REMARK, CSV_NAME}

    database_files = [p for p in tmp_path.glob("demo.sqlite3*") if p.is_file()]
    for path in database_files:
        assert readable(path.read_bytes(), secrets) == set(), path.name
    for where, data in stored_files(demo_app, tmp_path / "uploads"):
        assert readable(data, secrets) == set(), where


def test_the_scan_finds_what_is_stored_in_clear(tmp_path):
    """The scan itself: a demo name written in clear into a file is found, in UTF-8 and
    UTF-16, so a passing scan means absence, not a blind reader."""
    secrets = personal_data()
    name = PATIENTS[0][1]
    assert readable(f"x{name}y".encode(), secrets) == {name}
    assert readable(name.encode("utf-16-le"), secrets) == {name}
    assert readable(b"nothing here", secrets) == set()
