"""The layering of DESIGN.md, checked on every run: imports flow `flows -> tasks -> storage`,
`api -> storage`; the API never imports flows or tasks (it starts deployments by name), and
storage imports nothing above it. Only flows/cli may import api (operator commands)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "storage": {"tasks", "flows", "api"},
    "tasks": {"flows", "api"},
    "api": {"flows", "tasks"},
}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_nothing_above_it(package: str) -> None:
    crossings = sorted(
        f"{path.relative_to(ROOT)}: {name}"
        for path in (ROOT / package).rglob("*.py")
        for name in _imports(path)
        if name.split(".")[0] in FORBIDDEN[package]
    )
    assert crossings == []


def test_only_the_command_line_of_flows_imports_the_api() -> None:
    crossings = sorted(
        f"{path.relative_to(ROOT)}: {name}"
        for path in (ROOT / "flows").rglob("*.py")
        if "cli" not in path.relative_to(ROOT).parts
        for name in _imports(path)
        if name.split(".")[0] == "api"
    )
    assert crossings == []


def test_the_check_sees_an_import_that_crosses(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from flows.organize import organize_flow\nimport tasks.scan\n")
    assert _imports(module) == {"flows.organize", "tasks.scan"}
