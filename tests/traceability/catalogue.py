"""The validated requirements, read from requirements.toml: one place names them, so a
marker with a typo and a requirement nobody tests are both caught."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

CATALOGUE = Path(__file__).with_name("requirements.toml")
KINDS = ("software", "partly organisational")


@dataclass(frozen=True)
class Requirement:
    """One requirement of ../shared/REGULATORY.md; `organisational` is the part the
    sponsor or site does outside the software, when there is one; `gap` is what the
    software does not do yet, so the table never claims more than the tests show."""

    id: str
    title: str
    sources: str
    kind: str
    organisational: str | None = None
    gap: str | None = None


def requirements(path: Path = CATALOGUE) -> dict[str, Requirement]:
    """The catalogue in file order, refusing an entry the table could not state honestly
    (an unknown kind, or a partly organisational one that does not say which part)."""
    with path.open("rb") as file:
        entries = tomllib.load(file)
    catalogue = {}
    for rid, fields in entries.items():
        requirement = Requirement(id=rid, **fields)
        if requirement.kind not in KINDS:
            raise ValueError(f"{rid}: kind must be one of {KINDS}, not {requirement.kind!r}")
        if (requirement.kind == "software") != (requirement.organisational is None):
            raise ValueError(
                f"{rid}: only a partly organisational requirement says its organisational part"
            )
        catalogue[rid] = requirement
    return catalogue


def requirement_ids(item: pytest.Item) -> list[str]:
    """The requirement ids an item's markers name (module, class and function markers)."""
    return [rid for mark in item.iter_markers("requirement") for rid in mark.args]
