"""Load on the API over loopback: latency percentiles at N concurrent connections (bounded).

    .venv/bin/python bench/api_load.py --db sqlite --seconds 10 --concurrency 100
    .venv/bin/python bench/api_load.py --db postgresql --seconds 10 --files 1000000
    .venv/bin/python bench/api_load.py --db sqlite --operations 20 --seconds 15 --no-auth \
        --wrk --rate 300 --repo /work/wt/base     # issue 15: wrk, and an open-loop client

`--repo` serves another checkout's `api.main:app` with that checkout's .venv (old code against
new, same seeding and clients). `--wrk` measures with wrk (closed loop, `--concurrency`
connections, 2 threads); `--rate R` adds an open-loop client: R requests a second on a fixed
schedule whatever the answers' pace, each latency counted from when it was due (a slow
server cannot hide its queue), over at most `--concurrency` connections.

Starts `uvicorn api.main:app` in a subprocess on a fresh database (SQLite in a temporary data
folder, or a new PostgreSQL database at 127.0.0.1:5432 dropped at the end), signs a user up,
seeds operations directly in the database, then measures with an httpx async client:
GET /api/v1/operations and GET /api/v1/operations/{id} (closed loop, `--concurrency` workers
for `--seconds` each), signup and login throughput (production Argon2 cost), and with
`--files N`, GET /api/v1/files on an operation whose manifests hold N synthesized files.
The load generator shares the machine's cores with the server: figures are conservative.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pyarrow as pa
import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from api import db  # noqa: E402
from storage import manifests, operations  # noqa: E402
from storage.locations import DataStore  # noqa: E402
from storage.operations import OperationRecord, StageTiming  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
PASSWORD = "bench password 1"
CATEGORIES = ("images", "videos", "documents", "audio", "archives", "other")
EXTS = {"images": "jpg", "videos": "mp4", "documents": "pdf", "audio": "mp3", "archives": "zip"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {"p50_ms": at(0.50), "p99_ms": at(0.99), "max_ms": ordered[-1] * 1000}


async def closed_loop(
    concurrency: int, seconds: float, request: Callable[[httpx.AsyncClient], Awaitable[int]]
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                status = await request(client)
                latencies.append(time.perf_counter() - started)
                errors += status >= 400

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": round(len(latencies) / elapsed),
        **{k: round(v, 1) for k, v in percentiles(latencies).items()},
    }


async def open_loop(
    rate: float,
    connections: int,
    seconds: float,
    request: Callable[[httpx.AsyncClient], Awaitable[int]],
) -> dict[str, Any]:
    """`rate` requests a second, each due at its time; latency from due to answered."""
    latencies: list[float] = []
    errors = 0
    slots = asyncio.Semaphore(connections)
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:

        async def one(due: float) -> None:
            nonlocal errors
            async with slots:
                try:
                    status = await request(client)
                except httpx.HTTPError:
                    status = 599
            latencies.append(time.perf_counter() - due)
            errors += status >= 400

        began = time.perf_counter()
        tasks = []
        for n in range(int(rate * seconds)):
            due = began + n / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            tasks.append(asyncio.create_task(one(due)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - began
    return {
        "offered_rps": rate,
        "requests": len(latencies),
        "errors": errors,
        "rps": round(len(latencies) / elapsed),
        **{k: round(v, 1) for k, v in percentiles(latencies).items()},
    }


def wrk(url: str, headers: dict[str, str], connections: int, seconds: float) -> dict[str, Any]:
    """wrk's figures for one URL: requests a second, p50/p99, errors (non-2xx, timeouts...)."""
    header = [f"-H{k}: {v}" for k, v in headers.items()]
    command = ["wrk", "-t2", f"-c{connections}", f"-d{int(seconds)}s", "--latency", *header, url]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout

    def ms(label: str) -> float:
        scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}
        for line in out.splitlines():
            parts = line.split()
            if parts[:1] == [label]:
                value = parts[1]
                unit = next(u for u in ("us", "ms", "s") if value.endswith(u))
                return round(float(value.removesuffix(unit)) * scale[unit], 2)
        return float("nan")

    errors = 0
    for line in out.splitlines():
        if "Non-2xx" in line or "Socket errors" in line:
            errors += sum(int(n.rstrip(",")) for n in line.split() if n.rstrip(",").isdigit())
    rps = next(line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec"))
    requests = next(int(line.split()[0]) for line in out.splitlines() if "requests in" in line)
    return {
        "requests": requests,
        "errors": errors,
        "rps": round(float(rps)),
        "p50_ms": ms("50%"),
        "p99_ms": ms("99%"),
    }


def seed_operations(url: str, data: Path, user_id: str, count: int, root: str) -> list[str]:
    store = DataStore(str(data))
    engine = sa.create_engine(db.sync_url(url))
    ids = []
    rows = []
    now = time.time()
    for i in range(count):
        op_id = str(uuid.uuid4())
        ids.append(op_id)
        record = OperationRecord(id=op_id, root=root, status="planned")
        record.stages = {s: StageTiming(seconds=0.1, files=1000) for s in ("scan", "plan")}
        record.summary = {"files": 1000, "moves": 900}
        operations.save(store, record)
        rows.append(
            {
                "id": uuid.UUID(op_id),
                "owner_id": uuid.UUID(user_id),
                "operation_type": "organize",
                "root_path": root,
                "parameters": {"mode": "category_year"},
                "dry_run": True,
                "deployment": "organize/organize",
                "flow_run_id": str(uuid.uuid4()),
                "status": "completed",
                "created_at": _utc(now - i),
                "updated_at": _utc(now - i),
            }
        )
    from api.models import Operation

    with engine.begin() as connection:
        connection.execute(sa.insert(Operation.__table__), rows)
    engine.dispose()
    return ids


def _utc(ts: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC)


def _table(columns: dict[str, Any], n: int, schema: pa.Schema) -> pa.Table:
    """A table of `schema` from the columns given, every other column null (left_alone: none;
    audio tags: none): the schema can grow without this benchmark failing."""
    for field in schema:
        columns.setdefault(field.name, pa.nulls(n, field.type))
    return pa.table(columns, schema=schema)


def synthesize_files(data: Path, op_id: str, root: str, files: int, shard_rows: int) -> None:
    """Scan and classify manifests for `files` files, as the organize flow would write them."""
    store = DataStore(str(data))
    op_dir = store.operation_dir(op_id)
    rng = random.Random(0)
    for shard, start in enumerate(range(0, files, shard_rows)):
        n = min(shard_rows, files - start)
        cats = [CATEGORIES[rng.randrange(len(CATEGORIES))] for _ in range(n)]
        years = [2000 + rng.randrange(25) for _ in range(n)]
        names = [
            f"d{(start + i) // 1000:04d}/file-{start + i:07d}.{EXTS.get(c, 'bin')}"
            for i, c in enumerate(cats)
        ]
        paths = [p.encode() for p in names]
        sizes = [rng.randrange(1, 10_000_000) for _ in range(n)]
        scan = _table(
            {
                "path": paths,
                "path_text": names,
                "kind": ["file"] * n,
                "size": sizes,
                "mtime_ns": [1_600_000_000 * 10**9] * n,
                "dev": pa.array([1] * n, pa.uint64()),
                "ino": pa.array(range(start + 1, start + n + 1), pa.uint64()),
                "nlink": [1] * n,
                "mode": [0o100644] * n,
                "link_target": pa.array([None] * n, pa.binary()),
                "error": pa.array([None] * n, pa.string()),
                "etag": pa.array([None] * n, pa.string()),
                "version_id": pa.array([None] * n, pa.string()),
            },
            n,
            manifests.SCAN,
        )
        from datetime import datetime

        classify = _table(
            {
                "path": paths,
                "category": cats,
                "ext": [EXTS.get(c, "bin") for c in cats],
                "date": [datetime(y, 6, 1) for y in years],
                "date_source": ["mtime"] * n,
                "year": pa.array(years, pa.int32()),
                "month": pa.array([6] * n, pa.int32()),
                "error": pa.array([None] * n, pa.string()),
            },
            n,
            manifests.CLASSIFY,
        )
        manifests.write_table(store, manifests.shard_path(op_dir, "scan", shard), scan)
        manifests.write_table(store, manifests.shard_path(op_dir, "classify", shard), classify)
    record = OperationRecord(id=op_id, root=root, status="planned")
    operations.save(store, record)


def create_database(kind: str, data: Path) -> tuple[str, Callable[[], None]]:
    if kind == "sqlite":
        return f"sqlite:///{data}/api.db", lambda: None
    name = f"fileorg_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"postgresql://postgres@127.0.0.1:5432/{name}", drop


async def sign_up(base: str) -> tuple[dict[str, str], str]:
    """Sign the bench user up; return its auth headers and its user id."""
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        signup = await client.post(
            "/api/v1/auth/signup",
            json={"email": "bench@example.org", "username": "bench", "password": PASSWORD},
        )
        signup.raise_for_status()
        headers = {"Authorization": f"Bearer {signup.json()['access_token']}"}
        me = (await client.get("/api/v1/auth/me", headers=headers)).json()
    return headers, me["id"]


async def measure_operations(
    args: argparse.Namespace, base: str, headers: dict[str, str], ids: list[str]
) -> None:
    """The operations list and one operation: at one connection, then at --concurrency."""

    async def list_ops(c: httpx.AsyncClient) -> int:
        return (await c.get(f"{base}/api/v1/operations?limit=20", headers=headers)).status_code

    async def one_op(c: httpx.AsyncClient) -> int:
        op_id = random.choice(ids)
        return (await c.get(f"{base}/api/v1/operations/{op_id}", headers=headers)).status_code

    async def me(c: httpx.AsyncClient) -> int:
        return (await c.get(f"{base}/api/v1/auth/me", headers=headers)).status_code

    async def health(c: httpx.AsyncClient) -> int:
        return (await c.get(f"{base}/health")).status_code

    paths = {
        "GET /health (reference)": (health, "/health"),
        "GET /api/v1/operations": (list_ops, "/api/v1/operations?limit=20"),
        "GET /operations/{id}": (one_op, f"/api/v1/operations/{ids[0]}"),
        "GET /auth/me": (me, "/api/v1/auth/me"),
    }
    c = args.concurrency
    for name, (request, path) in paths.items():
        await closed_loop(10, 2, request)  # warm-up
        cpu = server_cpu(args.server_pid)
        alone = await closed_loop(1, 10, request)  # the server's own cost, without a queue
        alone["server_cpu_ms_per_req"] = per_request(args.server_pid, cpu, alone)
        print(f"{name:28s} c=1: {alone}", flush=True)
        if args.wrk:
            cpu = server_cpu(args.server_pid)
            result = await asyncio.to_thread(wrk, f"{base}{path}", headers, c, args.seconds)
            result["server_cpu_ms_per_req"] = per_request(args.server_pid, cpu, result)
            print(f"{name:28s} wrk c={c}: {result}", flush=True)
        if args.rate:
            cpu = server_cpu(args.server_pid)
            result = await open_loop(args.rate, c, args.seconds, request)
            result["server_cpu_ms_per_req"] = per_request(args.server_pid, cpu, result)
            print(f"{name:28s} open loop c<={c}: {result}", flush=True)
        if not args.wrk and not args.rate:
            result = await closed_loop(c, args.seconds, request)
            print(f"{name:28s} c={c}: {result}", flush=True)
    print(f"load average after: {os.getloadavg()}", flush=True)


def server_cpu(pid: int) -> float:
    """User + system CPU seconds of the server process so far (/proc): its cost, whatever
    else shares the cores."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def per_request(pid: int, before: float, result: dict[str, Any]) -> float:
    return round((server_cpu(pid) - before) * 1000 / max(1, result["requests"]), 2)


async def cached(base: str, headers: dict[str, str], count: int) -> None:
    """Wait until the list shows every seeded row with its record (a status cache fills them
    from the data folder a few seconds after they appear; the old code read them per request)."""
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        while time.monotonic() < deadline:
            found = (await client.get("/api/v1/operations?limit=500", headers=headers)).json()
            if len([o for o in found["data"] if o["stages"]]) >= count:
                return
            await asyncio.sleep(0.5)
    raise SystemExit("the seeded operations never showed their records")


async def measure_auth(args: argparse.Namespace, base: str) -> None:
    """Signup and login throughput at --auth-concurrency."""
    counter = iter(range(10**9))

    async def signup_one(c: httpx.AsyncClient) -> int:
        n = next(counter)
        body = {"email": f"u{n}@example.org", "username": f"user{n}", "password": PASSWORD}
        return (await c.post(f"{base}/api/v1/auth/signup", json=body)).status_code

    async def login_one(c: httpx.AsyncClient) -> int:
        body = {"username": "bench", "password": PASSWORD}
        return (await c.post(f"{base}/api/v1/auth/login", json=body)).status_code

    for name, request in (("POST signup", signup_one), ("POST login", login_one)):
        result = await closed_loop(args.auth_concurrency, args.seconds, request)
        print(f"{name:28s} c={args.auth_concurrency}: {result}")


async def measure_files(
    args: argparse.Namespace, base: str, headers: dict[str, str], data: Path, op_id: str, root: Path
) -> None:
    """Synthesize --files files into the manifests of op_id, then time GET /files queries."""
    started = time.perf_counter()
    synthesize_files(data, op_id, str(root), args.files, 50_000)
    print(f"synthesized {args.files:,} files in {time.perf_counter() - started:.1f} s")
    queries = [
        "",
        "&offset=500000",
        "&offset=999950",
        "&category=images&year=2010",
        "&extension=pdf&min_size=1000&max_size=2000000",
        "&name=file-09",
        "&sort=size&descending=true",
        "&sort=date&offset=800000&category=videos",
    ]
    async with httpx.AsyncClient(base_url=base, timeout=60, headers=headers) as client:
        for query in queries:
            samples = []
            for _ in range(5):
                started = time.perf_counter()
                response = await client.get(f"/api/v1/files?operation_id={op_id}&limit=50{query}")
                samples.append(time.perf_counter() - started)
                response.raise_for_status()
            count = response.json()["count"]
            print(
                f"GET /files{query or ' (first page)':45s} count={count:>9,} "
                f"median={statistics.median(samples) * 1000:7.1f} ms "
                f"min={min(samples) * 1000:7.1f} ms"
            )


async def measure(args: argparse.Namespace, base: str, url: str, data: Path, root: Path) -> None:
    headers, user_id = await sign_up(base)
    ids = seed_operations(url, data, user_id, args.operations, str(root))
    print(f"seeded {len(ids)} operations")
    await cached(base, headers, len(ids))
    await measure_operations(args, base, headers, ids)
    if args.auth:
        await measure_auth(args, base)
    if args.files:
        await measure_files(args, base, headers, data, ids[0], root)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--auth-concurrency", type=int, default=8)
    parser.add_argument("--operations", type=int, default=500)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--files", type=int, default=0, help="synthesize and list N files")
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout to serve")
    parser.add_argument("--wrk", action="store_true", help="measure with wrk (closed loop)")
    parser.add_argument("--rate", type=float, default=0, help="open loop: requests a second")
    parser.add_argument("--no-auth", dest="auth", action="store_false", help="skip signup/login")
    args = parser.parse_args()
    served = args.repo.resolve()
    python = served / ".venv" / "bin" / "python"

    work = Path(tempfile.mkdtemp(prefix="fileorg-api-bench-"))
    data, root = work / "data", work / "root"
    data.mkdir()
    root.mkdir()
    url, drop = create_database(args.db, data)
    port = free_port()
    env = {
        **os.environ,
        "FILEORG_DATA_URL": str(data),
        "DATABASE_URL": url,
        "FILEORG_AUTH_ATTEMPTS_PER_ACCOUNT": "1000000",
        "FILEORG_AUTH_ATTEMPTS_PER_ADDRESS": "1000000",
        "PREFECT_API_URL": "http://127.0.0.1:9/api",  # never called: seeded runs are finished
    }
    server = subprocess.Popen(
        [
            str(python) if python.exists() else sys.executable,
            "-m",
            "uvicorn",
            "api.main:app",
            "--port",
            str(port),
            "--workers",
            str(args.workers),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=served,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240  # a loaded machine starts uvicorn slowly
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        print(f"db={args.db} workers={args.workers} cores={os.cpu_count()} serving {served}")
        print(f"load average before: {os.getloadavg()}", flush=True)
        args.server_pid = server.pid
        asyncio.run(measure(args, base, url, data, root))
    finally:
        server.terminate()
        server.wait(timeout=30)
        drop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
