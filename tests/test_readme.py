"""The README's commands, run as written, so the docs cannot rot."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
BIN = Path(sys.executable).parent


def _commands(section: str) -> list[str]:
    text = README.read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for line in body.splitlines() if line.startswith("    ")]


def test_the_main_job_runs_as_written_on_embedded_defaults(tmp_path: Path) -> None:
    """`fileorg organize ~/Downloads ... --dry-run` with nothing configured: the default data
    folder under the user's home, and a temporary Prefect server."""
    (command,) = _commands("Run")
    home = tmp_path / "home"
    (home / "Downloads").mkdir(parents=True)
    (home / "Downloads" / "a.jpg").write_bytes(b"same")
    (home / "Downloads" / "b.jpg").write_bytes(b"same")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "FILEORG_", "XDG_"))
    }
    env.update(HOME=str(home), PREFECT_HOME=str(tmp_path / "prefect"))
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    argv = shlex.split(command.replace(".venv/bin/", f"{BIN}/").replace("~", str(home)))

    done = subprocess.run([*argv, "--json"], env=env, capture_output=True, timeout=240)

    assert done.returncode == 0, done.stderr.decode()[-2000:]
    report = json.loads(done.stdout)["report"]
    assert report["duplicates"]["groups"] == 1
    operations = home / ".local" / "share" / "fileorg" / "operations"
    assert (operations / json.loads(done.stdout)["operation_id"] / "report.json").exists()
    assert sorted(p.name for p in (home / "Downloads").iterdir()) == ["a.jpg", "b.jpg"]


def test_every_command_the_readme_lists_exists() -> None:
    listed = {
        re.match(r"fileorg (\w+)", line).group(1)  # type: ignore[union-attr]
        for line in _commands("Commands")
        if line.startswith("fileorg ")
    }
    expected_commands = {
        "organize",
        "plan",
        "duplicates",
        "files",
        "report",
        "operations",
        "apply",
        "rollback",
    }
    assert listed >= expected_commands
    for name in sorted(listed):
        done = subprocess.run([str(BIN / "fileorg"), name, "--help"], capture_output=True)
        assert done.returncode == 0, (name, done.stderr.decode())
