"""What the CLI's summary and report tables show for the edge cases of a tree: an empty tree
has no empty table, and a reason that names a path is escaped as the paths are."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from flows.cli import render


@pytest.fixture
def printed(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    text = io.StringIO()
    monkeypatch.setattr(render, "out", Console(file=text, width=120, highlight=False))
    return text


def _report(by_category: dict[str, Any], left: list[dict[str, Any]]) -> dict[str, Any]:
    plan = dict.fromkeys(("moves", "quarantine", "hardlink", "unchanged", "conflicts"), 0)
    return {
        "files": sum(c["files"] for c in by_category.values()),
        "bytes": sum(c["bytes"] for c in by_category.values()),
        "duplicates": {"groups": 0, "wasted_bytes": 0, "top_groups": []},
        "plan": {**plan, "skipped": len(left)},
        "errors": {"count": 0},
        "by_category": by_category,
        "stages": {"scan": {"seconds": 0.1, "files": 0}},
        "left_alone": {"count": len(left), "items": left},
    }


def test_an_empty_tree_prints_no_empty_category_table(printed: io.StringIO) -> None:
    render.summary(_report({}, []))

    assert "Summary" in printed.getvalue() and "Stages" in printed.getvalue()
    assert "By category" not in printed.getvalue()


def test_a_tree_with_files_prints_its_categories(printed: io.StringIO) -> None:
    render.summary(_report({"images": {"files": 2, "bytes": 10}}, []))

    assert "By category" in printed.getvalue() and "images" in printed.getvalue()


def test_a_left_alone_reason_naming_a_path_is_escaped(printed: io.StringIO) -> None:
    reason = "left alone: the target of a symlink (by bell\x07\nlink)"
    left = [{"path": "a.txt", "reason": reason, "files": 1}]
    render.report_details(_report({"documents": {"files": 1, "bytes": 1}}, left))

    assert "(by bell\\x07\\nlink)" in printed.getvalue()
    assert "\x07" not in printed.getvalue()
