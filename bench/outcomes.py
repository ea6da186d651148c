"""What the CLI reads after an apply: outcomes per file from the journals, and the tree preview.

    .venv/bin/python bench/outcomes.py [--files 200000]

Writes a plan of N moves (shards of 20,000 rows, as the planner does) and apply journals as
apply writes them (an intent and an outcome per move: 1 % skipped, 0.5 % conflicts), then a
rollback journal for the first shard; times `fileorg plan ID --outcome skipped` (one page),
the sample printed after an apply, and the resulting-tree preview shown before one.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

import pyarrow as pa

from storage import manifests, queries
from storage.journal import Journal, apply_journal, rollback_journal
from storage.locations import DataStore
from storage.outcomes import NOT_DONE_APPLY, outcome_table
from storage.previews import resulting_tree

SHARD_ROWS = 20_000


def write_operation(store: DataStore, op_dir: str, files: int) -> None:
    for shard in range(0, (files + SHARD_ROWS - 1) // SHARD_ROWS):
        first = shard * SHARD_ROWS
        rows = range(first, min(first + SHARD_ROWS, files))
        plan = [
            {
                "src": b"in/d%04d/note-%07d.txt" % (i // 1000, i),
                "dst": b"Documents/%d/note-%07d.txt" % (2000 + i % 25, i),
                "action": "move",
                "reason": "organize",
                "size": 100 + i % 5000,
                "mtime_ns": i,
                "dev": 1,
                "ino": i,
            }
            for i in rows
        ]
        table = pa.Table.from_pylist(plan, schema=manifests.PLAN)
        manifests.write_table(store, manifests.shard_path(op_dir, "plan", shard), table)
        path = apply_journal(store, op_dir, "move", shard)
        with Journal(path) as journal:
            for index, row in enumerate(plan):
                seq = f"move-{shard}-{index}"
                journal.add(
                    {
                        "seq": seq,
                        "phase": "intent",
                        "action": "move",
                        "src": row["src"].decode(),
                        "dst": row["dst"].decode(),
                    }
                )
            for index in range(len(plan)):
                journal.add(_outcome(f"move-{shard}-{index}", first + index))
        if shard == 0:
            with Journal(rollback_journal(store, op_dir, path)) as undo:
                for index in range(len(plan)):
                    undo.add({"seq": f"move-0-{index}", "phase": "done"})


def _outcome(seq: str, i: int) -> dict[str, object]:
    if i % 100 == 0:
        return {"seq": seq, "phase": "skipped", "reason": "changed since scan"}
    if i % 200 == 1:
        return {"seq": seq, "phase": "skipped", "reason": "conflict: destination exists"}
    return {"seq": seq, "phase": "done", "dev": 1, "ino": i}


def timed(label: str, fn: object) -> object:
    started = time.perf_counter()
    result = fn()  # type: ignore[operator]
    print(f"{label:<48} {time.perf_counter() - started:7.2f} s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = DataStore(str(Path(tmp) / "data"))
        op_dir = store.operation_dir(str(uuid.uuid4()))
        timed(
            f"write plan + journals ({args.files:,} moves)",
            lambda: write_operation(store, op_dir, args.files),
        )
        table = timed("outcome_table (read every journal)", lambda: outcome_table(store, op_dir))
        assert table.num_rows == args.files  # type: ignore[attr-defined]
        page = timed(
            "plan --outcome skipped (one page of 50)",
            lambda: queries.plan_rows(store, op_dir, outcome="skipped", limit=50),
        )
        print(f"{'':<48} {page[1]:,} skipped")  # type: ignore[index]
        timed(
            "after-apply sample (5 rows, counts)",
            lambda: queries.outcome_sample(store, op_dir, NOT_DONE_APPLY),
        )
        folders = timed("resulting tree preview (depth 2)", lambda: resulting_tree(store, op_dir))
        print(f"{'':<48} {len(folders):,} folders")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
