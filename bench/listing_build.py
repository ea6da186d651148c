"""The listing manifest's build alone, on an operation's shards (run by hand).

    .venv/bin/python bench/listing_build.py DATA_URL OPERATION_ID [--memory 256MB] [--runs N]

Builds `storage.queries.listing_manifest` of a planned operation again (its `listing/` folder
removed first: it is rebuilt from the stages' shards, nothing else is touched) and prints, for
each run, wall and CPU seconds, the process's RSS before the build and its peak during it
(VmHWM, reset before each run through /proc/self/clear_refs) and the bytes the process wrote
(the manifest and DuckDB's spill). `--memory` sets BUILD_MEMORY; `--repo` imports storage
from another checkout (its modules first on sys.path): base and new on the same shards.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))


def _written() -> int:
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("write_bytes"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_url")
    parser.add_argument("operation_id")
    parser.add_argument("--memory", default=None, help="BUILD_MEMORY instead of the module's")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--repo", type=Path, help="the checkout whose storage is imported")
    args = parser.parse_args()
    if args.repo:
        sys.path.insert(0, str(args.repo.resolve()))
    from storage.locations import DataStore
    from storage.queries import listing_manifest

    if args.memory:
        listing_manifest.BUILD_MEMORY = args.memory  # type: ignore[misc]
    store = DataStore(args.data_url)
    op_dir = store.operation_dir(args.operation_id)
    for run in range(args.runs):
        shutil.rmtree(f"{op_dir}/{listing_manifest.FOLDER}", ignore_errors=True)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # VmHWM back to the current RSS
        before, written = _status("VmRSS:"), _written()
        wall, cpu = time.perf_counter(), time.process_time()
        built = listing_manifest.build(store, op_dir, include_empty=False)
        row = {
            "run": run + 1,
            "memory": listing_manifest.BUILD_MEMORY,
            "wall_s": round(time.perf_counter() - wall, 2),
            "cpu_s": round(time.process_time() - cpu, 2),
            "rss_before_mib": before // 1024,
            "peak_mib": _status("VmHWM:") // 1024,
            "written_mb": (_written() - written) // 1_000_000,
            "rows": {k: built.get(k) for k in ("files", "plan", "duplicates")},
            "load": os.getloadavg()[0],
            "from": listing_manifest.__file__,
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
