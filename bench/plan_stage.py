"""The plan stage alone, timed step by step, on an operation's manifests (run by hand).

    .venv/bin/python bench/plan_stage.py DATA_URL OPERATION_ID [--repo CHECKOUT] [--runs N]

Plans the operation's scan, classify and hash shards again (tasks.plan.stage.plan_operation,
in a scratch operation folder whose stage folders link to the operation's: nothing of it is
changed) and prints the wall time, each planning function's seconds and each SQL statement's
(the first line naming the table it makes), and the plan's counts. `--repo` imports the stage
from another checkout (its modules first on sys.path): base and new on the same manifests.
Peak RSS: run it under `/usr/bin/time -v`.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

SPENT: dict[str, float] = defaultdict(float)
WRITTEN: dict[str, int] = defaultdict(int)  # bytes written meanwhile: DuckDB's spill, shards


def _written() -> int:
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("write_bytes"))


_STATEMENT = re.compile(
    r"(CREATE (?:OR REPLACE )?(?:TABLE|VIEW) \w+|INSERT INTO \w+|DELETE FROM \w+|\w+)"
)


class _Timed:
    """A DuckDB connection whose execute() is timed by its statement's first words."""

    def __init__(self, con: Any) -> None:
        self._con = con

    def execute(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        started, written = time.perf_counter(), _written()
        try:
            return self._con.execute(sql, *args, **kwargs)
        finally:
            found = _STATEMENT.search(sql.strip())
            label = found.group(1) if found else sql[:30]
            if label in ("SELECT", "WITH", "UPDATE"):
                label += " in " + sys._getframe(1).f_code.co_name
            SPENT["sql " + label] += time.perf_counter() - started
            WRITTEN["sql " + label] += _written() - written

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


def _timed(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started, written = time.perf_counter(), _written()
        try:
            return func(*args, **kwargs)
        finally:
            SPENT["fn " + name] += time.perf_counter() - started
            WRITTEN["fn " + name] += _written() - written

    return wrapper


def _instrument() -> None:
    import importlib

    from storage import queries

    stage = importlib.import_module("tasks.plan.stage")
    original = queries.workspace

    @contextmanager
    def workspace(store: Any) -> Iterator[Any]:
        with original(store) as con:
            yield _Timed(con)

    stage.workspace = workspace  # type: ignore[attr-defined]
    names = {
        "tasks.plan.stage": ["load_stage_facts", "fingerprint", "plan_parts", "_write_shards",
                             "_counts"],
        "tasks.plan.partition": ["unit_index", "sort_out", "existing_keys", "residual"],
        "tasks.plan.fast": ["fast_path", "_busy", "_plain", "_folders", "_ancestors_table",
                            "_wanted", "_ranked", "_drop_clashing_groups"],
        "tasks.plan.copies": ["roles", "copy_rows", "grow"],
    }  # fmt: skip
    for module_name, funcs in names.items():
        module = importlib.import_module(module_name)
        for func in funcs:
            if hasattr(module, func):
                setattr(module, func, _timed(func, getattr(module, func)))


def _scratch(data_url: str, operation_id: str) -> tuple[str, str]:
    """A scratch data folder whose operation links to the real one's scan, classify, hash."""
    from storage.locations import DataStore

    real = DataStore(data_url).operation_dir(operation_id)
    base = tempfile.mkdtemp(prefix="plan-bench-", dir=os.path.dirname(data_url.rstrip("/")))
    scratch = DataStore(base)
    op_dir = scratch.operation_dir(operation_id)
    os.makedirs(op_dir)
    for name in os.listdir(real):
        if name in ("scan", "classify", "hash", "prefix"):
            os.symlink(os.path.join(real, name), os.path.join(op_dir, name))
    shutil.copy(os.path.join(real, "operation.json"), op_dir)
    return base, op_dir


def _digest(folder: str) -> str:
    """One digest of every plan shard's bytes, in order: equal plans, equal digests."""
    digest = hashlib.blake2b(digest_size=16)
    for name in sorted(n for n in os.listdir(folder) if n.endswith(".parquet")):
        with open(os.path.join(folder, name), "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_url")
    parser.add_argument("operation_id")
    parser.add_argument("--repo", default=None)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--memory", default=None, help="PLAN_MEMORY instead of the stage's")
    args = parser.parse_args()
    if args.repo:
        sys.path.insert(0, os.path.abspath(args.repo))
    _instrument()
    from storage import operations
    from storage.locations import DataStore
    from storage.settings import get_settings
    from tasks.backends import backend_for
    from tasks.plan import stage

    if args.memory:
        stage.PLAN_MEMORY = args.memory  # type: ignore[misc]
    print("stage from", stage.__file__, "memory", stage.PLAN_MEMORY, flush=True)
    for run in range(args.runs):
        base, op_dir = _scratch(args.data_url, args.operation_id)
        try:
            store = DataStore(base)
            record = operations.load(store, args.operation_id)
            SPENT.clear()
            WRITTEN.clear()
            started, cpu_started = time.perf_counter(), time.process_time()
            counts = stage.plan_operation(
                store, op_dir, record.options, get_settings().shard_rows, backend_for(record.root)
            )
            wall = time.perf_counter() - started
            shards = _digest(os.path.join(op_dir, "plan"))
        finally:
            shutil.rmtree(base)
        load = os.getloadavg()
        cpu = time.process_time() - cpu_started
        print(f"run {run}: plan {wall:.1f} s, CPU {cpu:.1f} s, load {load[0]:.1f} {load[1]:.1f}")
        print("  seconds  MB-written  step")
        for name, seconds in sorted(SPENT.items(), key=lambda kv: -kv[1]):
            if seconds >= 0.05:
                print(f"  {seconds:7.2f} {WRITTEN[name] / 1e6:9.0f}  {name}")
        counts.pop("fingerprint", None)
        print("  counts", json.dumps(counts, sort_keys=True))
        print("  shards' blake2b", shards)


if __name__ == "__main__":
    main()
