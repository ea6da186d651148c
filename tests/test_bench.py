"""The bench scripts are run by hand, never by the suite; this only checks that each still
imports (a helper moved to another module once broke bench/ws_load.py for a week unseen)."""

from __future__ import annotations

import re
import runpy
import sys
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


def test_footprint_prints_the_end_of_a_failed_runs_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bench/footprint.py sent the CLI's stderr to /dev/null: a failed run said only its
    status. Now it is kept in the work folder and its end printed."""
    monkeypatch.syspath_prepend(str(BENCH))
    footprint = runpy.run_path(str(BENCH / "footprint.py"), run_name="bench_import_check")
    fileorg = tmp_path / "fileorg"
    lines = "".join(f"line {i}\\n" for i in range(2000))  # more than the tail printed
    fileorg.write_text(f"#!/bin/sh\nprintf '{lines}' >&2\necho 'Boom: the last line' >&2\nexit 3\n")
    fileorg.chmod(0o755)
    work = tmp_path / "work"

    with pytest.raises(SystemExit) as failed:
        footprint["run_once"](tmp_path, {"PATH": "/usr/bin:/bin"}, work, str(fileorg))

    said = str(failed.value)
    assert said.startswith("fileorg organize failed with status 3; the end of its stderr (")
    assert said.endswith("line 1999\nBoom: the last line\n")
    assert "line 0\n" not in said  # the end, not all of it
    assert (work / "organize.stderr").read_text().startswith("line 0\nline 1\n")


def test_footprints_docstring_names_only_what_it_reads(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its docstring named a --keep-data option it never had; the code reads KEEP. Every
    option the docstring names is one of its --help's (or fileorg's --dry-run, which it runs)."""
    monkeypatch.syspath_prepend(str(BENCH))
    footprint = runpy.run_path(str(BENCH / "footprint.py"), run_name="bench_import_check")
    monkeypatch.setattr(sys, "argv", ["footprint.py", "--help"])
    with pytest.raises(SystemExit):
        footprint["main"]()
    helped = set(re.findall(r"--[a-z][\w-]*", capsys.readouterr().out))
    doc = footprint["__doc__"]
    named = set(re.findall(r"(?<![\w-])--[a-z][\w-]*", doc)) - {"--dry-run"}
    assert named and named <= helped, named - helped
    assert "KEEP=1" in doc and 'os.environ.get("KEEP")' in (BENCH / "footprint.py").read_text()
