"""The bench scripts are run by hand, never by the suite; this only checks that each still
imports (a helper moved to another module once broke bench/ws_load.py for a week unseen)."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
SCRIPTS = sorted(BENCH.glob("*.py"))


def test_there_are_bench_scripts() -> None:
    assert len(SCRIPTS) >= 5


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_a_bench_script_imports(script: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))  # as `python bench/x.py` puts bench/ first
    found = runpy.run_path(str(script), run_name="bench_import_check")  # not "__main__"
    assert found  # its names are defined; nothing ran (each guards main with __main__)
