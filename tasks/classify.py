"""Classify: category and date for every regular file of one scan shard."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime

import pyarrow as pa

from storage import manifests
from storage.locations import DataStore
from storage.queries import connect, has_shards, source
from tasks import pool
from tasks.classifier import classify_file

STAGE = "classify"
CHUNK_FILES = 2000

# (absolute path, name, size, mtime_ns)
Job = tuple[bytes, bytes, int, int]
Row = tuple[str, str, datetime | None, str, str | None]


def run_classify(jobs: list[Job]) -> list[Row]:
    out: list[Row] = []
    for path, name, size, mtime_ns in jobs:
        c = classify_file(path, name, size, mtime_ns)
        out.append((c.category, c.ext, c.date, c.date_source, c.error))
    return out


def _cached_rows(
    store: DataStore, op_dir: str, prev_dir: str | None, index: int
) -> dict[bytes, dict[str, object]]:
    """Classifications of files unchanged since the previous operation on this root."""
    if prev_dir is None or not has_shards(store, prev_dir, STAGE):
        return {}
    shard = store.duckdb_path(manifests.shard_path(op_dir, "scan", index)).replace("'", "''")
    sql = f"""
        SELECT c.* FROM read_parquet('{shard}') s
        JOIN {source(store, prev_dir, "scan")} p
          ON p.path = s.path AND p.size = s.size AND p.mtime_ns = s.mtime_ns AND p.ino = s.ino
        JOIN {source(store, prev_dir, STAGE)} c ON c.path = s.path
        WHERE s.kind = 'file' AND p.kind = 'file' AND c.error IS NULL
    """
    with connect(store) as con:
        rows = con.sql(sql).to_arrow_table().to_pylist()
    return {row["path"]: row for row in rows}


def classify_shard(
    store: DataStore,
    op_dir: str,
    index: int,
    root: str,
    processes: int,
    prev_dir: str | None = None,
    on_chunk: Callable[[int, int], None] = lambda files, nbytes: None,
) -> dict[str, int]:
    out = manifests.shard_path(op_dir, STAGE, index)
    if store.exists(out):
        return {"files": 0, "cached": 0, "skipped_shard": 1}
    scan = manifests.read_table(
        store, manifests.shard_path(op_dir, "scan", index), ["path", "kind", "size", "mtime_ns"]
    )
    files = [r for r in scan.to_pylist() if r["kind"] == "file"]
    cached = _cached_rows(store, op_dir, prev_dir, index)
    todo = [r for r in files if r["path"] not in cached]
    on_chunk(len(files) - len(todo), 0)
    root_b = os.fsencode(root).rstrip(b"/")
    jobs: list[Job] = [
        (root_b + b"/" + r["path"], os.path.basename(r["path"]), r["size"], r["mtime_ns"])
        for r in todo
    ]
    ranges = [(a, min(a + CHUNK_FILES, len(jobs))) for a in range(0, len(jobs), CHUNK_FILES)]
    results = pool.map_chunks(
        run_classify, ranges, jobs, processes, lambda chunk: on_chunk(len(chunk), 0)
    )
    rows = [cached[r["path"]] for r in files if r["path"] in cached]
    for r, (category, ext, date, source_, error) in zip(todo, results, strict=True):
        rows.append(
            {
                "path": r["path"],
                "category": category,
                "ext": ext,
                "date": date,
                "date_source": source_,
                "year": date.year if date else None,
                "month": date.month if date else None,
                "error": error,
            }
        )
    manifests.write_table(store, out, pa.Table.from_pylist(rows, schema=manifests.CLASSIFY))
    return {"files": len(files), "cached": len(files) - len(todo), "skipped_shard": 0}
