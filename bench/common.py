"""Shared helpers for the benchmarks in bench/ (run by hand, never by the test suite).

Run the benchmarks with the project's venv python (`.venv/bin/python bench/dupes.py ...`):
they call the `fileorg` CLI as a subprocess, exactly as a user would, and measure it from
outside: wall time, the peak memory of its whole process tree (the CLI plus the process
pool's workers, which are separate processes), and the bytes its process tree read.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from measure import Measured, run_measured

from tasks.report import human_bytes as human_bytes  # one spelling of sizes, the CLI's

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
FILEORG = str(VENV_BIN / "fileorg")
PREFECT = str(VENV_BIN / "prefect")
DEFAULT_WORK = Path("/work/bench-data")


# ---------------------------------------------------------------- page cache


def drop_caches() -> None:
    """Write back dirty pages and drop the page cache, dentries and inodes (needs root)."""
    subprocess.run(["sync"], check=True)
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError as exc:
        raise SystemExit(f"cannot drop the page cache ({exc}); run as root") from None


# ---------------------------------------------------------------- Prefect server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextmanager
def prefect_server(api_url: str | None, home: Path) -> Iterator[str]:
    """Use the server at `api_url`, or start one (own PREFECT_HOME) and stop it at the end."""
    if api_url:
        if not _healthy(api_url):
            raise SystemExit(f"no Prefect server answers at {api_url}")
        yield api_url
        return
    home.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    env.pop("PREFECT_API_URL", None)
    log = (home / "server.log").open("wb")
    proc = subprocess.Popen(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the Prefect server did not start; see {home / 'server.log'}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: only what we started
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _post(api_url: str, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        f"{api_url}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def count_task_runs(api_url: str, operation_id: str, settle_seconds: float = 20) -> dict[str, Any]:
    """Task runs the server recorded for the operation's flow run ("organize-{id} {root}").

    The server records task runs from events, asynchronously: poll until the count is stable.
    """
    flows = _post(
        api_url,
        "/flow_runs/filter",
        {"flow_runs": {"name": {"like_": f"organize-{operation_id}"}}, "limit": 5},
    )
    if not flows:
        return {"flow_run_id": None, "task_runs": None}
    flow_run_id = flows[0]["id"]
    body = {"flow_runs": {"id": {"any_": [flow_run_id]}}}
    last, stable_since = -1, time.monotonic()
    deadline = time.monotonic() + settle_seconds
    while True:
        count = int(_post(api_url, "/task_runs/count", body))
        if count != last:
            last, stable_since = count, time.monotonic()
        elif time.monotonic() - stable_since >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    return {"flow_run_id": flow_run_id, "task_runs": last}


# ---------------------------------------------------------------- fileorg


def fileorg_env(data_url: Path, api_url: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env["FILEORG_DATA_URL"] = str(data_url)
    env.pop("PREFECT_API_URL", None)
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def organize(root: Path, env: dict[str, str], op_id: str | None = None) -> tuple[Measured, str]:
    """`fileorg organize ROOT --dry-run --json`; returns the measurement and the operation id."""
    cmd = [FILEORG, "organize", str(root), "--dry-run", "--json"]
    if op_id:
        cmd += ["--id", op_id]
    m = run_measured(cmd, env=env)
    if m.returncode != 0:
        sys.stderr.write(m.stderr[-4000:])
        raise SystemExit(f"fileorg organize failed with status {m.returncode}")
    return m, json.loads(m.stdout)["operation_id"]


def fileorg_report(op_id: str, env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(
        [FILEORG, "report", op_id, "--json"], env=env, capture_output=True, check=True
    )
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def operation_record(op_id: str, data_url: Path) -> Any:
    """The operation record, read through storage.operations.load (the repo on sys.path)."""
    sys.path.insert(0, str(REPO))
    from storage import operations
    from storage.locations import DataStore

    return operations.load(DataStore(str(data_url)), op_id)


# ---------------------------------------------------------------- other tools


def jdupes_groups(stdout: str) -> tuple[int, int]:
    """(groups, files) from jdupes' default output: groups separated by blank lines."""
    groups = files = 0
    in_group = False
    for line in stdout.splitlines():
        if not line:
            in_group = False
            continue
        if not in_group:
            groups += 1
            in_group = True
        files += 1
    return groups, files


def rmlint_groups(json_path: Path) -> tuple[int, int]:
    """(duplicate sets, duplicate files) from rmlint's json output footer."""
    data = json.loads(json_path.read_text())
    footer = data[-1]
    files = sum(1 for item in data[1:-1] if item.get("type") == "duplicate_file")
    return int(footer.get("duplicate_sets", 0)), files


def require_tools(*names: str) -> None:
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        raise SystemExit(f"missing tools: {', '.join(missing)}")


# ---------------------------------------------------------------- output


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    sys.stdout.flush()


def tree_size(root: Path) -> tuple[int, int]:
    """(regular files, bytes) under root, without following symlinks."""
    files = nbytes = 0
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    files += 1
                    nbytes += entry.stat(follow_symlinks=False).st_size
    return files, nbytes
