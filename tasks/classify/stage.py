"""Classify: category and date for every regular file of one scan shard (the stage's entry).

Answers of the last operation on the same root are reused for unchanged files: its shard
of the same index copied when it held the same files (an unchanged tree), else one DuckDB
join; the rest are classified from their names and times as Arrow columns
(tasks.classify.vector), and only the files whose content has something to say are read by
the backend: files in the process pool (tasks.classify.local), object heads with ranged GETs
(tasks.classify.objects).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from storage import manifests
from storage.locations import DataStore
from storage.queries import connect, has_shards, source
from tasks.classify import vector
from tasks.classify.content import Classification, storable

if TYPE_CHECKING:
    from tasks.backends import RootBackend

STAGE = "classify"
_ORDER = "_order"
# What makes a file the same file as the last operation's (tasks.hashes.worklists agrees).
_SAME = ["path", "size", "mtime_ns", "ino"]


def _cached(
    store: DataStore, op_dir: str, prev_dir: str | None, index: int, backend: RootBackend
) -> pa.Table:
    """Classifications of files unchanged since the previous operation on this root.

    Objects are unchanged when path, size and ETag are (the ino of an object row is a hash of
    its key and ETag, tasks.scan.objects); a new last-modified time alone matters only to a
    date that came from it (`backend.ino_names_content`).
    """
    empty = manifests.CLASSIFY.empty_table()
    if prev_dir is None or not has_shards(store, prev_dir, STAGE):
        return empty
    present = _columns(store, prev_dir)
    if not {"artist", "album"} <= present:
        return empty  # classified before audio tags were read: classify again
    shard = store.duckdb_path(manifests.shard_path(op_dir, "scan", index)).replace("'", "''")
    same = (
        "(p.mtime_ns = s.mtime_ns OR c.date_source <> 'mtime')"
        if backend.ino_names_content
        else "p.mtime_ns = s.mtime_ns"
    )
    # Shards written before a column existed read it as NULL.
    wanted = ", ".join(
        f"c.{f.name}" if f.name in present else f"NULL AS {f.name}" for f in manifests.CLASSIFY
    )
    sql = f"""
        SELECT {wanted} FROM read_parquet('{shard}') s
        JOIN {source(store, prev_dir, "scan")} p
          ON p.path = s.path AND p.size = s.size AND p.ino = s.ino
        JOIN {source(store, prev_dir, STAGE)} c ON c.path = s.path
        WHERE s.kind = 'file' AND s.left_alone IS NULL AND p.kind = 'file'
          AND c.error IS NULL AND {same}
    """
    with connect(store) as con:
        return con.sql(sql).to_arrow_table().cast(manifests.CLASSIFY)


def _same_shard(
    store: DataStore, prev_dir: str | None, index: int, files: pa.Table
) -> tuple[pa.Table, bytes] | None:
    """_cached's answer without a query when the previous operation's scan shard `index`
    held these very files (path, size, mtime_ns and ino, in order: an unchanged tree): that
    operation's classify shard of the same index (its table, and its bytes as written),
    whose rows with an error are read again; None where anything differs, and _cached joins."""
    if prev_dir is None:
        return None
    before_path = manifests.shard_path(prev_dir, "scan", index)
    answers_path = manifests.shard_path(prev_dir, STAGE, index)
    if not (store.exists(before_path) and store.exists(answers_path)):
        return None
    before = manifests.read_table(store, before_path, ["kind", "left_alone", *_SAME])
    kept = pc.and_(pc.equal(before["kind"], "file"), pc.is_null(before["left_alone"]))
    before = before.filter(kept)
    if not before.select(_SAME).equals(files.select(_SAME)):
        return None
    raw = store.read_bytes(answers_path)
    answers = manifests.table_of(raw)
    if not answers.schema.equals(manifests.CLASSIFY) or not answers["path"].equals(before["path"]):
        return None  # written before a column existed, or not this shard's files
    return answers, raw


def _columns(store: DataStore, op_dir: str) -> set[str]:
    with connect(store) as con:
        table = source(store, op_dir, STAGE)
        return {str(r[0]) for r in con.sql(f"DESCRIBE SELECT * FROM {table}").fetchall()}


def row(path: bytes, c: Classification) -> dict[str, object]:
    return {
        "path": path,
        "category": c.category,
        "ext": storable(c.ext),
        "date": c.date,
        "date_source": c.date_source,
        "year": c.date.year if c.date else None,
        "month": c.date.month if c.date else None,
        "error": c.error,
        "artist": c.artist,
        "album": c.album,
        "prefix": c.prefix,
    }


def _read(
    files: pa.Table, backend: RootBackend, processes: int, on_chunk: Callable[[int, int], None]
) -> pa.Table:
    """Rows of the files whose content the backend reads (path, size, mtime_ns, etag)."""
    rows = files.select(["path", "size", "mtime_ns", "etag"]).to_pylist()
    results = backend.classify_rows(rows, processes, on_chunk)
    return pa.Table.from_pylist(
        [row(r["path"], c) for r, c in zip(rows, results, strict=True)], schema=manifests.CLASSIFY
    )


def _positions(n: int) -> pa.Array:
    """0, 1, ... n - 1, made by Arrow."""
    return pc.subtract(pc.cumulative_sum(pc.fill_null(pa.nulls(n, pa.int64()), 1)), 1)


def _in_order(parts: list[tuple[pa.Table, pa.Array]]) -> pa.Table:
    """The parts' rows as one table, sorted by their positions (each part's second item)."""
    merged = pa.concat_tables([table.append_column(_ORDER, at) for table, at in parts])
    return merged.take(pc.sort_indices(merged[_ORDER])).drop_columns([_ORDER])


def classify_files(
    files: pa.Table, backend: RootBackend, processes: int, on_chunk: Callable[[int, int], None]
) -> pa.Table:
    """CLASSIFY rows of scan rows (path, size, mtime_ns, etag), in their order: by name and
    time as columns, the content read only where it has something to say."""
    by_name, wanted = vector.classify_names(files, manifests.CLASSIFY)
    order = _positions(len(files))
    named = pc.invert(wanted)
    on_chunk(pc.sum(named.cast(pa.int64())).as_py() or 0, 0)
    read = _read(files.filter(wanted), backend, processes, on_chunk)
    return _in_order([(by_name.filter(named), order.filter(named)), (read, order.filter(wanted))])


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
    columns = ["path", "kind", "size", "mtime_ns", "ino", "left_alone", "etag"]
    scan = manifests.read_table(store, manifests.shard_path(op_dir, "scan", index), columns)
    # What the scan left alone is neither read nor classified: it stays where it is.
    files = scan.filter(pc.and_(pc.equal(scan["kind"], "file"), pc.is_null(scan["left_alone"])))
    same = _same_shard(store, prev_dir, index, files)
    if same is not None and same[0]["error"].null_count == len(files):
        # The last answers, all of them: its shard's bytes are this one's, as they are.
        store.write_bytes(out, same[1])
        on_chunk(len(files), 0)
        return {"files": len(files), "cached": len(files), "skipped_shard": 0}
    if same is not None:
        cached = same[0].filter(pc.is_null(same[0]["error"]))
    else:
        cached = _cached(store, op_dir, prev_dir, index, backend)
    known = pc.is_in(files["path"], value_set=cached["path"])
    todo = files.filter(pc.invert(known))
    on_chunk(len(files) - len(todo), 0)
    new = classify_files(todo, backend, processes, on_chunk)
    # In the scan's order: the cached rows where their files are, the new ones between.
    position = pc.index_in(files["path"], value_set=cached["path"])
    order = _positions(len(files))
    old = (cached.take(position.filter(known)), order.filter(known))
    table = _in_order([old, (new, order.filter(pc.invert(known)))])
    manifests.write_table(store, out, table)
    return {"files": len(files), "cached": len(files) - len(todo), "skipped_shard": 0}
