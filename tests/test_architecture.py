"""docs/architecture.md names every module of the four packages, and only modules that exist:
a new module or a move that forgets the page fails here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("storage", "tasks", "flows", "api")


def _listed() -> set[str]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    cells = re.findall(r"^\| ((?:storage|tasks|flows|api)/[^ |]+\.py) \|", text, re.M)
    return {cell.replace("\\_", "_") for cell in cells}


def _modules() -> set[str]:
    found = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            rel = path.relative_to(ROOT)
            if "migrations" in rel.parts:
                continue
            if rel.name == "__init__.py" and not path.read_text().strip():
                continue  # an empty package marker is no room
            found.add(rel.as_posix())
    return found


def test_every_module_is_on_the_architecture_page() -> None:
    missing = sorted(_modules() - _listed())
    assert missing == [], f"add to docs/architecture.md: {missing}"


def test_the_architecture_page_names_no_module_that_is_gone() -> None:
    gone = sorted(_listed() - _modules())
    assert gone == [], f"remove from docs/architecture.md: {gone}"


MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _sources() -> list[Path]:
    return sorted(
        path
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.relative_to(ROOT).parts
    )


def test_no_module_is_over_400_lines() -> None:
    """Small modules with one owner (issue 13): a module past this has two jobs."""
    long = {
        path.relative_to(ROOT).as_posix(): n
        for path in _sources()
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_no_function_is_over_60_lines() -> None:
    long = {}
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(ROOT).as_posix()}:{node.lineno} {node.name}"] = lines
    assert long == {}


def _collected_as(path: Path) -> str:
    """The module name pytest's default import mode gives a test file: its basename, with the
    packages (folders with an __init__.py) it sits in before it."""
    parts, folder = [path.stem], path.parent
    while (folder / "__init__.py").exists():
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts)


def test_no_two_test_files_are_collected_as_one_module() -> None:
    """Two test files of one name in folders that are not packages (tests/flows, tests/storage)
    collide when a run collects both: the whole suite's run failed so ("import file mismatch",
    a CI run of 2164a6e), while each file ran alone."""
    names: dict[str, list[str]] = {}
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        names.setdefault(_collected_as(path), []).append(path.relative_to(ROOT).as_posix())
    assert {name: paths for name, paths in names.items() if len(paths) > 1} == {}
