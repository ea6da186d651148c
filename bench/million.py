"""A million small files: `fileorg organize --dry-run` completes, within memory, in few task runs.

    .venv/bin/python bench/million.py --api-url http://127.0.0.1:4200/api
    .venv/bin/python bench/million.py --files 100000      # a quicker, smaller run

Generates FILES small files (varied sizes and extensions, about DUP_PERCENT % of them copies
of a small pool of contents) over about FILES/1000 folders, unless the tree already holds
that many, then runs the CLI once against a Prefect server and reports its wall time, peak
memory (the CLI process, its pool workers, and the whole tree at once) and task runs.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import common

EXTENSIONS = [b".txt", b".py", b".json", b".jpg", b".png", b".pdf", b".bin", b"", b".log", b".csv"]
MEMORY_LIMIT_MIB = 1024
TASK_RUN_LIMIT = 300
MARKER = ".bench-million"


def generate(root: Path, files: int, per_dir: int, dup_percent: float, seed: int) -> float:
    """Write the tree; return seconds taken. Deterministic for a given seed."""
    rng = random.Random(seed)
    started = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    pool = [rng.randbytes(rng.randint(1, 6000)) for _ in range(2000)]  # duplicated contents
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    root_b = os.fsencode(root)
    dirs = (files + per_dir - 1) // per_dir
    done = 0
    for d in range(dirs):
        directory = root_b + b"/d%04d/s%d" % (d, d % 7) if d % 3 == 0 else root_b + b"/d%04d" % d
        os.makedirs(directory, exist_ok=True)
        for i in range(min(per_dir, files - done)):
            if rng.random() * 100 < dup_percent:
                data = rng.choice(pool)
            else:
                # Unique content; sizes skewed small, as in real trees, so most sizes are shared.
                size = min(int(rng.expovariate(1 / 1500)) + 1, 64_000)
                head = b"%d/%d " % (d, i)
                data = head + b"x" * max(0, size - len(head))
            name = b"f%05d%s" % (i, rng.choice(EXTENSIONS))
            fd = os.open(directory + b"/" + name, flags, 0o644)
            os.write(fd, data)
            os.close(fd)
        done += min(per_dir, files - done)
        if d % 100 == 99:
            print(f"  {done:,} files", flush=True)
    (root / MARKER).write_text(f"{files} {per_dir} {dup_percent} {seed}\n")
    return time.perf_counter() - started


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=common.DEFAULT_WORK / "million")
    parser.add_argument("--work", type=Path, default=common.DEFAULT_WORK)
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--per-dir", type=int, default=1000)
    parser.add_argument("--dup-percent", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--api-url", help="a running Prefect server (else one is started)")
    parser.add_argument("--cold", action="store_true", help="drop the page cache first")
    parser.add_argument("--cleanup", action="store_true", help="delete the tree at the end")
    return parser.parse_args()


def ensure_tree(args: argparse.Namespace) -> tuple[int, int]:
    """Generate the tree unless its marker matches the options; return its files and bytes."""
    wanted = f"{args.files} {args.per_dir} {args.dup_percent} {args.seed}\n"
    marker = args.root / MARKER
    if not marker.exists() or marker.read_text() != wanted:
        shutil.rmtree(args.root, ignore_errors=True)
        print(f"generating {args.files:,} files in {args.root} ...", flush=True)
        gen_s = generate(args.root, args.files, args.per_dir, args.dup_percent, args.seed)
        print(f"generated in {gen_s:.0f} s", flush=True)
    files, nbytes = common.tree_size(args.root)
    return files - 1, nbytes  # the marker is not one of the files


def print_results(
    root: Path,
    files: int,
    nbytes: int,
    m: common.Measured,
    runs: dict[str, Any],
    report: dict[str, Any],
) -> None:
    """Print the measures table, then every target missed."""
    peak_mib = m.peak_tree_pss_kb / 1024
    rows = [
        ["files", f"{files:,} ({common.human_bytes(nbytes)})"],
        ["wall time", f"{m.wall_s:.1f} s"],
        ["peak RSS, CLI process (time -v)", f"{(m.main_maxrss_kb or 0) / 1024:.0f} MiB"],
        ["peak RSS, whole tree at once", f"{m.peak_tree_rss_kb / 1024:.0f} MiB"],
        ["peak PSS, whole tree at once", f"{peak_mib:.0f} MiB"],
        ["sum of per-process peaks", f"{m.sum_peak_rss_kb / 1024:.0f} MiB"],
        ["multiprocessing processes (workers, forkserver, tracker)", m.pool_workers],
        ["task runs (server)", runs["task_runs"]],
        ["duplicate groups", report["duplicates"]["groups"]],
    ]
    for name, stage in report["stages"].items():
        rows.append([f"stage {name}", f"{stage['seconds']:.1f} s, {stage['files']:,} files"])
    common.print_table(f"organize --dry-run on {root}", ["measure", "value"], rows)

    problems = []
    if peak_mib > MEMORY_LIMIT_MIB:
        problems.append(f"peak memory {peak_mib:.0f} MiB > {MEMORY_LIMIT_MIB} MiB")
    if runs["task_runs"] is None or runs["task_runs"] > TASK_RUN_LIMIT:
        problems.append(f"task runs {runs['task_runs']} > {TASK_RUN_LIMIT}")
    for p in problems:
        print(f"TARGET MISSED: {p}")


def main() -> int:
    args = parse_args()
    files, nbytes = ensure_tree(args)

    data = args.work / "million-data"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    with common.prefect_server(args.api_url, args.work / "prefect-home-bench") as api_url:
        env = common.fileorg_env(data, api_url)
        if args.cold:
            common.drop_caches()
        print("running fileorg organize --dry-run ...", flush=True)
        m, op_id = common.organize(args.root, env)
        runs = common.count_task_runs(api_url, op_id)
    report = common.fileorg_report(op_id, env)
    print_results(args.root, files, nbytes, m, runs, report)
    if args.cleanup:
        shutil.rmtree(args.root)
        shutil.rmtree(data)
    return 0  # missing a target is a finding, not a failure: the run itself completed


if __name__ == "__main__":
    sys.exit(main())
