"""`make run`'s demo data: seeded twice without change, and alive for a new user."""

from __future__ import annotations

import hashlib
import re

from demo.seed import DEMO_PASSWORD
from scheduling.jobs import job_specs
from scheduling.runner import run_job

CODE = re.compile(r"\b[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}\b")


def test_the_demo_seed_is_idempotent_and_gives_the_patient_a_questionnaire_to_answer(
    make_app, tmp_path
):
    app = make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'demo.sqlite3'}")
    runner = app.test_cli_runner()
    assert runner.invoke(args=["db", "upgrade"]).exit_code == 0
    for _ in range(2):
        result = runner.invoke(args=["demo", "seed"])
        assert result.exit_code == 0, result.output
    client = app.test_client()
    login = client.post(
        "/api/v1/auth/login",
        json={"email": "jan.janssens@demo.dct.example", "password": DEMO_PASSWORD},
    )
    headers = {"Authorization": f"Bearer {login.get_json()['access_token']}"}

    due = client.get("/api/v1/me/epro/due", headers=headers).get_json()["instances"]

    assert [(i["code"], i["state"]) for i in due if i["state"] == "open"] == [
        ("QOL-BASELINE", "open")
    ]
    assert "HF-DIARY" in {i["code"] for i in due}
    questionnaire = client.get(
        f"/api/v1/questionnaires/{due[0]['questionnaire_id']}", headers=headers
    )
    assert questionnaire.status_code == 200
    assert questionnaire.get_json()["language"] == "nl"


def test_the_demo_shows_readings_with_an_alert_and_an_uploaded_export(make_app, tmp_path):
    app = make_app(
        DATABASE_URL=f"sqlite:///{tmp_path / 'demo.sqlite3'}", DCT_UPLOAD_DIR=str(tmp_path / "up")
    )
    runner = app.test_cli_runner()
    assert runner.invoke(args=["db", "upgrade"]).exit_code == 0
    assert runner.invoke(args=["demo", "seed"]).exit_code == 0
    client = app.test_client()

    def headers(email: str) -> dict[str, str]:
        login = client.post("/api/v1/auth/login", json={"email": email, "password": DEMO_PASSWORD})
        return {"Authorization": f"Bearer {login.get_json()['access_token']}"}

    coordinator = headers("coordinator.brussels@demo.dct.example")
    (study,) = client.get("/api/v1/studies", headers=coordinator).get_json()
    flagged = client.get(f"/api/v1/studies/{study['id']}/readings/flagged", headers=coordinator)
    assert [r["value"] for r in flagged.get_json()] == [{"systolic": 171, "diastolic": 96}]
    participant_id = flagged.get_json()[0]["participant_id"]
    (upload,) = client.get(
        f"/api/v1/participants/{participant_id}/uploads", headers=coordinator
    ).get_json()
    content = client.get(f"/api/v1/uploads/{upload['id']}/content", headers=coordinator)
    assert content.status_code == 200
    assert hashlib.sha256(content.data).hexdigest() == upload["sha256"]
    assert upload["content_type"] == "text/csv"


def test_the_demo_reset_journey_reads_its_codes_from_the_console_inboxes(make_app, tmp_path):
    """The guide's account life cycle as written: a reset by SMS for the patient without
    e-mail, one by e-mail for a nurse, each code read from its console inbox."""
    sms_inbox, mail_inbox = tmp_path / "console-sms.txt", tmp_path / "console-mail.txt"
    app = make_app(
        DATABASE_URL=f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        DCT_EMAIL_GATEWAY="console",
        DCT_CONSOLE_SMS_INBOX=str(sms_inbox),
        DCT_CONSOLE_MAIL_INBOX=str(mail_inbox),
    )
    runner = app.test_cli_runner()
    assert runner.invoke(args=["db", "upgrade"]).exit_code == 0
    seeded = runner.invoke(args=["demo", "seed"])
    assert str(sms_inbox) in seeded.output and str(mail_inbox) in seeded.output
    client = app.test_client()
    for body in ({"phone": "+32470000103"}, {"email": "nurse.an@demo.dct.example"}):
        assert client.post("/api/v1/auth/password-reset", json=body).status_code == 202
    sessions = app.extensions["db"].sessions
    for spec in job_specs(app.config):
        if spec.id in ("dispatch-sms", "dispatch-email"):
            run_job(sessions, spec.id, spec.func, spec.own_transactions)

    sms_code = CODE.findall(sms_inbox.read_text())[-1]
    mail_code = CODE.findall(mail_inbox.read_text())[-1]
    for code, login in (
        (sms_code, {"phone": "+32470000103"}),
        (mail_code, {"email": "nurse.an@demo.dct.example"}),
    ):
        confirmed = client.post(
            "/api/v1/auth/password-reset/confirm",
            json={"code": code, "password": "my new long password 2"},
        )
        assert confirmed.status_code == 200, confirmed.get_json()
        relogin = client.post(
            "/api/v1/auth/login", json={**login, "password": "my new long password 2"}
        )
        assert relogin.status_code == 200
