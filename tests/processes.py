"""Finding the processes a test (or the whole session) started, by a mark in their environment:
every process inherits it, even one reparented to init or started in a session of its own."""

from __future__ import annotations

import os
import signal
from contextlib import suppress
from pathlib import Path

import pytest

from storage import processes

# What must not outlive the suite: by a variable of its environment or a word of its command.
KINDS = (
    ("a background Prefect server", b"FILEORG_PREFECT_TOKEN=", None),
    ("a warm runner", b"FILEORG_RUNNER_TOKEN=", None),
    ("a process pool's forkserver or worker", None, b"multiprocessing.forkserver"),
    ("a resource tracker", None, b"multiprocessing.resource_tracker"),
)


def marked(name: str, value: str) -> dict[int, str]:
    """The live processes (not this one) whose environment has `name`=`value`: pid and
    command line."""
    needle = f"{name}={value}".encode()
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            with suppress(OSError):
                if needle in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                    line = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
                    found[int(entry)] = line.decode(errors="replace")[:200]
    return found


def kind(pid: int) -> str | None:
    """What `pid` is among KINDS (None: none of them, or gone)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    for said, variable, word in KINDS:
        if variable is not None and any(item.startswith(variable) for item in environ):
            return said
        if word is not None and word in command:
            return said
    return None


def parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def leftovers(name: str, value: str) -> dict[int, str]:
    """The processes of KINDS marked `name`=`value`, what each is: not this process's own
    forkserver and resource tracker (multiprocessing's, of in-process runs), which end with
    it (their pipe from it closes)."""
    found = {}
    for pid, line in marked(name, value).items():
        said = kind(pid)
        if said is None or (said != "a background Prefect server" and parent(pid) == os.getpid()):
            continue
        found[pid] = f"{said}: {line}"
    return found


def kill(pids: dict[int, str]) -> None:
    for pid in pids:
        with suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def environ_reads_empty(monkeypatch: pytest.MonkeyPatch, first: int) -> list[int]:
    """The first `first` reads of an environment are empty, as in the window after an exec
    (storage.processes.read_environ); the pids read, in order."""
    real, reads = processes.read_environ, []

    def read(pid: int) -> bytes:
        reads.append(pid)
        return b"" if len(reads) <= first else real(pid)

    monkeypatch.setattr(processes, "read_environ", read)
    return reads
