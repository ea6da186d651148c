"""Ctrl-C of a CLI run, typed at a real terminal (a pty): the run ends within 5 s with one line
saying what state the tree is in and the command that resumes it; a line shows at once."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

from tests.flows.test_serve import _alive, _descendants
from tests.polling import until
from tests.trees import snapshot

FILEORG = Path(sys.executable).parent / "fileorg"
DEADLINE = 300.0  # for the run to get going: the background Prefect server starts first
ESCAPES = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")
ANSI = re.compile(ESCAPES.pattern + rb"|\r")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stage_recorded(data: Path) -> bool:
    records = list(data.glob("operations/*/operation.json"))
    with suppress(OSError, ValueError):  # not written yet, or being replaced
        return len(records) == 1 and json.loads(records[0].read_text()).get("stage") is not None
    return False


def _read(fd: int, timeout: float) -> bytes | None:
    """What the terminal shows next; b"" if nothing yet, None once the program is gone."""
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        return b""
    try:
        return os.read(fd, 65536) or None
    except OSError:
        return None


def test_ctrl_c_of_organize_ends_in_5_s_with_the_state_and_the_resume_command(
    tmp_path: Path,
) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    for i in range(3000):
        (tree / f"note {i}.txt").write_text(f"note {i % 1500}\n")
    before = snapshot(tree)
    # A user's environment: not the suite's PREFECT_LOGGING_LEVEL (tests/conftest.py), under
    # which the CLI shows Prefect's errors. One a Ctrl-C can cause inside Prefect (its task
    # engine's crash handling, when the interrupt lands before the task run exists) was shown
    # with its traceback in a clean-clone CI run; on the CLI's own default it is not.
    user = ("PREFECT_API", "FILEORG_", "PREFECT_LOGGING")
    env = {k: v for k, v in os.environ.items() if not k.startswith(user)}
    data = tmp_path / "data"
    env.update(HOME=str(tmp_path / "home"), PREFECT_HOME=str(tmp_path / "prefect"), TERM="xterm")
    env["FILEORG_DATA_URL"] = str(data)
    argv = [str(FILEORG), "organize", str(tree), "--dry-run"]
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(argv[0], argv, env)
    screen = bytearray()
    cpu_at_first_output: list[float] = []

    def scan_shown() -> bool:  # the flow's first stage
        chunk = _read(fd, 0.05)
        assert chunk is not None, screen.decode(errors="replace")
        if chunk and not cpu_at_first_output:
            cpu_at_first_output.append(_cpu_seconds(pid))
        screen.extend(chunk)
        # The terminal can show the stage a moment before the record names it, and the Ctrl-C
        # is meant to land in a stage: wait for both, reading the terminal meanwhile.
        return b"scan" in screen and _stage_recorded(data)

    def closed() -> bool:
        chunk = _read(fd, 0.1)
        screen.extend(chunk or b"")
        return chunk is None

    try:  # no pause between polls: _read waits for the terminal
        until(scan_shown, DEADLINE, "the scan stage on the terminal and in the record", every=0)
        # the status line is redrawn after a carriage return: each drawing is a line here
        drawn = re.split(rb"[\r\n]+", ESCAPES.sub(b"", screen))
        first_line = next(line.strip() for line in drawn if line.strip())
        children = _descendants(pid)  # the background Prefect server it started among them

        os.write(fd, b"\x03")  # Ctrl-C: SIGINT to the terminal's foreground process group
        typed = time.monotonic()
        until(closed, 30, "the program to close its terminal", every=0)
        _, status = os.waitpid(pid, 0)
        elapsed = time.monotonic() - typed
    finally:
        os.close(fd)
        with suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        server = json.loads((data / "prefect-server" / "server.json").read_text())
        server_outlived_it = _alive(server["pid"])
        subprocess.run([str(FILEORG), "stop"], env=env, capture_output=True, timeout=120)
    text = ANSI.sub(b"", screen).decode(errors="replace")
    last = text.strip().splitlines()[-1]
    (record_file,) = data.glob("operations/*/operation.json")
    record = json.loads(record_file.read_text())
    op = record["id"]
    listed = subprocess.run(
        [str(FILEORG), "operations", "--json"], env=env, capture_output=True, timeout=120
    )
    (shown,) = json.loads(listed.stdout)["operations"]

    # a line at once: before the program had used a second of processor time (its wall time
    # is the machine's load: measured 0.2 s on a quiet one)
    assert first_line == b"connecting to the local Prefect server...", screen[:300]
    assert b"starting a local Prefect server" in screen  # none ran yet in this data folder
    assert cpu_at_first_output[0] < 1.0
    assert record["stage"] in ("scan", "classify", "prefix", "hash", "plan", "report")
    # interrupted mid-run, not failed, and the listing says how to resume it
    assert (
        (shown["status"], shown["error"])
        == ("interrupted", last)
        == (
            record["status"],
            record["error"],
        )
    )
    assert elapsed < 5, (elapsed, text[-2000:])
    assert os.waitstatus_to_exitcode(status) == 130
    assert last == (
        f"interrupted: nothing in {tree} was changed; resume it: "
        f"fileorg organize {tree} --dry-run --id {op}"
    ), text[-2000:]
    assert "Traceback" not in text and "ConnectError" not in text
    # the background server outlives the Ctrl-C by construction (the run's end reaches it);
    # every other process is gone, and `fileorg stop` stopped it
    assert server["pid"] in children and server_outlived_it
    assert [p for p in children if _alive(p)] == []
    assert snapshot(tree) == before
