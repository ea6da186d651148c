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
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


# ---------------------------------------------------------------- measuring a process tree


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_bytes()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def _descendants(pid: int) -> list[int]:
    children = _children_map()
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        out.append(p)
        stack.extend(children.get(p, []))
    return out


def _status_kb(pid: int) -> tuple[int, int]:
    rss = hwm = 0
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith(b"VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm


def _pss_kb(pid: int) -> int:
    """Proportional set size: pages shared by the forkserver's children count once overall."""
    with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
        for line in f:
            if line.startswith(b"Pss:"):
                return int(line.split()[1])
    return 0


def _io(pid: int) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/io", "rb") as f:
        for line in f:
            key, value = line.split(b":")
            out[key.decode()] = int(value)
    return out


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


@dataclass
class _Proc:
    cmdline: str
    hwm_kb: int = 0
    read_bytes: int = 0
    rchar: int = 0


@dataclass
class TreeSampler:
    """Samples a process tree every `interval` seconds: the largest sum of RSS seen at once,
    each process's peak RSS (VmHWM) and its I/O counters (the last value seen before it exited).

    Short-lived processes and the last interval before a process exits can be missed: the
    figures are lower bounds, good to a few percent on runs of more than a few seconds.
    """

    pid: int
    interval: float = 0.2
    peak_tree_rss_kb: int = 0
    peak_tree_pss_kb: int = 0
    procs: dict[int, _Proc] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        total = total_pss = 0
        for pid in _descendants(self.pid):
            try:
                rss, hwm = _status_kb(pid)
                pss = _pss_kb(pid)
                io = _io(pid)
            except (OSError, ValueError):
                continue
            proc = self.procs.get(pid)
            if proc is None:
                proc = self.procs[pid] = _Proc(_cmdline(pid))
            proc.hwm_kb = max(proc.hwm_kb, hwm)
            proc.read_bytes = max(proc.read_bytes, io.get("read_bytes", 0))
            proc.rchar = max(proc.rchar, io.get("rchar", 0))
            total += rss
            total_pss += pss
        self.peak_tree_rss_kb = max(self.peak_tree_rss_kb, total)
        self.peak_tree_pss_kb = max(self.peak_tree_pss_kb, total_pss)


@dataclass
class Measured:
    cmd: list[str]
    returncode: int
    wall_s: float
    stdout: str
    stderr: str
    main_maxrss_kb: int | None  # /usr/bin/time -v "Maximum resident set size" of the command
    peak_tree_rss_kb: int  # largest sum of RSS over the process tree at one sample
    peak_tree_pss_kb: int  # the same with PSS: shared pages counted once (the real footprint)
    sum_peak_rss_kb: int  # sum over processes of each one's own peak (an upper bound)
    pool_workers: int  # processes of the tree that ran multiprocessing (pool, forkserver)
    read_bytes: int  # bytes the tree fetched from storage (/proc/PID/io read_bytes)
    rchar: int  # bytes the tree read through read()-like calls, page cache included


def _maxrss_from_time(text: str) -> int | None:
    for line in text.splitlines():
        if "Maximum resident set size" in line:
            return int(line.rsplit(":", 1)[1])
    return None


def run_measured(
    cmd: Sequence[str], env: dict[str, str] | None = None, cwd: str | None = None
) -> Measured:
    """Run `cmd` under /usr/bin/time -v, sampling its process tree."""
    timefile = Path(f"/tmp/bench-time-{os.getpid()}.txt")
    full = ["/usr/bin/time", "-v", "-o", str(timefile), *cmd]
    started = time.perf_counter()
    proc = subprocess.Popen(full, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sampler = TreeSampler(proc.pid)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - started
    sampler.stop()
    maxrss = _maxrss_from_time(timefile.read_text()) if timefile.exists() else None
    timefile.unlink(missing_ok=True)
    tree = [p for pid, p in sampler.procs.items() if pid != proc.pid]  # not /usr/bin/time
    return Measured(
        cmd=list(cmd),
        returncode=proc.returncode,
        wall_s=wall,
        stdout=out.decode(errors="replace"),
        stderr=err.decode(errors="replace"),
        main_maxrss_kb=maxrss,
        peak_tree_rss_kb=sampler.peak_tree_rss_kb,
        peak_tree_pss_kb=sampler.peak_tree_pss_kb,
        sum_peak_rss_kb=sum(p.hwm_kb for p in tree),
        pool_workers=sum(1 for p in tree if "multiprocessing" in p.cmdline),
        read_bytes=sum(p.read_bytes for p in tree),
        rchar=sum(p.rchar for p in tree),
    )


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


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


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
