"""`fileorg serve`: the whole stack from one command, and Ctrl-C stops all of it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.test_ws import free_port

FILEORG = Path(sys.executable).with_name("fileorg")
DEADLINE = 120.0
READY = "File Organizer is running"


def _descendants(pid: int) -> set[int]:
    """Every process below `pid`, from /proc (children first found by their parent)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _until(what: str, probe: Any, log: Path) -> Any:
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        found = probe()
        if found is not None:
            return found
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text(errors='replace')[-3000:]}")


@pytest.fixture
def served(tmp_path: Path, data_dir: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, int]]:
    api_port, prefect_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect"),
        FILEORG_SECRET_KEY="k" * 64,
        FILEORG_ENVIRONMENT="test",
        FILEORG_ARGON2_TIME_COST="1",
        FILEORG_ARGON2_MEMORY_KIB="256",
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        command = [str(FILEORG), "serve", "--port", str(api_port)]
        command += ["--prefect-port", str(prefect_port), "--poll-seconds", "0.5"]
        process = subprocess.Popen(command, env=env, stdout=out, stderr=out)
        try:
            _until("serve to be ready", lambda: READY in log.read_text() or None, log)
            yield process, api_port, prefect_port
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()


def test_serve_runs_the_stack_and_ctrl_c_stops_every_child(
    served: tuple[subprocess.Popen[bytes], int, int], tmp_path: Path
) -> None:
    process, api_port, prefect_port = served
    log = tmp_path / "serve.log"
    api = httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=30)
    ui = httpx.get(f"http://127.0.0.1:{prefect_port}/", timeout=30)
    assert ui.status_code == 200
    assert "<html" in ui.text.lower()
    assert api.get("/health").status_code == 200
    assert api.get("/api/v1/status").json()["status"] == "ready"
    assert f"http://127.0.0.1:{prefect_port}" in log.read_text()

    root = tmp_path / "tree"
    (root / "inbox").mkdir(parents=True)
    (root / "inbox" / "notes.txt").write_text("a note\n")
    body = {"email": "a@example.org", "username": "admin", "password": "correct horse battery"}
    token = api.post("/api/v1/auth/signup", json=body).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    me = api.get("/api/v1/auth/me", headers=headers).json()
    api.post(f"/api/v1/admin/users/{me['id']}/roots", json={"root": str(root)}, headers=headers)
    started = api.post("/api/v1/operations", json={"root_path": str(root)}, headers=headers)
    assert started.status_code == 202, started.text
    path = f"/api/v1/operations/{started.json()['operation_id']}"

    def finished() -> dict[str, Any] | None:
        shown: dict[str, Any] = api.get(path, headers=headers).json()
        return shown if shown["status"] in ("completed", "failed", "cancelled") else None

    assert _until("the operation", finished, log)["status"] == "completed"
    children = _descendants(process.pid)
    assert len(children) >= 3  # the Prefect server, the runner, the API (and their children)

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0
    assert sorted(pid for pid in children if _alive(pid)) == []
