"""A re-scan of an unchanged tree reads no file content and is much faster than the first scan.

    .venv/bin/python bench/rescan.py --api-url http://127.0.0.1:4200/api
    .venv/bin/python bench/rescan.py --root /some/tree --warm

Two `fileorg organize --dry-run` runs on the same root and the same data folder, the page
cache dropped before each (--warm: not dropped; the first run then reads the warm tree). The
second run finds the first in the data folder and reuses its digests and classifications.

Checks: the second run's operation record (storage.operations.load) shows 0 bytes read by the
prefix and hash passes; the bytes its process tree fetched from disk (/proc/PID/io read_bytes,
cold only) are compared with two baselines that read no file content: `find ROOT -ls` (the
walk's metadata) and organize on an empty folder (the CLI's imports, Prefect, the server).
Target: the cold second run at least 3x faster than the first.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import common

SPEEDUP_TARGET = 3.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=common.DEFAULT_WORK / "big")
    parser.add_argument("--work", type=Path, default=common.DEFAULT_WORK)
    parser.add_argument("--api-url", help="a running Prefect server (else one is started)")
    parser.add_argument("--warm", action="store_true", help="do not drop the page cache")
    args = parser.parse_args()
    if not args.root.is_dir():
        raise SystemExit(f"{args.root} is missing: build it with bench/dupes.py")
    return args


def run_all(args: argparse.Namespace, data: Path, cold: bool) -> dict[str, Any]:
    """The two baselines, then the first scan and the re-scan; label -> (measured, op id)."""

    def prepare() -> None:
        if cold:
            common.drop_caches()

    runs: dict[str, Any] = {}
    with common.prefect_server(args.api_url, args.work / "prefect-home-bench") as api_url:
        env = common.fileorg_env(data, api_url)
        # Baselines: what a run reads when it reads no file content.
        with tempfile.TemporaryDirectory(dir=args.work) as empty:
            prepare()
            m, _ = common.organize(Path(empty), common.fileorg_env(data / "empty", api_url))
            runs["organize, empty root"] = (m, None)
        prepare()
        runs["find ROOT -ls"] = (common.run_measured(["find", str(args.root), "-ls"]), None)
        for label in ("first scan", "re-scan"):
            prepare()
            print(f"running {label} ...", flush=True)
            runs[label] = common.organize(args.root, env)
    return runs


def print_table(root: Path, runs: dict[str, Any], records: dict[str, Any], cold: bool) -> None:
    rows = []
    for label in ("first scan", "re-scan"):
        m, _ = runs[label]
        stages = records[label].stages
        rows.append(
            [
                label,
                f"{m.wall_s:.1f}",
                common.human_bytes(m.read_bytes) if cold else "-",
                common.human_bytes(stages["prefix"].bytes),
                common.human_bytes(stages["hash"].bytes),
                " ".join(f"{k}={v.seconds:.1f}" for k, v in stages.items()),
            ]
        )
    for label in ("organize, empty root", "find ROOT -ls"):
        m, _ = runs[label]
        rows.append(
            [
                label,
                f"{m.wall_s:.1f}",
                common.human_bytes(m.read_bytes) if cold else "-",
                "",
                "",
                "",
            ]
        )
    common.print_table(
        f"Re-scan of {root} ({'cold' if cold else 'warm'})",
        ["run", "wall s", "read from disk", "prefix read", "hash read", "stages (s)"],
        rows,
    )


def check(runs: dict[str, Any], records: dict[str, Any], cold: bool) -> bool:
    """Print the speed-up and what the re-scan read; return whether it read file content."""
    first, second = runs["first scan"][0], runs["re-scan"][0]
    speedup = first.wall_s / second.wall_s
    rescan = records["re-scan"].stages
    content_read = rescan["prefix"].bytes + rescan["hash"].bytes
    print(f"\nspeed-up: {speedup:.1f}x (target {SPEEDUP_TARGET:.0f}x, cold)")
    print(f"re-scan: prefix+hash bytes read per the operation record: {content_read}")
    if cold:
        base = runs["organize, empty root"][0].read_bytes + runs["find ROOT -ls"][0].read_bytes
        extra = second.read_bytes - base
        print(
            f"re-scan read {common.human_bytes(second.read_bytes)} from disk; baselines "
            f"(empty-root organize + find -ls) {common.human_bytes(base)}; "
            f"difference {common.human_bytes(extra)} (manifests of the first run, classify)"
        )
    failed = content_read != 0
    if failed:
        print("FAILED: the re-scan read file content")
    if cold and speedup < SPEEDUP_TARGET:
        print(f"TARGET MISSED: speed-up {speedup:.1f}x < {SPEEDUP_TARGET:.0f}x")
    return failed


def main() -> int:
    args = parse_args()
    cold = not args.warm
    data = args.work / "rescan-data"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    runs = run_all(args, data, cold)
    records = {
        label: common.operation_record(runs[label][1], data) for label in ("first scan", "re-scan")
    }
    print_table(args.root, runs, records, cold)
    return 1 if check(runs, records, cold) else 0


if __name__ == "__main__":
    sys.exit(main())
