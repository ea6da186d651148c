"""Apply and rollback of many moves on one filesystem, against `mv` and a plain os.rename loop.

    .venv/bin/python bench/apply_moves.py [--files 200000] [--mv-sample 20000]
    .venv/bin/python bench/apply_moves.py --files 50000 --against /path/to/old/checkout

The plan is made with the plain stage functions (no Prefect: this measures the moves, not
the orchestration). Each contender moves the same number of files from `in/dNNN/` into
`Documents/2026/`-style folders of a fresh tree; `mv` runs one process per file in a shell
loop, so it is timed on a sample and reported per move (`--mv-sample 0` leaves it out).

With `--against CHECKOUT` (another checkout of this repository with its own `.venv`, say the
main branch before a change), apply and rollback run with each checkout's code in turn, each
in a fresh process of its own, on the same tree and the same plan (copied into a new
operation for every run: a rollback gives every file its inode and place back), for
`--rounds` rounds: side by side on one machine, so a shared machine's load hits both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path

from storage.journal import PHASES, applied_journals
from storage.locations import DataStore
from storage.operations import PlanOptions
from tasks.apply import stage as apply
from tasks.backends import backend_for
from tasks.classify import stage as classify
from tasks.hashes import stage as hashes
from tasks.plan import stage as plan
from tasks.scan import stage as scan

SHARD_ROWS = 20_000


def make_tree(root: Path, files: int) -> None:
    if root.exists():
        shutil.rmtree(root)
    for i in range(files):
        folder = root / "in" / f"d{i // 1000:04d}"
        if i % 1000 == 0:
            folder.mkdir(parents=True)
        (folder / f"note-{i:07d}.txt").write_bytes(b"%d\n" % i)  # all distinct: no duplicates


def plan_tree(store: DataStore, op_id: str, root: Path) -> None:
    op_dir = store.operation_dir(op_id)
    backend = backend_for(str(root))
    scanned = scan.scan_root(store, op_dir, backend, SHARD_ROWS)
    for index in range(scanned["shards"]):
        classify.classify_shard(store, op_dir, index, backend, 2)
    for pass_name in (hashes.PREFIX, hashes.FULL):
        if pass_name == hashes.PREFIX:
            shards = hashes.plan_prefix_inputs(store, op_dir, None, SHARD_ROWS, backend)
        else:
            shards = hashes.plan_full_inputs(store, op_dir, None, SHARD_ROWS, 1 << 40, backend)
        for index in range(shards):
            hashes.hash_shard(store, op_dir, pass_name, index, backend, 2)
    plan.plan_operation(store, op_dir, PlanOptions(mode="category"), SHARD_ROWS, backend)


def timed_apply(store: DataStore, op_dir: str, root: Path) -> tuple[float, Counter[str]]:
    started = time.perf_counter()
    totals: Counter[str] = Counter()
    for phase in PHASES:
        for shard in range(apply.plan_shards(store, op_dir)):
            totals.update(
                apply.apply_shard(store, op_dir, backend_for(str(root)).apply(), phase, shard)
            )
    return time.perf_counter() - started, totals


def timed_rollback(store: DataStore, op_dir: str, root: Path) -> tuple[float, Counter[str]]:
    started = time.perf_counter()
    totals: Counter[str] = Counter()
    for journal in reversed(applied_journals(store, op_dir)):
        totals.update(apply.rollback_one(store, op_dir, backend_for(str(root)).apply(), journal))
    apply.tidy_dirs(store, op_dir, backend_for(str(root)).apply())
    return time.perf_counter() - started, totals


def rename_loop(root: Path) -> tuple[float, int]:
    sources = sorted((root / "in").rglob("*.txt"))
    target = root / "Documents"
    started, cpu = time.perf_counter(), time.process_time()
    target.mkdir()
    for src in sources:
        os.rename(src, target / src.name)
    # CPU time (the renames' kernel time included) next to the contenders' under load.
    print(f"os.rename loop: {time.process_time() - cpu:.1f} cpu s")
    return time.perf_counter() - started, len(sources)


def mv_loop(root: Path, sample: int) -> tuple[float, int]:
    sources = sorted((root / "in").rglob("*.txt"))[:sample]
    listing = root / "list.txt"
    listing.write_text("\n".join(str(s) for s in sources) + "\n")
    (root / "Documents").mkdir()
    script = f'while IFS= read -r f; do mv -n -- "$f" "{root}/Documents/"; done < "{listing}"'
    started = time.perf_counter()
    subprocess.run(["bash", "-c", script], check=True)
    return time.perf_counter() - started, len(sources)


# Run in a fresh process with a checkout's own venv: times its apply and rollback of one
# operation (argv: checkout, data folder, operation folder, tree) and prints them as JSON.
CONTENDER = """
import json, sys, time
from pathlib import Path
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/bench"]
import apply_moves as bench
from storage.locations import DataStore
store, op_dir, tree = DataStore(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
cpu = time.process_time()
apply_s, applied = bench.timed_apply(store, op_dir, tree)
apply_cpu, cpu = time.process_time() - cpu, time.process_time()
rollback_s, undone = bench.timed_rollback(store, op_dir, tree)
rollback_cpu = time.process_time() - cpu
print(json.dumps([apply_s, apply_cpu, applied["done"], rollback_s, rollback_cpu, undone["done"]]))
"""


def run_contender(checkout: Path, store: DataStore, planned: str, tree: Path) -> list[float]:
    """One apply and rollback with `checkout`'s code, on a copy of the planned operation."""
    op_dir = store.operation_dir(str(uuid.uuid4()))
    shutil.copytree(planned, op_dir, ignore=shutil.ignore_patterns("journal"))
    python = checkout / ".venv" / "bin" / "python"
    args = [str(python), "-c", CONTENDER, str(checkout), store.url, op_dir, str(tree)]
    out = subprocess.run(args, check=True, capture_output=True, text=True, cwd=checkout).stdout
    figures: list[float] = json.loads(out.strip().splitlines()[-1])
    return figures


def side_by_side(args: argparse.Namespace, store: DataStore, op_dir: str, tree: Path) -> None:
    here = Path(__file__).resolve().parent.parent
    contenders = {"this checkout": here, "--against": Path(args.against).resolve()}
    print(
        f"{'run':<22} {'apply moves/s':>13} {'cpu s':>6} {'rollback moves/s':>16} {'cpu s':>6}"
        f" {'load':>5}"
    )
    for round_ in range(args.rounds):
        for name, checkout in contenders.items():
            apply_s, apply_cpu, applied, undo_s, undo_cpu, undone = run_contender(
                checkout, store, op_dir, tree
            )
            if applied != args.files or undone != args.files:
                raise SystemExit(f"{name}: {applied} applied, {undone} undone of {args.files}")
            print(
                f"{name + f' #{round_ + 1}':<22} {applied / apply_s:>13.0f} {apply_cpu:>6.1f} "
                f"{undone / undo_s:>16.0f} {undo_cpu:>6.1f} {os.getloadavg()[0]:>5.1f}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200_000)
    parser.add_argument("--mv-sample", type=int, default=20_000)
    parser.add_argument("--work", default="/work/bench-data/moves")
    parser.add_argument("--against", help="another checkout (with .venv) to time side by side")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    work = Path(args.work)
    tree = work / "tree"
    store = DataStore(str(work / "data"))
    op_id = str(uuid.uuid4())

    make_tree(tree, args.files)
    t = time.perf_counter()
    plan_tree(store, op_id, tree)
    plan_s = time.perf_counter() - t
    op_dir = store.operation_dir(op_id)
    print(f"plan (scan, classify, hash, plan; no Prefect): {plan_s:.1f} s for {args.files} files")
    if args.against:
        side_by_side(args, store, op_dir, tree)
        applied, undone = Counter(done=args.files), Counter(done=args.files)
        apply_s = rollback_s = float("nan")
    else:
        apply_s, applied = timed_apply(store, op_dir, tree)
        rollback_s, undone = timed_rollback(store, op_dir, tree)

    make_tree(tree, args.files)
    rename_s, renamed = rename_loop(tree)
    print(f"os.rename loop: load average {os.getloadavg()[0]:.1f} after it")
    rows = [
        ("fileorg apply", applied["done"], apply_s),
        ("fileorg rollback", undone["done"], rollback_s),
        ("os.rename loop", renamed, rename_s),
    ][2 if args.against else 0 :]
    if args.mv_sample:
        make_tree(tree, args.files)
        mv_s, moved = mv_loop(tree, args.mv_sample)
        rows.append((f"mv loop (sample of {moved})", moved, mv_s))
    shutil.rmtree(work)

    print(f"{'what':<28} {'moves':>8} {'seconds':>9} {'moves/s':>9}")
    for name, count, seconds in rows:
        print(f"{name:<28} {count:>8} {seconds:>9.2f} {count / seconds:>9.0f}")
    if applied["done"] != args.files or undone["done"] != args.files:
        raise SystemExit(f"not every move was done/undone: {applied} {undone}")


if __name__ == "__main__":
    main()
