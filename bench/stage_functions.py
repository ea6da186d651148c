"""Scan, classify and the two hash passes as plain functions, without Prefect (run by hand).

    .venv/bin/python bench/stage_functions.py ROOT DATA_URL [--previous OPERATION_ID]

A new operation in DATA_URL (never the root's own data folder: this writes shards there) runs
tasks.scan.stage.scan_root, classify_shard for every shard, both work lists and hash_shard for
every shard of each pass, as the organize flow calls them (--previous: the operation whose
answers and digests it may reuse, as a re-scan's flow would find it). Prints each step's wall
and CPU seconds (process_time: this process's threads, DuckDB's included; the process pool's
workers are not counted) and the new operation's id, to pass as --previous to the next run.
Run it from the checkout to measure (its .venv): base and new, one after the other, on the same
root, with the load average beside the figures.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from collections.abc import Callable
from typing import Any


def _step(name: str, fn: Callable[[], Any]) -> Any:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    took, used = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{name:14s} {took:6.2f} s wall {used:6.2f} s CPU", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root")
    parser.add_argument("data_url")
    parser.add_argument("--previous", help="an earlier operation on the same root, by id")
    args = parser.parse_args()
    os.environ["FILEORG_DATA_URL"] = args.data_url
    from storage.leave_alone import ScanRules
    from storage.locations import DataStore
    from storage.settings import get_settings
    from tasks import pool
    from tasks.backends import backend_for
    from tasks.classify import stage as classify
    from tasks.hashes import stage as hashes
    from tasks.scan import stage as scan

    settings = get_settings()
    store = DataStore(settings.data_url)
    operation = str(uuid.uuid4())
    op_dir = store.operation_dir(operation)
    prev_dir = store.operation_dir(args.previous) if args.previous else None
    backend = backend_for(args.root)
    processes = backend.processes(settings.io_processes)
    started, cpu = time.perf_counter(), time.process_time()

    def hash_all(pass_name: str, shards: int) -> list[dict[str, int]]:
        return [
            hashes.hash_shard(store, op_dir, pass_name, i, backend, processes)
            for i in range(shards)
        ]

    rows = settings.shard_rows
    scanned = _step("scan", lambda: scan.scan_root(store, op_dir, backend, rows, ScanRules()))
    _step(
        "classify",
        lambda: [
            classify.classify_shard(store, op_dir, i, backend, processes, prev_dir)
            for i in range(scanned["shards"])
        ],
    )
    pool.release()
    files, size = settings.hash_shard_files, settings.hash_shard_bytes
    n = _step(
        "prefix list", lambda: hashes.plan_prefix_inputs(store, op_dir, prev_dir, files, backend)
    )
    _step("prefix", lambda: hash_all(hashes.PREFIX, n))
    n = _step(
        "full list",
        lambda: hashes.plan_full_inputs(store, op_dir, prev_dir, files, size, backend),
    )
    _step("full", lambda: hash_all(hashes.FULL, n))
    pool.end()
    took, used = time.perf_counter() - started, time.process_time() - cpu
    print(f"operation {operation}: {took:.2f} s wall, {used:.2f} s CPU", flush=True)


if __name__ == "__main__":
    main()
