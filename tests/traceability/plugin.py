"""pytest plugin: registers the `requirement` marker and refuses, at collection, a marker
that names no requirement of the catalogue (a typo would otherwise look like evidence)."""

from __future__ import annotations

import pytest

from tests.traceability.catalogue import requirement_ids, requirements


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "requirement(*ids): the test shows these requirements of requirements.toml",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    known = requirements()
    unknown = sorted(
        {
            f"{item.nodeid}: {rid!r}"
            for item in items
            for rid in requirement_ids(item)
            if rid not in known
        }
    )
    if unknown:
        raise pytest.UsageError(
            "requirement markers naming no requirement of tests/traceability/requirements.toml:\n  "
            + "\n  ".join(unknown)
        )
