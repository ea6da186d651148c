"""ruff and mypy are part of the README's test command, so CI and a developer run the same."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

CHECKS = {
    "ruff check": [str(BIN / "ruff"), "check", "."],
    "ruff format": [str(BIN / "ruff"), "format", "--check", "."],
    "mypy": [str(BIN / "mypy")],  # strict, over the packages pyproject.toml names
}


@pytest.mark.parametrize("check", list(CHECKS))
def test_the_code_passes(check: str) -> None:
    done = subprocess.run(CHECKS[check], cwd=REPO, capture_output=True, text=True, timeout=600)

    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
