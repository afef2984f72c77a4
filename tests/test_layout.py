"""The layout is the architecture (../shared/ARCHITECTURE.md): these tests keep a new
module from landing beside the kernel, and an import from pointing the wrong way,
which a reviewer would otherwise have to notice by reading."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KERNEL = {
    "__init__",
    "db",
    "errors",
    "actor",
    "access",
    "clock",
    "validation",
    "crypto",
    "passwords",
    "models",
}
# What each layer must not import: the domain knows no HTTP, no scheduler and no
# eConsent; eConsent and the scheduler know no HTTP.
REFUSED = {
    "services": ("flask", "api", "consent", "scheduling"),
    "consent": ("flask", "api"),
    "scheduling": ("flask", "api"),
}


def imported(path: Path) -> set[str]:
    """The top-level names of every module a file imports, wherever the import stands."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_services_holds_only_the_kernel_beside_its_capability_packages() -> None:
    outside = {path.stem for path in (ROOT / "services").glob("*.py")} - KERNEL
    assert not outside, f"put these in a capability package: {sorted(outside)}"


@pytest.mark.parametrize("layer", sorted(REFUSED))
def test_dependencies_point_one_way(layer: str) -> None:
    wrong = {
        str(path.relative_to(ROOT)): sorted(imported(path) & set(REFUSED[layer]))
        for path in (ROOT / layer).rglob("*.py")
        if imported(path) & set(REFUSED[layer])
    }
    assert not wrong, f"{layer} must not import {REFUSED[layer]}: {wrong}"
