"""The real stack behind the API's end-to-end tests (test_integration, test_interrupted_flow,
test_ws): processes started with their output in a log and always stopped, a runner serving
the deployments on the session's Prefect server, and operations started through the API once
the runner has registered them, then followed to their end."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from api.orchestrator import PrefectOrchestrator
from tests.api.conftest import Api, User
from tests.polling import until

REPO = Path(__file__).resolve().parents[2]
DEADLINE = 120.0
RUNNER = [sys.executable, "-m", "flows.deployments"]
ENDED = ("completed", "failed", "cancelled")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def runner_env(prefect_server: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a runner serving the deployments to the API under test."""
    return {
        **os.environ,
        "PREFECT_API_URL": prefect_server,
        "FILEORG_DATA_URL": str(data_dir),
        "FILEORG_RUNNER_POLL_SECONDS": "1",
        "FILEORG_SECRET_KEY": "s" * 64,  # the API's (tests.api.conftest): it checks the tickets
        **extra,
    }


@contextmanager
def running(
    *commands: list[str], env: dict[str, str], log: Path
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`commands` started in the repository, their output in `log`; stopped, last first,
    however the block ends."""
    with log.open("wb") as out:
        processes: list[subprocess.Popen[bytes]] = []
        try:
            for command in commands:
                processes.append(
                    subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=out)
                )
            yield processes
        finally:
            for process in reversed(processes):
                stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def started(start: Callable[[], httpx.Response]) -> str:
    """The id of the operation `start()` starts, retried while it answers 503 (until the
    runner has registered its deployments)."""

    def attempt() -> str | None:
        response = start()
        assert response.status_code in (202, 503), response.text
        return response.json()["operation_id"] if response.status_code == 202 else None

    return until(attempt, DEADLINE, "the deployments", every=0.5)


def shown_when(
    api: Api, user: User, op_id: str, what: str, ok: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The operation as the API shows it, polled until `ok` holds of it."""

    def seen() -> dict[str, Any] | None:
        found = api.shown(user, op_id)
        return found if ok(found) else None

    return until(seen, DEADLINE, what, every=0.5)


def finished(api: Api, user: User, op_id: str) -> dict[str, Any]:
    """The operation once its run has ended, which must be a success."""
    ended = shown_when(
        api, user, op_id, f"operation {op_id} to end", lambda o: o["status"] in ENDED
    )
    assert ended["status"] == "completed", ended
    return ended


def make_tree(root: Path) -> None:
    (root / "inbox").mkdir(parents=True)
    (root / "inbox" / "holiday.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"a" * 5000)
    (root / "inbox" / "holiday (1).jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"a" * 5000)
    (root / "notes.txt").write_text("shopping list\n")
    (root / "report.pdf").write_bytes(b"%PDF-1.4\n" + b"b" * 300)


def dry_run_started(make_api: Any, root: Path) -> tuple[Api, User, str]:
    """An app talking to the real Prefect server, its first user (the admin) granted `root`,
    and the id of the dry run of `root` it started."""
    api: Api = make_api()
    api.client.app.state.orchestrator = PrefectOrchestrator(timeout=20)  # type: ignore[attr-defined]
    admin = api.signup("admin")
    api.grant(admin, admin, root)
    return api, admin, started(lambda: api.start(admin, root, dry_run=True))
