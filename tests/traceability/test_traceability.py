"""The traceability table is evidence only if it is complete, current and names real
requirements: these tests run the same check CI relies on, and show each way it fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.traceability.__main__ import problems, table
from tests.traceability.catalogue import Requirement, requirements

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.requirement("X-VALIDATION")


def test_every_requirement_has_a_test_and_docs_compliance_md_is_current() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "tests.traceability", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr


def test_a_marker_naming_an_unknown_requirement_stops_collection(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = --strict-markers\n")
    (tmp_path / "test_typo.py").write_text(
        'import pytest\n\n@pytest.mark.requirement("CONSENT-99")\ndef test_x():\n    pass\n'
    )
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-p", "tests.traceability.plugin"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == pytest.ExitCode.USAGE_ERROR
    assert "test_typo.py::test_x: 'CONSENT-99'" in run.stderr


def test_a_requirement_without_tests_and_a_stale_table_are_reported() -> None:
    catalogue = {
        "A-1": Requirement("A-1", "Shown", "src", "software"),
        "A-2": Requirement("A-2", "Not shown", "src", "software"),
    }
    tests = {"A-1": ["tests/test_a.py::test_a"]}
    assert problems(catalogue, tests, table(catalogue, tests)) == ["A-2 has no test"]
    assert problems(catalogue, tests, "old")[-1].startswith("docs/compliance.md is out of date")


def test_the_table_states_the_organisational_part_and_the_known_gaps() -> None:
    catalogue = requirements()
    partly = [r for r in catalogue.values() if r.kind == "partly organisational"]
    gaps = [r for r in catalogue.values() if r.gap]
    assert partly and gaps
    document = table(catalogue, {})
    for r in partly:
        assert f"Organisational part: {r.organisational}" in document
    for r in gaps:
        assert f"Known gap (not met yet): {r.gap}" in document


def test_the_catalogue_refuses_an_entry_it_could_not_state_honestly(tmp_path: Path) -> None:
    path = tmp_path / "requirements.toml"
    path.write_text('[A-1]\ntitle = "t"\nsources = "s"\nkind = "software"\norganisational = "x"\n')
    with pytest.raises(ValueError, match="only a partly organisational"):
        requirements(path)
    path.write_text('[A-1]\ntitle = "t"\nsources = "s"\nkind = "paper"\n')
    with pytest.raises(ValueError, match="kind must be one of"):
        requirements(path)
