"""`fileorg` starts fast: the CLI imports DuckDB, pyarrow and Prefect only inside the commands
that use them. Every command module is imported whatever the command (Typer lists them all),
so one module-level import of storage.queries would put about a second of CPU on every
`fileorg --version`, usage error and test subprocess again.

Each case runs the console script's `main()` in a fresh interpreter, as `fileorg ARGS` would,
and reads sys.modules when it exits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("duckdb", "pyarrow", "prefect")
# Typer itself imports pydantic to convert a command's values: only these two never run one.
BEFORE_ANY_COMMAND = ("pydantic", "fsspec")
PROBE = """
import atexit, json, sys
atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.__stderr__))
sys.argv = ["fileorg", *json.loads(sys.argv[1])]
from flows.cli import main
main()
"""
CASES: dict[str, list[str]] = {
    "version": ["--version"],
    "help": ["--help"],
    "a command's help": ["organize", "--help"],
    "a bad action": ["plan", "last", "--action", "mvoe"],
    "a bad outcome": ["plan", "last", "--outcome", "lost"],
    "an empty root": ["organize", ""],
    "a bad interval": ["schedule", "add", ".", "--every", "0"],
}


def imported(args: list[str], tmp_path: Path) -> tuple[int, set[str]]:
    env = {**os.environ, "FILEORG_DATA_URL": str(tmp_path / "data")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
    )
    last = done.stderr.decode().strip().splitlines()[-1]
    return done.returncode, {name.split(".")[0] for name in json.loads(last)}


@pytest.mark.parametrize("case", list(CASES))
def test_starting_imports_no_heavy_library(case: str, tmp_path: Path) -> None:
    code, modules = imported(CASES[case], tmp_path)
    expected_code = 0 if "help" in case or case == "version" else 2

    assert code == expected_code
    assert sorted(modules & set(HEAVY)) == []
    if case in ("version", "help"):
        assert sorted(modules & set(BEFORE_ANY_COMMAND)) == []


def test_the_probe_sees_a_command_that_imports_them(tmp_path: Path) -> None:
    """The probe itself works: a listing reads manifests with DuckDB (no operation: exit 2)."""
    code, modules = imported(["plan", "last"], tmp_path)

    assert code == 2
    assert {"duckdb", "pyarrow"} <= modules
