"""WebSocket fan-out on loopback: N clients following one operation, and start latencies.

    .venv/bin/python bench/ws_load.py --clients 1000 --files 20000 [--api-url URL]
        [--client-processes 2] [--server-repo CHECKOUT]

Starts a Prefect server (unless --api-url), a runner (`python -m flows.deployments`, polling
every 0.5 s) and `uvicorn api.main:app`, signs up, grants a generated tree, then:
1. start latency, `--starts` times: POST /api/v1/operations, connect one client at once, and
   time POST -> first `running` state, and POST -> first `progress` message; `start_steps`
   says where that went: the run's creation, Pending and Running as Prefect has them, and the
   flow's emit of the first progress (`sent_at`), in seconds after the POST;
2. fan-out: with the runner stopped (SIGSTOP), POST one operation and connect `--clients`
   clients to it; once every client has its first `pending` state, resume the runner
   (SIGCONT). Every client must then get `running`, `completed`, the final `done` and a close
   1000. Lag = receive time - `sent_at` of each progress message (the flow's emit time, same
   clock), over all clients; per message, `first_receipt` (emit to the first client to get
   it: the flow, Prefect and the API's first send) and `spread` (first to last client: the
   fan-out); the API's resident memory is sampled throughout.
The fan-out clients run in `--client-processes` processes of their own (this script with
--client-worker), not in the one that starts and times everything, so a busy client loop does
not delay the measurement's own work; they still share the machine's cores with the server,
runner and flow. `--server-repo` runs the runner and the API from another checkout (with its
own .venv), to compare two versions with the same load generator.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import _free_port, prefect_server  # noqa: E402
from bench.measure import _status_kb  # noqa: E402

PASSWORD = "bench password 1"


def make_tree(root: Path, files: int) -> None:
    for i in range(files):
        folder = root / f"d{i % 200}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i}.txt").write_bytes(f"content {i % max(1, files - files // 10)}\n".encode())


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class MemorySampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak_kb, self.stop = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.1):
            try:
                self.peak_kb = max(self.peak_kb, _status_kb(self.pid)[0])
            except OSError:
                return


async def follow(
    url: str, token: str, first: asyncio.Queue[None] | None = None
) -> tuple[list[tuple[float, dict[str, Any]]], int | None]:
    got: list[tuple[float, dict[str, Any]]] = []
    try:
        async with connect(
            url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=120
        ) as ws:
            try:
                async for frame in ws:
                    got.append((time.time(), json.loads(frame)))
                    if first is not None and len(got) == 1:
                        first.put_nowait(None)
            except ConnectionClosed:
                pass
            return got, ws.close_code
    except Exception as exc:
        print(f"client failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return got, None
    finally:
        if first is not None and not got:
            first.put_nowait(None)  # counted as connected (and as incomplete)


def lags_ms(results: list[tuple[list[tuple[float, dict[str, Any]]], int | None]]) -> list[float]:
    return [
        (t - m["sent_at"]) * 1000
        for got, _ in results
        for t, m in got
        if m["type"] == "progress" and m.get("sent_at")
    ]


def received(
    results: list[tuple[list[tuple[float, dict[str, Any]]], int | None]],
) -> list[tuple[float, str, str, float]]:
    """(sent_at, stage, stage_state, receive time) of every progress message."""
    return [
        (m["sent_at"], m["stage"], m["stage_state"], t)
        for got, _ in results
        for t, m in got
        if m["type"] == "progress" and m.get("sent_at")
    ]


def spread(receipts: list[list[Any]]) -> dict[str, float]:
    """Per progress message: emit to its first receipt (the flow, Prefect and the API's first
    send), and first to last receipt over all clients (the fan-out itself)."""
    seen: dict[tuple[float, str, str], list[float]] = {}
    for sent_at, stage, edge, at in receipts:
        seen.setdefault((sent_at, stage, edge), []).append(at)
    first = [(min(ts) - key[0]) * 1000 for key, ts in seen.items()]
    widths = [(max(ts) - min(ts)) * 1000 for ts in seen.values()]
    return {
        "first_receipt_ms_p50": round(percentile(first, 0.5), 1),
        "first_receipt_ms_max": round(max(first), 1) if first else float("nan"),
        "spread_ms_p50": round(percentile(widths, 0.5), 1),
        "spread_ms_max": round(max(widths), 1) if widths else float("nan"),
    }


def timeline(prefect: str, flow_run_id: str, posted: float) -> dict[str, float]:
    """Seconds from the POST to the run's creation, Pending and Running, as Prefect has them."""
    with httpx.Client(base_url=prefect, timeout=30) as client:
        run = client.get(f"/flow_runs/{flow_run_id}").json()
        states = client.get("/flow_run_states/", params={"flow_run_id": flow_run_id}).json()
    at = {s["type"]: datetime.fromisoformat(s["timestamp"]).timestamp() for s in states}
    found = {"created": datetime.fromisoformat(run["created"]).timestamp(), **at}
    return {
        f"{name.lower()}_s": round(found[name] - posted, 2)
        for name in ("created", "PENDING", "RUNNING")
        if name in found
    }


async def start_latency(
    base: str, ws: str, token: str, root: Path, prefect: str
) -> tuple[float, float, list[float], dict[str, float]]:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        posted = time.time()
        response = await client.post(
            "/api/v1/operations", json={"root_path": str(root)}, headers=headers
        )
        response.raise_for_status()
        op_id = response.json()["operation_id"]
    got, code = await follow(f"{ws}/ws/operations/{op_id}", token)
    running = next(t for t, m in got if m["type"] == "state" and m["status"] != "pending")
    first = next(m for _, m in got if m["type"] == "progress")
    progress = next(t for t, m in got if m["type"] == "progress")
    flow_run_id = next(m["flow_run_id"] for _, m in got if m["type"] == "state")
    steps = timeline(prefect, flow_run_id, posted)
    steps["first_progress_sent_s"] = round(first["sent_at"] - posted, 2)
    return running - posted, progress - posted, lags_ms([(got, code)]), steps


EXPECTED_STATES = ["pending", "running", "completed"]


async def client_worker(url: str, token: str, clients: int) -> dict[str, Any]:
    """`clients` clients in this process; "connected" on stdout once each has its first frame."""
    first: asyncio.Queue[None] = asyncio.Queue()
    tasks = [asyncio.create_task(follow(url, token, first)) for _ in range(clients)]
    for _ in range(clients):
        await first.get()
    print("connected", flush=True)
    results = await asyncio.gather(*tasks)
    complete = sum(
        1
        for got, code in results
        if code == 1000
        and got
        and got[-1][1]["type"] == "done"
        and [m["status"] for _, m in got if m["type"] == "state"] == EXPECTED_STATES
    )
    return {"complete": complete, "lags": lags_ms(results), "received": received(results)}


def _worker_command(url: str, clients: int) -> list[str]:
    return [sys.executable, __file__, "--client-worker", url, "--clients", str(clients)]


async def fan_out(
    base: str,
    ws: str,
    token: str,
    root: Path,
    args: argparse.Namespace,
    runner: subprocess.Popen[bytes],
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    clients, processes = args.clients, max(1, args.client_processes)
    shares = [clients // processes + (i < clients % processes) for i in range(processes)]
    runner.send_signal(signal.SIGSTOP)  # the run waits, scheduled, until every client is on
    try:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            response = await client.post(
                "/api/v1/operations", json={"root_path": str(root)}, headers=headers
            )
            response.raise_for_status()
            op_id = response.json()["operation_id"]
        url = f"{ws}/ws/operations/{op_id}"
        started = time.monotonic()
        env = {**os.environ, "WS_LOAD_TOKEN": token}  # not on a command line others can read
        workers = [
            await asyncio.create_subprocess_exec(
                *_worker_command(url, share), env=env, stdout=asyncio.subprocess.PIPE
            )
            for share in shares
        ]
        for worker in workers:
            assert worker.stdout is not None
            if (await worker.stdout.readline()).strip() != b"connected":
                raise SystemExit("a client process failed before connecting")
        connected = time.monotonic() - started
    finally:
        runner.send_signal(signal.SIGCONT)
    reports = [json.loads((await w.communicate())[0]) for w in workers]
    lags = [lag for r in reports for lag in r["lags"]]
    return {
        "connect_all_s": round(connected, 1),
        "clients": clients,
        "client_processes": processes,
        "complete": sum(r["complete"] for r in reports),
        "progress_messages": len(lags),
        "lag_ms_p50": round(percentile(lags, 0.5), 1),
        "lag_ms_p99": round(percentile(lags, 0.99), 1),
        "lag_ms_max": round(max(lags), 1) if lags else None,
        **spread([r for report in reports for r in report["received"]]),
        "seconds": round(time.monotonic() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--api-url", default=None, help="a running Prefect server")
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument(
        "--server-repo",
        type=Path,
        default=REPO,
        help="run the runner and the API from this checkout (its .venv/bin/python)",
    )
    parser.add_argument("--client-worker", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument(
        "--uvicorn-arg",
        action="append",
        default=[],
        help="one more argument for uvicorn, e.g. --uvicorn-arg=--ws-per-message-deflate=true",
    )
    args = parser.parse_args()
    if args.client_worker:
        token = os.environ["WS_LOAD_TOKEN"]
        print(json.dumps(asyncio.run(client_worker(args.client_worker, token, args.clients))))
        return

    server = args.server_repo.resolve()
    python = str(server / ".venv" / "bin" / "python")
    work = Path(tempfile.mkdtemp(prefix="ws-load-", dir="/tmp"))
    data, root = work / "data", work / "tree"
    data.mkdir()
    make_tree(root, args.files)
    with prefect_server(args.api_url, work / "prefect-home") as api_url:
        port = _free_port()
        env = {
            **os.environ,
            "PREFECT_API_URL": api_url,
            "FILEORG_DATA_URL": str(data),
            "FILEORG_SECRET_KEY": "b" * 64,
            "FILEORG_RUNNER_POLL_SECONDS": "0.5",
            "PREFECT_LOGGING_LEVEL": "WARNING",
        }
        log = (work / "stack.log").open("wb")
        runner = subprocess.Popen(
            [python, "-m", "flows.deployments"], cwd=server, env=env, stdout=log, stderr=log
        )
        uvicorn = [python, "-m", "uvicorn", "api.main:app", "--port", str(port)]
        api = subprocess.Popen(
            [*uvicorn, "--no-access-log", "--log-level", "warning", *args.uvicorn_arg],
            cwd=server,
            env=env,
            stdout=log,
            stderr=log,
        )
        try:
            base, ws = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
            report = run(args, base, ws, root, api, runner, api_url)
        finally:
            for process in (api, runner):
                process.terminate()
                process.wait(timeout=30)
    report = {"server_repo": str(server), "load_average": os.getloadavg(), **report}
    print(json.dumps(report, indent=2))


def run(
    args: argparse.Namespace,
    base: str,
    ws: str,
    root: Path,
    api: subprocess.Popen[bytes],
    runner: subprocess.Popen[bytes],
    prefect: str,
) -> dict[str, Any]:
    client = httpx.Client(base_url=base, timeout=60)
    deadline = time.monotonic() + 300  # a deadline: the API took over 60 s to start at load 8
    while True:
        try:
            if client.get("/health").status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("the API did not start")
        time.sleep(0.2)
    body = {"email": "bench@example.org", "username": "bench", "password": PASSWORD}
    token = client.post("/api/v1/auth/signup", json=body).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    me = client.get("/api/v1/auth/me", headers=headers).json()
    client.post(f"/api/v1/admin/users/{me['id']}/roots", json={"root": str(root)}, headers=headers)
    while client.get("/api/v1/status").status_code != 200 or not _deployed(client, root, headers):
        time.sleep(0.5)

    idle_kb = _status_kb(api.pid)[0]
    starts = [
        asyncio.run(start_latency(base, ws, token, root, prefect)) for _ in range(args.starts)
    ]
    sampler = MemorySampler(api.pid)
    sampler.start()
    fan = asyncio.run(fan_out(base, ws, token, root, args, runner))
    sampler.stop.set()
    one = [lag for _, _, lags, _ in starts for lag in lags]
    return {
        "files": args.files,
        "post_to_running_s": [round(r, 2) for r, _, _, _ in starts],
        "post_to_first_progress_s": [round(p, 2) for _, p, _, _ in starts],
        "post_to_running_s_median": round(statistics.median(r for r, _, _, _ in starts), 2),
        "start_steps": [steps for _, _, _, steps in starts],
        "one_client_lag_ms_p50": round(percentile(one, 0.5), 1),
        "one_client_lag_ms_p99": round(percentile(one, 0.99), 1),
        "fan_out": fan,
        "api_rss_mb_idle": round(idle_kb / 1024, 1),
        "api_rss_mb_peak": round(sampler.peak_kb / 1024, 1),
    }


def _deployed(client: httpx.Client, root: Path, headers: dict[str, str]) -> bool:
    """The runner has registered its deployments (a scan starts; it is waited for here)."""
    response = client.post("/api/v1/operations", json={"root_path": str(root)}, headers=headers)
    if response.status_code != 202:
        return False
    path = f"/api/v1/operations/{response.json()['operation_id']}"
    while client.get(path, headers=headers).json()["status"] in ("pending", "running"):
        time.sleep(0.5)
    return True


if __name__ == "__main__":
    main()
