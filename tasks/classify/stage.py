"""Classify: category and date for every regular file of one scan shard (the stage's entry).

Answers of the last operation on the same root are reused for unchanged files; the rest are
read by the backend: files in the process pool (tasks.classify.local), object heads with
ranged GETs (tasks.classify.objects).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pyarrow as pa

from storage import manifests
from storage.locations import DataStore
from storage.queries import connect, has_shards, source
from tasks.classify.content import Classification

if TYPE_CHECKING:
    from tasks.backends import RootBackend

STAGE = "classify"


def _cached_rows(
    store: DataStore, op_dir: str, prev_dir: str | None, index: int, backend: RootBackend
) -> dict[bytes, dict[str, object]]:
    """Classifications of files unchanged since the previous operation on this root.

    Objects are unchanged when path, size and ETag are (the ino of an object row is a hash of
    its key and ETag, tasks.scan.objects); a new last-modified time alone matters only to a
    date that came from it (`backend.ino_names_content`).
    """
    if prev_dir is None or not has_shards(store, prev_dir, STAGE):
        return {}
    if not _has_columns(store, prev_dir, ("artist", "album")):
        return {}  # classified before audio tags were read: classify again
    shard = store.duckdb_path(manifests.shard_path(op_dir, "scan", index)).replace("'", "''")
    same = (
        "(p.mtime_ns = s.mtime_ns OR c.date_source <> 'mtime')"
        if backend.ino_names_content
        else "p.mtime_ns = s.mtime_ns"
    )
    sql = f"""
        SELECT c.* FROM read_parquet('{shard}') s
        JOIN {source(store, prev_dir, "scan")} p
          ON p.path = s.path AND p.size = s.size AND p.ino = s.ino
        JOIN {source(store, prev_dir, STAGE)} c ON c.path = s.path
        WHERE s.kind = 'file' AND s.left_alone IS NULL AND p.kind = 'file'
          AND c.error IS NULL AND {same}
    """
    with connect(store) as con:
        rows = con.sql(sql).to_arrow_table().to_pylist()
    return {row["path"]: row for row in rows}


def _has_columns(store: DataStore, op_dir: str, names: tuple[str, ...]) -> bool:
    with connect(store) as con:
        found = {
            r[0]
            for r in con.sql(f"DESCRIBE SELECT * FROM {source(store, op_dir, STAGE)}").fetchall()
        }
    return set(names) <= found


def row(path: bytes, c: Classification) -> dict[str, object]:
    return {
        "path": path,
        "category": c.category,
        "ext": c.ext,
        "date": c.date,
        "date_source": c.date_source,
        "year": c.date.year if c.date else None,
        "month": c.date.month if c.date else None,
        "error": c.error,
        "artist": c.artist,
        "album": c.album,
    }


def classify_shard(
    store: DataStore,
    op_dir: str,
    index: int,
    backend: RootBackend,
    processes: int,
    prev_dir: str | None = None,
    on_chunk: Callable[[int, int], None] = lambda files, nbytes: None,
) -> dict[str, int]:
    """Classify one scan shard, unless it is already written (the checkpoint)."""
    out = manifests.shard_path(op_dir, STAGE, index)
    if store.exists(out):
        return {"files": 0, "cached": 0, "skipped_shard": 1}
    # etag: an object's head is read If-Match the scanned ETag (a file's is null, unused).
    columns = ["path", "kind", "size", "mtime_ns", "left_alone", "etag"]
    scan = manifests.read_table(store, manifests.shard_path(op_dir, "scan", index), columns)
    # What the scan left alone is neither read nor classified: it stays where it is.
    files = [r for r in scan.to_pylist() if r["kind"] == "file" and r["left_alone"] is None]
    cached = _cached_rows(store, op_dir, prev_dir, index, backend)
    todo = [r for r in files if r["path"] not in cached]
    on_chunk(len(files) - len(todo), 0)
    results = backend.classify_rows(todo, processes, on_chunk)
    rows = [cached[r["path"]] for r in files if r["path"] in cached]
    rows += [row(r["path"], c) for r, c in zip(todo, results, strict=True)]
    manifests.write_table(store, out, pa.Table.from_pylist(rows, schema=manifests.CLASSIFY))
    return {"files": len(files), "cached": len(files) - len(todo), "skipped_shard": 0}
