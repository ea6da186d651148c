"""10,000 objects in moto's S3 server: stage times and S3 requests per object.

    .venv/bin/python bench/objects.py [--objects 10000] [--api-url URL] [--data-s3]

Starts moto's server in its own process (so that it does not share the pipeline's GIL), fills
a bucket (nested prefixes, a third of the objects duplicated, EXIF-less JPEG names, zero-byte
objects), then runs the organize flow as a dry run twice in this process: the first run and a
re-scan of the unchanged bucket. Stage times come from the operation record; requests are
counted per S3 operation by storage.objects.REQUESTS, snapshotted around every stage.

Targets (issue #6): scan well under one request per object; hash one request per candidate.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import common

BUCKET = "bench-bucket"


@contextmanager
def moto_process() -> Iterator[str]:
    port = common._free_port()
    proc = subprocess.Popen(
        [str(common.VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def fill(client: Any, n: int, seed: int = 7) -> tuple[int, int]:
    """Put n objects; return (objects, bytes)."""
    rng = random.Random(seed)
    kinds = ["jpg", "png", "pdf", "txt", "mp4", "docx", "bin", "csv"]
    originals: list[bytes] = []
    jobs: list[tuple[str, bytes]] = []
    for i in range(n):
        folder = f"dump/{rng.randrange(40):02d}/{rng.randrange(10)}"
        name = f"IMG_{2015 + i % 8}{1 + i % 12:02d}{1 + i % 28:02d}_{i}.{kinds[i % len(kinds)]}"
        if i % 97 == 0:
            body = b""
        elif originals and rng.random() < 0.33:
            body = rng.choice(originals)  # a duplicate of an earlier object
        else:
            body = rng.randbytes(rng.choice([200, 3000, 5000, 20_000, 60_000]))
            originals.append(body)
        jobs.append((f"{folder}/{name}", body))
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda kb: client.put_object(Bucket=BUCKET, Key=kb[0], Body=kb[1]), jobs))
    return len(jobs), sum(len(b) for _, b in jobs)


def run(root: str) -> tuple[str, dict[str, dict[str, Any]]]:
    """One organize dry run; per stage: seconds and requests by S3 operation."""
    import flows.organize as organize
    from storage import operations
    from storage.locations import DataStore
    from storage.objects import REQUESTS
    from storage.settings import get_settings

    per_stage: dict[str, dict[str, Any]] = {}
    original = organize.stage

    @contextmanager
    def counted(store: Any, record: Any, name: str) -> Iterator[Any]:
        before = Counter(REQUESTS)
        started = time.perf_counter()
        with original(store, record, name) as timing:
            yield timing
        per_stage[name] = {
            "wall_s": round(time.perf_counter() - started, 2),
            "requests": dict(Counter(REQUESTS) - before),
        }

    organize.stage = counted  # type: ignore[assignment]
    op_id = str(uuid.uuid4())
    try:
        organize.organize_flow(op_id, root, None, True)
    finally:
        organize.stage = original
    record = operations.load(DataStore(get_settings().data_url), op_id)
    for name, timing in record.stages.items():
        per_stage.setdefault(name, {})["files"] = timing.files
    return op_id, per_stage


def apply_and_roll_back(op_id: str, count: int) -> dict[str, Any]:
    """Apply the plan of `op_id`, then roll it back: time and requests of each."""
    from flows.apply import apply_plan_flow, rollback_flow
    from storage.objects import REQUESTS

    out: dict[str, Any] = {}
    rows = []
    for name, flow in (("apply", apply_plan_flow), ("rollback", rollback_flow)):
        before = Counter(REQUESTS)
        started = time.perf_counter()
        result = flow(op_id)
        seconds = time.perf_counter() - started
        reqs = dict(Counter(REQUESTS) - before)
        n = sum(reqs.values())
        out[name] = {"seconds": round(seconds, 2), "result": result, "requests": reqs}
        rows.append(
            (name, f"{seconds:.1f}", n, ", ".join(f"{k}={v}" for k, v in sorted(reqs.items())))
        )
    common.print_table(
        f"apply and rollback of the first plan ({count} objects in the bucket)",
        ["flow", "seconds", "requests", "by operation"],
        rows,
    )
    return out


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--api-url", help="a running Prefect server (else one is started)")
    parser.add_argument("--data-s3", action="store_true", help="keep the manifests in S3 too")
    parser.add_argument(
        "--apply", action="store_true", help="then apply the first plan and roll it back"
    )
    return parser.parse_args()


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="bench",
        aws_secret_access_key="bench-secret",
        region_name="us-east-1",
    )


def configure(client: Any, endpoint: str, api_url: str, home: Path, data_s3: bool) -> None:
    """Point the in-process pipeline at the Prefect server, moto, and its data folder."""
    os.environ["PREFECT_API_URL"] = api_url
    os.environ["FILEORG_PROFILES"] = json.dumps(
        {
            "s3": {
                "endpoint_url": endpoint,
                "key": "bench",
                "secret": "bench-secret",
                "region": "us-east-1",
            }
        }
    )
    if data_s3:
        client.create_bucket(Bucket="bench-data")
        os.environ["FILEORG_DATA_URL"] = "s3://bench-data/fileorg"
    else:
        os.environ["FILEORG_DATA_URL"] = str(home / "data")


def print_stages(label: str, count: int, total: float, stages: dict[str, dict[str, Any]]) -> None:
    rows = []
    for name, info in stages.items():
        reqs = info.get("requests", {})
        n = sum(reqs.values())
        rows.append(
            (
                name,
                info.get("wall_s"),
                info.get("files"),
                n,
                f"{n / count:.3f}",
                ", ".join(f"{k}={v}" for k, v in sorted(reqs.items())),
            )
        )
    common.print_table(
        f"{label}: {count} objects, {total:.1f} s in all",
        ["stage", "seconds", "files", "requests", "per object", "by operation"],
        rows,
    )


def main() -> int:
    args = parse_args()
    home = Path(tempfile.mkdtemp(prefix="fileorg-bench-objects-"))
    with moto_process() as endpoint, common.prefect_server(args.api_url, home) as api_url:
        client = s3_client(endpoint)
        client.create_bucket(Bucket=BUCKET)
        started = time.perf_counter()
        count, nbytes = fill(client, args.objects)
        print(
            f"filled {count} objects ({common.human_bytes(nbytes)}) in "
            f"{time.perf_counter() - started:.1f} s"
        )
        configure(client, endpoint, api_url, home, args.data_s3)
        results = {}
        for label in ("first", "re-scan"):
            started = time.perf_counter()
            op_id, stages = run(f"s3://{BUCKET}")
            total = time.perf_counter() - started
            results[label] = {"operation": op_id, "total_s": round(total, 2), "stages": stages}
            print_stages(label, count, total, stages)
        if args.apply:
            results["apply"] = apply_and_roll_back(results["first"]["operation"], count)
        json.dump(results, sys.stdout, indent=1)
        print()
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    raise SystemExit(main())
