"""The README's commands, run as written, so the docs cannot rot."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
BIN = Path(sys.executable).parent
# The lines of .ci/run that set the shell up rather than run a step of the README.
CI_PREAMBLE = ("set -euo pipefail", 'cd "$(dirname "$0")/.."', "export ")


def _commands(section: str) -> list[str]:
    """The indented command lines of the README section whose title starts with `section`."""
    text = README.read_text()
    body = re.split(rf"^## {re.escape(section)}.*$", text, maxsplit=1, flags=re.M)[1]
    body = body.split("\n## ", 1)[0]
    return [line.strip() for line in body.splitlines() if line.startswith("    ")]


def _ci_commands() -> list[str]:
    lines = (REPO / ".ci" / "run").read_text().splitlines()
    return [
        line
        for line in (raw.strip() for raw in lines)
        if line and not line.startswith("#") and not line.startswith(CI_PREAMBLE)
    ]


def _uv_project_copy(tmp_path: Path) -> Path:
    """pyproject.toml and uv.lock (and the README they name) in a folder of their own."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy(REPO / name, project / name)
    return project


def test_ci_runs_exactly_the_readme_set_up_and_test_commands() -> None:
    expected_ci = [*_commands("Set up"), *_commands("Test")]

    assert len(_commands("Set up")) == 2  # the README promises two commands
    assert _ci_commands() == expected_ci


def test_the_set_up_refuses_a_lock_that_disagrees_with_pyproject(tmp_path: Path) -> None:
    """The README's install (`uv sync --locked`) is CI's lock check: it must pass on the
    committed pair and fail once pyproject.toml asks for something uv.lock does not hold."""
    (sync,) = [c.split("&& ")[-1] for c in _commands("Set up") if "uv sync" in c]
    argv = [*shlex.split(sync.replace(".venv/bin/", f"{BIN}/")), "--dry-run"]
    project = _uv_project_copy(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "VIRTUAL_ENV"))}

    agreed = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True)
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    assert '"blake3>=1.0,<2",' in text
    pyproject.write_text(text.replace('"blake3>=1.0,<2",', '"blake3>=1.0,<2",\n    "six>=1.16",'))
    mismatched = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True)

    assert agreed.returncode == 0, agreed.stderr
    assert mismatched.returncode != 0
    assert "needs to be updated" in mismatched.stderr


def test_version_is_the_project_version() -> None:
    expected_version = re.search(
        r'^version = "(.+)"$', (REPO / "pyproject.toml").read_text(), re.M
    ).group(1)  # type: ignore[union-attr]

    done = subprocess.run([str(BIN / "fileorg"), "--version"], capture_output=True, text=True)

    assert done.returncode == 0, done.stderr
    assert done.stdout == f"fileorg {expected_version}\n"


def test_a_user_install_without_the_dev_tools_gives_a_working_fileorg(
    tmp_path: Path, prefect_server: str
) -> None:
    """`uv tool install .` (one of the README's user installs) into a folder of its own; the
    command then runs from elsewhere, with none of the checkout on its path."""
    (install,) = _commands("Install")
    assert "uv tool install ." in install
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for package in ("api", "flows", "tasks", "storage"):
        shutil.copytree(REPO / package, source / package, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    tools, bin_dir = tmp_path / "tools", tmp_path / "bin"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "VIRTUAL_ENV"))}
    env.update(UV_TOOL_DIR=str(tools), UV_TOOL_BIN_DIR=str(bin_dir))
    done = subprocess.run(
        [str(BIN / "uv"), "tool", "install", str(source)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a.txt").write_bytes(b"same")
    (tree / "b.txt").write_bytes(b"same")
    env.update(FILEORG_DATA_URL=str(tmp_path / "data"), PREFECT_API_URL=prefect_server)
    fileorg = str(bin_dir / "fileorg")

    version = subprocess.run([fileorg, "--version"], capture_output=True, text=True, env=env)
    organized = subprocess.run(
        [fileorg, "organize", str(tree), "--dry-run", "--json"],
        capture_output=True,
        env=env,
        cwd=tmp_path,
        timeout=240,
    )
    dev_tools = list(tools.glob("fileorg/lib/python*/site-packages/pytest"))

    assert version.returncode == 0 and version.stdout.startswith("fileorg "), version.stderr
    assert organized.returncode == 0, organized.stderr.decode()[-2000:]
    assert json.loads(organized.stdout)["report"]["duplicates"]["groups"] == 1
    assert dev_tools == []


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A home with two equal files in Downloads, and an environment that configures nothing;
    afterwards the local Prefect server the job started in the background is stopped (`fileorg
    stop`, as the README says) and no process of it is left."""
    home, env = _embedded_defaults(tmp_path)
    try:
        yield home, env
    finally:
        record = home / ".local" / "share" / "fileorg" / "prefect-server" / "server.json"
        pid = json.loads(record.read_text())["pid"] if record.exists() else None
        stopped = subprocess.run([str(BIN / "fileorg"), "stop"], env=env, capture_output=True)
        assert stopped.returncode == 0, stopped.stderr
        assert pid is None or not Path(f"/proc/{pid}").exists() or _zombie(pid)


def _zombie(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


def _embedded_defaults(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A home with two equal files in Downloads, and an environment that configures nothing."""
    home = tmp_path / "home"
    (home / "Downloads").mkdir(parents=True)
    (home / "Downloads" / "a.jpg").write_bytes(b"same")
    (home / "Downloads" / "b.jpg").write_bytes(b"same")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "FILEORG_", "XDG_"))
    }
    env.update(HOME=str(home), PREFECT_HOME=str(tmp_path / "prefect"))
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    return home, env


def _main_job(home: Path) -> list[str]:
    (command,) = _commands("Run")
    return shlex.split(command.replace(".venv/bin/", f"{BIN}/").replace("~", str(home)))


def test_the_main_job_runs_as_written_on_embedded_defaults(
    embedded: tuple[Path, dict[str, str]],
) -> None:
    """`fileorg organize ~/Downloads ...` with nothing configured: the default data folder
    under the user's home, and a local Prefect server started in the background there."""
    home, env = embedded

    done = subprocess.run([*_main_job(home), "--json"], env=env, capture_output=True, timeout=240)

    assert done.returncode == 0, done.stderr.decode()[-2000:]
    report = json.loads(done.stdout)["report"]
    assert report["duplicates"]["groups"] == 1
    operations = home / ".local" / "share" / "fileorg" / "operations"
    assert (operations / json.loads(done.stdout)["operation_id"] / "report.json").exists()
    assert sorted(p.name for p in (home / "Downloads").iterdir()) == ["a.jpg", "b.jpg"]
    shown = subprocess.run([*_main_job(home)[:1], "status", "--json"], env=env, capture_output=True)
    assert json.loads(shown.stdout)["home"] == str(operations.parent / "prefect-server" / "home")


def test_the_run_sends_what_prefect_still_holds_before_it_ends(
    embedded: tuple[Path, dict[str, str]],
) -> None:
    """Prefect sends run logs and events from background workers; the per-run server of old,
    stopped before they were sent, left them to be retried at exit against a closed port (once
    14 minutes after an apply had finished). With -v the run's logs go to the server too: every
    one of them, and every event, must reach it before the command ends."""
    home, env = embedded
    fileorg, *args = _main_job(home)

    done = subprocess.run([fileorg, "-v", *args], env=env, capture_output=True, timeout=240)

    stderr = done.stderr.decode()
    assert done.returncode == 0, stderr[-2000:]
    assert "Finished in state Completed" in stderr  # the run's logs were written, -v shows them
    for unsent in ("Error logging to API", "failed to process item", "Still processing items"):
        assert unsent not in stderr, stderr[-2000:]


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
