"""What apply's emptied-folder removal spends finding its folders, at many moves: the whole
journal parsed (as before) against a sealed journal's moves file and its folders' lines.

    .venv/bin/python bench/emptied_sources.py [--files 200000] [--rounds 3]

A tree of distinct files in `in/dNNNN/` is planned and applied with the plain stage functions
(bench/apply_moves.py), without removing any folder; then both ways of gathering the moved
sources and the folders' recorded times run in turn on the same journals, and must agree.
"""

from __future__ import annotations

import argparse
import shutil
import time
import uuid
from pathlib import Path

from apply_moves import make_tree, plan_tree

from storage import journal_moves
from storage.journal import PHASES, applied_journals, read_journal
from storage.locations import DataStore
from tasks.apply import dirs
from tasks.apply import stage as apply
from tasks.backends import backend_for

FOLDERS = ("dirmeta", "mkdir")
Found = tuple[set[bytes], set[str]]


def parsed(journals: list[str]) -> Found:
    sources: list[bytes] = []
    known: set[str] = set()
    for journal in journals:
        entries = read_journal(journal)
        sources += dirs.moved_sources(entries)
        known.update(e["path"] for e in entries if e["phase"] in FOLDERS)
    return dirs.ancestors(sources), known


def sealed(journals: list[str]) -> Found:
    return apply.emptied_candidates(journals)  # what LocalApply.remove_emptied runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", default="/work/bench-data/emptied")
    args = parser.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    root, store = work / "tree", DataStore(str(work / "data"))
    make_tree(root, args.files)
    op_id = str(uuid.uuid4())
    plan_tree(store, op_id, root)
    op_dir = store.operation_dir(op_id)
    where = backend_for(str(root)).apply()
    for phase in PHASES:
        for shard in range(apply.plan_shards(store, op_dir)):
            apply.apply_shard(store, op_dir, where, phase, shard)
    journals = applied_journals(store, op_dir)
    count = sum(journal_moves.sealed_moves(j) is not None for j in journals)
    print(f"{len(journals)} journals, {count} sealed")
    assert parsed(journals) == sealed(journals)
    for round_ in range(args.rounds):
        for name, gather in (("parsed", parsed), ("sealed", sealed)):
            cpu, wall = time.process_time(), time.perf_counter()
            gather(journals)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            print(f"round {round_}: {name}: CPU {cpu:.3f} s, wall {wall:.3f} s")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
