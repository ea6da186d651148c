"""Running `fileorg` as a user types it: a subprocess in a script (stdin not a terminal), or on
a real pseudo-terminal that answers the question it asks. Operations to apply are planned
with the plain stage functions (no flow run), so each test pays for one command, not two."""

from __future__ import annotations

import os
import re
import select
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from storage import operations
from storage.locations import DataStore
from storage.operations import OperationRecord, PlanOptions
from tests.apply_helpers import plan_tree
from tests.polling import until

FILEORG = Path(sys.executable).parent / "fileorg"
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")
QUESTION = b"[y/N]"
EOF_KEY = b"\x04"  # Ctrl-D: end of input on a terminal in canonical mode


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Cli:
    env: dict[str, str]

    @property
    def store(self) -> DataStore:
        return DataStore(self.env["FILEORG_DATA_URL"])

    def run(self, *args: str | Path, timeout: float = 180) -> Ran:
        """A script's run: stdin is not a terminal (and not the terminal pytest runs in)."""
        done = subprocess.run(
            [FILEORG, *map(str, args)],
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
        )
        return Ran(
            done.returncode,
            done.stdout.decode(errors="replace"),
            done.stderr.decode(errors="replace"),
        )

    def on_terminal(
        self, *args: str | Path, answer: bytes | None, timeout: float = 180
    ) -> Terminal:
        return on_terminal([str(FILEORG), *map(str, args)], self.env, answer, timeout)


@dataclass(frozen=True)
class Terminal:
    returncode: int
    output: str  # stdout and stderr as the terminal showed them, escape codes removed
    asked: bool


def on_terminal(
    argv: list[str], env: dict[str, str], answer: bytes | None, timeout: float
) -> Terminal:
    """Run `argv` with stdin, stdout and stderr on a new pty. When the question shows, type
    `answer` (None: Ctrl-D). Reads until the child closes the terminal."""
    master, slave = os.openpty()
    child = subprocess.Popen(
        argv,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**env, "COLUMNS": "100", "TERM": "xterm"},
        start_new_session=True,
    )
    os.close(slave)
    output = bytearray()
    asked = False

    def closed() -> bool:
        """One read of what the terminal shows (answering the question once it is there);
        True once the child has closed the terminal."""
        nonlocal asked
        ready, _, _ = select.select([master], [], [], 0.2)
        if not ready:
            return child.poll() is not None and not _drain(master)
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every copy of the slave side is closed
            return True
        output.extend(chunk)
        if not asked and QUESTION in ANSI.sub(b"", output):
            os.write(master, EOF_KEY if answer is None else answer)
            asked = True
        return False

    try:  # no pause between polls: select waits for the terminal
        until(
            closed,
            timeout,
            "the program to end",
            every=0,
            detail=lambda: repr(bytes(output[-2000:])),
        )
        returncode = child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
        os.close(master)
    return Terminal(returncode, ANSI.sub(b"", output).decode(errors="replace"), asked)


def _drain(master: int) -> bool:
    ready, _, _ = select.select([master], [], [], 0)
    return bool(ready)


def planned(
    store: DataStore,
    root: Path,
    options: PlanOptions | None = None,
    operation_id: str | None = None,
    shard_rows: int | None = None,
) -> OperationRecord:
    """A planned operation of `root`, as a finished `fileorg organize` leaves it."""
    operation_id = operation_id or str(uuid.uuid4())
    options = options or PlanOptions(mode="category")
    counts = plan_tree(store, operation_id, root, options, *([shard_rows] if shard_rows else []))
    record = OperationRecord(
        id=operation_id,
        root=os.path.realpath(root),
        options=options,
        status="planned",
        summary={
            k: counts.get(a, 0)
            for k, a in (
                ("moves", "move"),
                ("quarantine", "quarantine"),
                ("hardlink", "hardlink"),
                ("skipped", "skip"),
            )
        },
    )
    operations.save(store, record)
    return record


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def port_free(port: int) -> bool:
    """Nothing listens on the port (a stopped server let it go)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
