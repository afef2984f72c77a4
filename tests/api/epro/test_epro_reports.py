"""The ePRO compliance report on a fixture with known numbers: every figure and rate,
as JSON and CSV, its filters, and who may read which part of it."""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from services.db import utcnow
from services.epro import reports as epro_reports
from services.models import EproInstance, InstanceStatus, Questionnaire, Timeliness
from services.people import participants as people
from services.studies import studies
from tests.checks import assert_problem
from tests.factories.epro import make_instance, make_questionnaire
from tests.factories.people import ADMIN, Patient, World, headers_for, make_participant, user_of

GRACE = dt.timedelta(minutes=1440)  # the app's default DCT_EPRO_GRACE_MINUTES
COUNTS = ("expected", "completed_on_time", "completed_late", "declined", "missed", "pending")

# Site A, patient_a: diary 3 on time, 1 late, 1 missed, 1 open now (pending), 1
# cancelled and 1 not yet open (neither counts); KCCQ 1 on time.
A = {
    "expected": 6,
    "completed_on_time": 4,
    "completed_late": 1,
    "declined": 0,
    "missed": 1,
    "pending": 1,
    "compliance_rate": 0.8333,
}
# Site A, a second participant with only a window that has not opened: listed, zeros.
A_NEW = {**dict.fromkeys(COUNTS, 0), "compliance_rate": None}
# Site B, patient_b: diary 2 on time, 1 late, 1 declined, 1 still scheduled with its
# window and grace ended (missed, though the missed job has not run), 1 closed an hour
# ago (pending: in its grace period).
B = {
    "expected": 5,
    "completed_on_time": 2,
    "completed_late": 1,
    "declined": 1,
    "missed": 1,
    "pending": 1,
    "compliance_rate": 0.6,
}
TOTAL = {
    "expected": 11,
    "completed_on_time": 6,
    "completed_late": 2,
    "declined": 1,
    "missed": 2,
    "pending": 2,
    "compliance_rate": 0.7273,
}


@dataclass
class Fixture:
    world: World
    diary: Questionnaire
    a_new: Patient


def window(
    db: Session,
    patient: Patient,
    questionnaire: Questionnaire,
    opens_at: dt.datetime | None = None,
    status: InstanceStatus = InstanceStatus.SCHEDULED,
    timeliness: Timeliness | None = None,
) -> EproInstance:
    """One instance (open now unless `opens_at` is given), in the state given."""
    instance = make_instance(
        db, patient.participant, questionnaire, opens_at=opens_at, status=status
    )
    instance.timeliness = timeliness.value if timeliness else None
    db.flush()
    return instance


def closed_ago(**delta: float) -> dt.datetime:
    """The opening of a 6-hour window that closed that long ago."""
    return utcnow() - dt.timedelta(**delta) - dt.timedelta(hours=6)


def opens_in(**delta: float) -> dt.datetime:
    return utcnow() + dt.timedelta(**delta)


ON_TIME = {"status": InstanceStatus.COMPLETED, "timeliness": Timeliness.ON_TIME}
LATE = {"status": InstanceStatus.COMPLETED, "timeliness": Timeliness.LATE}


@pytest.fixture
def fixture(db: Session, world: World) -> Fixture:
    diary = make_questionnaire(db, world.study, world.coordinator_a)
    kccq = make_questionnaire(db, world.study, world.coordinator_a, code="KCCQ")
    a, b = world.patient_a, world.patient_b
    for day in (2, 3, 4):
        window(db, a, diary, closed_ago(days=day), **ON_TIME)
    window(db, a, diary, closed_ago(days=5), **LATE)
    window(db, a, diary, closed_ago(days=6), InstanceStatus.MISSED)
    window(db, a, diary)  # open now
    window(db, a, diary, closed_ago(days=1), InstanceStatus.CANCELLED)
    window(db, a, diary, opens_in(hours=20))
    window(db, a, kccq, closed_ago(days=2), **ON_TIME)
    for day in (2, 3):
        window(db, b, diary, closed_ago(days=day), **ON_TIME)
    window(db, b, diary, closed_ago(days=4), **LATE)
    window(db, b, diary, closed_ago(days=5), InstanceStatus.DECLINED)
    window(db, b, diary, closed_ago(days=6))  # not answered, grace over: missed
    window(db, b, diary, closed_ago(hours=1))  # in its grace period: pending
    a_new = make_participant(db, world.site_a, coordinator=world.coordinator_a)
    window(db, a_new, diary, opens_in(hours=30))
    # Another study's participant: never in this study's report.
    other_site = studies.create_site(
        db, ADMIN, world.other_study.id, studies.NewSite("OS", "Other", "BE", "Europe/Brussels")
    )
    other = make_participant(db, other_site)
    other_diary = make_questionnaire(db, world.other_study, world.admin)
    window(db, other, other_diary, closed_ago(days=2), InstanceStatus.MISSED)
    return Fixture(world, diary, a_new)


def url(world: World) -> str:
    return f"/api/v1/studies/{world.study.id}/reports/epro-compliance"


def report(client: FlaskClient, world: World, who: str, **query: object) -> dict:
    response = client.get(
        url(world), query_string=query, headers=headers_for(client, user_of(world, who))
    )
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "application/json"
    return response.get_json()


def figures(row: dict) -> dict:
    return {name: row[name] for name in (*COUNTS, "compliance_rate")}


def by_code(rows: list[dict]) -> dict[str, dict]:
    return {row["subject_code"]: row for row in rows}


def code(patient: Patient) -> str:
    return patient.participant.subject_code


@pytest.mark.requirement("EPRO-7")
def test_every_figure_per_participant_site_and_study(client: FlaskClient, fixture: Fixture) -> None:
    world = fixture.world
    body = report(client, world, "monitor")
    rows = by_code(body["participants"])
    assert list(rows) == sorted(rows)  # by site code, then subject code
    assert set(rows) == {code(world.patient_a), code(fixture.a_new), code(world.patient_b)}
    assert figures(rows[code(world.patient_a)]) == A
    assert figures(rows[code(fixture.a_new)]) == A_NEW
    assert figures(rows[code(world.patient_b)]) == B
    row = rows[code(world.patient_a)]
    assert row["participant_id"] == str(world.patient_a.participant.id)
    assert (row["site_id"], row["site_code"]) == (str(world.site_a.id), world.site_a.code)
    sites = {site["site_code"]: site for site in body["sites"]}
    assert list(sites) == sorted([world.site_a.code, world.site_b.code])
    assert figures(sites[world.site_a.code]) == A  # the new participant adds zeros
    assert sites[world.site_a.code]["participants"] == 2
    assert figures(sites[world.site_b.code]) == B
    assert sites[world.site_b.code]["participants"] == 1
    assert figures(body["total"]) == TOTAL
    assert body["total"]["participants"] == 3
    assert body["study_id"] == str(world.study.id)
    assert body["study_code"] == world.study.code
    assert body["grace_minutes"] == 1440
    assert body["generated_at"].endswith("Z")
    assert (body["site_id"], body["questionnaire_code"]) == (None, None)


def test_expected_is_the_sum_of_its_parts(client: FlaskClient, fixture: Fixture) -> None:
    body = report(client, fixture.world, "admin")
    for row in [*body["participants"], *body["sites"], body["total"]]:
        parts = ("completed_on_time", "completed_late", "declined", "missed")
        assert row["expected"] == sum(row[name] for name in parts)


def test_monitor_reads_no_names(client: FlaskClient, fixture: Fixture) -> None:
    world = fixture.world
    response = client.get(url(world), headers=headers_for(client, world.monitor))
    text = response.get_data(as_text=True)
    assert world.patient_a.user.full_name not in text
    assert "full_name" not in text and "email" not in text
    assert set(response.get_json()["participants"][0]) == {
        "participant_id",
        "subject_code",
        "site_id",
        "site_code",
        *COUNTS,
        "compliance_rate",
    }


def test_filters(client: FlaskClient, fixture: Fixture) -> None:
    world = fixture.world
    only_b = report(client, world, "monitor", site_id=str(world.site_b.id))
    assert [row["subject_code"] for row in only_b["participants"]] == [code(world.patient_b)]
    assert [site["site_code"] for site in only_b["sites"]] == [world.site_b.code]
    assert figures(only_b["total"]) == B
    assert only_b["site_id"] == str(world.site_b.id)
    kccq = report(client, world, "monitor", questionnaire_code="KCCQ")
    assert [row["subject_code"] for row in kccq["participants"]] == [code(world.patient_a)]
    expected = {**dict.fromkeys(COUNTS, 0), "expected": 1, "completed_on_time": 1}
    assert figures(kccq["total"]) == {**expected, "compliance_rate": 1.0}
    assert kccq["questionnaire_code"] == "KCCQ"
    assert report(client, world, "monitor", questionnaire_code="NONE")["participants"] == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"site_id": "not-a-uuid"}, "site_id"),
        ({"questionnaire_code": "no spaces"}, "questionnaire_code"),
    ],
)
def test_bad_filters(client: FlaskClient, fixture: Fixture, query: dict, field: str) -> None:
    world = fixture.world
    response = client.get(
        url(world), query_string=query, headers=headers_for(client, world.monitor)
    )
    assert field in assert_problem(response, 422)["errors"]


@pytest.mark.parametrize(
    ("who", "site"), [("coordinator_a", "site_a"), ("coordinator_b", "site_b")]
)
def test_coordinators_read_their_sites_only(
    client: FlaskClient, fixture: Fixture, who: str, site: str
) -> None:
    world = fixture.world
    body = report(client, world, who)
    own = getattr(world, site)
    assert {row["site_id"] for row in body["participants"]} == {str(own.id)}
    assert [s["site_id"] for s in body["sites"]] == [str(own.id)]
    assert figures(body["total"]) == (A if site == "site_a" else B)


def test_coordinator_asking_for_another_site_gets_404(
    client: FlaskClient, fixture: Fixture
) -> None:
    world = fixture.world
    headers = headers_for(client, world.coordinator_b)
    response = client.get(url(world), query_string={"site_id": world.site_a.id}, headers=headers)
    assert_problem(response, 404)


@pytest.mark.parametrize("who", ["admin", "monitor"])
def test_admins_and_monitors_read_the_whole_study(
    client: FlaskClient, fixture: Fixture, who: str
) -> None:
    assert figures(report(client, fixture.world, who)["total"]) == TOTAL


@pytest.mark.parametrize("who", ["patient", "nurse_a"])
def test_patients_and_nurses_are_refused(client: FlaskClient, fixture: Fixture, who: str) -> None:
    world = fixture.world
    response = client.get(url(world), headers=headers_for(client, user_of(world, who)))
    assert_problem(response, 403)


def test_another_studys_monitor_gets_404(client: FlaskClient, fixture: Fixture) -> None:
    world = fixture.world
    response = client.get(url(world), headers=headers_for(client, world.other_monitor))
    assert_problem(response, 404)


def test_unknown_study_is_404(client: FlaskClient, fixture: Fixture) -> None:
    headers = headers_for(client, fixture.world.admin)
    response = client.get(
        "/api/v1/studies/00000000-0000-4000-8000-000000000000/reports/epro-compliance",
        headers=headers,
    )
    assert_problem(response, 404)


def csv_rows(response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_csv_download(client: FlaskClient, fixture: Fixture) -> None:
    world = fixture.world
    headers = {**headers_for(client, world.monitor), "Accept": "text/csv"}
    response = client.get(url(world), headers=headers)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "Accept" in response.headers["Vary"]
    day = utcnow().date().isoformat()
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment; filename=")
    assert f"epro-compliance-{world.study.code}-{day}.csv" in disposition
    assert response.get_data(as_text=True).splitlines()[0] == (
        "site_code,site_id,subject_code,participant_id,expected,completed_on_time,"
        "completed_late,declined,missed,pending,compliance_rate"
    )
    rows = {row["subject_code"]: row for row in csv_rows(response)}
    assert len(rows) == 3
    as_text = {k: str(v) for k, v in A.items()}
    assert {k: rows[code(world.patient_a)][k] for k in A} == as_text
    assert rows[code(fixture.a_new)]["compliance_rate"] == ""
    assert rows[code(world.patient_b)]["site_code"] == world.site_b.code
    assert rows[code(world.patient_b)]["participant_id"] == str(world.patient_b.participant.id)


def test_csv_follows_filters_and_scope(client: FlaskClient, fixture: Fixture) -> None:
    world = fixture.world
    headers = {**headers_for(client, world.coordinator_b), "Accept": "text/csv"}
    response = client.get(url(world), headers=headers)
    assert [row["subject_code"] for row in csv_rows(response)] == [code(world.patient_b)]
    headers = {**headers_for(client, world.monitor), "Accept": "text/csv"}
    response = client.get(url(world), query_string={"questionnaire_code": "KCCQ"}, headers=headers)
    assert [row["completed_on_time"] for row in csv_rows(response)] == ["1"]


def test_csv_refuses_patients_as_problem_json(client: FlaskClient, fixture: Fixture) -> None:
    world = fixture.world
    headers = {**headers_for(client, world.patient_a.user), "Accept": "text/csv"}
    assert_problem(client.get(url(world), headers=headers), 403)


def test_csv_cells_never_start_a_formula(
    db: Session, client: FlaskClient, fixture: Fixture
) -> None:
    world = fixture.world
    site = studies.create_site(
        db,
        ADMIN,
        world.study.id,
        studies.NewSite('=HYPERLINK("http://x")', "Evil", "BE", "Europe/Brussels"),
    )
    patient = make_participant(db, site)
    patient.participant.subject_code = "@SUM(A1:A9)"
    db.flush()
    window(db, patient, fixture.diary, closed_ago(days=2), InstanceStatus.MISSED)
    headers = {**headers_for(client, world.monitor), "Accept": "text/csv"}
    rows = csv_rows(client.get(url(world), headers=headers))
    (evil,) = [row for row in rows if row["site_id"] == str(site.id)]
    assert evil["site_code"] == '\'=HYPERLINK("http://x")'
    assert evil["subject_code"] == "'@SUM(A1:A9)"
    assert evil["missed"] == "1"  # numbers are left as they are


@pytest.mark.parametrize(
    ("accept", "media"),
    [
        (None, "application/json"),
        ("*/*", "application/json"),
        ("application/json", "application/json"),
        ("text/csv;q=0.9, application/json;q=0.5", "text/csv"),
        ("text/*", "text/csv"),
    ],
)
def test_content_negotiation(
    client: FlaskClient, fixture: Fixture, accept: str | None, media: str
) -> None:
    headers = headers_for(client, fixture.world.monitor)
    if accept:
        headers["Accept"] = accept
    assert client.get(url(fixture.world), headers=headers).mimetype == media


def test_other_media_types_are_406(client: FlaskClient, fixture: Fixture) -> None:
    headers = {**headers_for(client, fixture.world.monitor), "Accept": "application/pdf"}
    body = assert_problem(client.get(url(fixture.world), headers=headers), 406)
    assert "text/csv" in body["detail"]


def test_a_window_counts_as_missed_from_the_end_of_its_grace(db: Session, fixture: Fixture) -> None:
    """One second before the grace ends it can still be answered (pending); at the end
    of the grace it is expected and missed, whether or not the missed job has run."""
    world = fixture.world
    patient = make_participant(db, world.site_b, coordinator=world.coordinator_b)
    opens_at = dt.datetime(2026, 3, 17, 17, 0, tzinfo=dt.UTC)
    instance = window(db, patient, fixture.diary, opens_at)
    actor = people.actor_for(db, world.coordinator_b, "test")

    def counts_at(now: dt.datetime) -> dict[str, int]:
        result = epro_reports.compliance(db, actor, world.study.id, now=now, grace=GRACE)
        (row,) = [r for r in result.participants if r.participant_id == patient.participant.id]
        return {name: getattr(row, name) for name in ("expected", "missed", "pending")}

    end_of_grace = instance.closes_at + GRACE
    assert counts_at(opens_at - dt.timedelta(seconds=1)) == dict.fromkeys(
        ("expected", "missed", "pending"), 0
    )
    assert counts_at(opens_at) == {"expected": 0, "missed": 0, "pending": 1}
    assert counts_at(end_of_grace - dt.timedelta(seconds=1)) == {
        "expected": 0,
        "missed": 0,
        "pending": 1,
    }
    assert counts_at(end_of_grace) == {"expected": 1, "missed": 1, "pending": 0}


def test_an_answer_counts_while_its_window_is_open(db: Session, fixture: Fixture) -> None:
    """Answered or declined before the window closed: expected already, so answering
    early never lowers the rate."""
    world = fixture.world
    patient = make_participant(db, world.site_b, coordinator=world.coordinator_b)
    window(db, patient, fixture.diary, **ON_TIME)
    window(db, patient, fixture.diary, status=InstanceStatus.DECLINED)
    actor = people.actor_for(db, world.coordinator_b, "test")
    result = epro_reports.compliance(db, actor, world.study.id, now=utcnow(), grace=GRACE)
    (row,) = [r for r in result.participants if r.participant_id == patient.participant.id]
    assert (row.expected, row.completed_on_time, row.declined, row.pending) == (2, 1, 1, 0)
    assert row.compliance_rate == 0.5
