"""tests/conftest.py starts the longest test files first: a file renamed or moved must not
silently fall back to xdist's order (the longest ones ran last, one worker alone)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import LONGEST_FIRST

ROOT = Path(__file__).resolve().parent.parent


def test_every_file_started_first_exists() -> None:
    missing = [path for path in LONGEST_FIRST if not (ROOT / path).is_file()]

    assert missing == []
    assert len(set(LONGEST_FIRST)) == len(LONGEST_FIRST)


def test_pytest_keeps_the_collected_order() -> None:
    """--no-loadscope-reorder: without it xdist sorts the files by their number of tests."""
    addopts = (ROOT / "pyproject.toml").read_text()

    assert "--dist loadfile --no-loadscope-reorder" in addopts
