"""The work lists of the two hash passes: which files must be compared, cut into shards.

Each pass is planned once into `{pass}/_inputs/` so a resumed run hashes the same shards:

* prefix: one file per inode (hard links are one file) among sizes shared by two or more
  inodes: blake3 of the first 4 KiB;
* hash: inodes whose (size, prefix) is still shared: blake3 of the whole content. For files of
  at most 4 KiB the prefix digest already is the full digest and nothing is read again.

Digests of files unchanged since the last operation on the same root (same path, size,
mtime_ns and inode) are reused from that operation's manifests instead of being read, and so
are the prefix digests the classify stage took of the heads it read anyway (its `prefix`
column): one read per file. When the scan is the last operation's byte for byte (an unchanged
tree), that operation's lists are copied with their digests instead of queried again.

Object-store roots go through the same work lists; only the reads differ (tasks.hashes.local,
tasks.hashes.objects).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from storage import manifests
from storage.locations import DataStore
from storage.queries import connect, has_shards, source, workspace
from storage.queries.connection import columns
from tasks.hashes.local import PREFIX_BYTES

if TYPE_CHECKING:
    from tasks.backends import RootBackend

PREFIX = "prefix"
FULL = "hash"
INPUTS = "_inputs"
# DuckDB's memory while it makes a work list: past it, its joins and sort spill to a temporary
# folder. A million files' prefix list took 370-450 MB unbounded (its result materialized
# whole), 220 MB at this limit on one thread, streamed into shards as it is sorted.
WORKLIST_MEMORY = "192MB"
WORKLIST_BATCH = 10_000
# Below this many scanned entries a work list is a few MB at most, and is made on the
# process's query database, unbounded: a database of its own with its limits costs 15-120 ms
# to open, which was most of a 10-file run's prefix and hash stages (0.04 -> 0.08-0.10 s each).
BOUNDED_FROM = 100_000

# The rules this version makes a work list's rows by (the SQL below): a list is copied from
# an earlier operation's (an unchanged tree) only if that one was made by the same rules.
ROWS = 1

log = logging.getLogger(__name__)


def inputs_dir(pass_name: str) -> str:
    return f"{pass_name}/{INPUTS}"


def _cache_join(
    store: DataStore, prev_dir: str | None, pass_name: str, backend: RootBackend
) -> tuple[str, str]:
    """SQL pieces reusing digests from the previous operation, or nothing.

    A file is unchanged when its path, size, mtime_ns and inode are. An object is unchanged
    when its path, size and ETag are: its ino is a hash of key and ETag (tasks.scan.objects),
    and a new LastModified alone (the same content uploaded again) does not change content
    (`backend.ino_names_content`).
    """
    if prev_dir is None or not has_shards(store, prev_dir, pass_name):
        return "NULL::BLOB", ""
    prev_scan = source(store, prev_dir, "scan")
    prev_hash = source(store, prev_dir, pass_name)
    same_time = "" if backend.ino_names_content else "AND prev.mtime_ns = c.mtime_ns"
    join = f"""
        LEFT JOIN (
            SELECT s.path, s.size, s.mtime_ns, s.ino, h.digest
            FROM {prev_scan} s JOIN {prev_hash} h ON s.dev = h.dev AND s.ino = h.ino
            WHERE h.error IS NULL AND s.kind = 'file'
        ) prev ON prev.path = c.path AND prev.size = c.size
              AND prev.ino = c.ino {same_time}
    """
    return "prev.digest", join


def _known_prefixes(store: DataStore, op_dir: str, backend: RootBackend) -> tuple[str, str]:
    """SQL pieces reusing the prefix digests classify took of the heads it read, or nothing.

    classify's `prefix` is blake3 of the first min(size, PREFIX_BYTES) bytes, null where it
    read no head; shards written before the column existed have none (read by name, so a
    resumed operation may mix both). It is the prefix pass's own digest where that pass reads
    the first PREFIX_BYTES: up to PREFIX_BYTES, and past the size the backend's prefix pass
    reads whole (an object's up to WHOLE_OBJECT_BYTES is a whole-content digest instead).
    """
    if not has_shards(store, op_dir, "classify"):
        return "NULL::BLOB", ""
    classified = source(store, op_dir, "classify")  # columns by name: old and new shards mix
    if "prefix" not in columns(store, classified):
        return "NULL::BLOB", ""
    join = f"""
        LEFT JOIN (
            SELECT s.dev, s.ino, any_value(k.prefix) AS prefix
            FROM {source(store, op_dir, "scan")} s JOIN {classified} k ON k.path = s.path
            WHERE s.kind = 'file' AND octet_length(k.prefix) = 32
            GROUP BY s.dev, s.ino
        ) known ON known.dev = c.dev AND known.ino = c.ino
    """
    same_digest = f"c.size <= {PREFIX_BYTES} OR c.size > {backend.whole_in_prefix}"
    return f"CASE WHEN {same_digest} THEN known.prefix END", join


def plan_prefix_inputs(
    store: DataStore, op_dir: str, prev_dir: str | None, shard_files: int, backend: RootBackend
) -> int:
    """Write the prefix work list; return its number of shards (reusing an existing plan)."""
    done = manifests.done_info(store, op_dir, inputs_dir(PREFIX))
    if done is not None:
        return int(done["shards"])
    if prev_dir is not None and _scan_unchanged(store, op_dir, prev_dir):
        copied = _copied(store, op_dir, prev_dir, PREFIX, shard_files, None)
        if copied is not None:
            return copied
    cached, join = _cache_join(store, prev_dir, PREFIX, backend)
    known, known_join = _known_prefixes(store, op_dir, backend)
    sql = f"""
        WITH inodes AS (
            SELECT dev, ino, any_value(size) AS size, min(mtime_ns) AS mtime_ns, min(path) AS path
            FROM {source(store, op_dir, "scan")}
            WHERE kind = 'file' AND size > 0 AND left_alone IS NULL
            GROUP BY dev, ino
        ), c AS (
            SELECT * FROM inodes
            WHERE size IN (SELECT size FROM inodes GROUP BY size HAVING count(*) > 1)
        )
        SELECT c.dev, c.ino, c.size, c.mtime_ns, c.path, COALESCE({known}, {cached}) AS cached
        FROM c {join} {known_join}
    """
    return _write_streamed(store, op_dir, PREFIX, sql, shard_files, None)


def plan_full_inputs(
    store: DataStore,
    op_dir: str,
    prev_dir: str | None,
    shard_files: int,
    shard_bytes: int,
    backend: RootBackend,
) -> int:
    done = manifests.done_info(store, op_dir, inputs_dir(FULL))
    if done is not None:
        return int(done["shards"])
    prefix = manifests.done_info(store, op_dir, inputs_dir(PREFIX)) or {}
    # Every prefix digest the previous operation's (its list copied, none read again): then
    # the full list is that operation's too, copied.
    copied_prefix = prev_dir is not None and prefix.get("copied_from") == prev_dir
    if copied_prefix and prev_dir and _all_cached(store, op_dir, int(prefix["shards"])):
        copied = _copied(store, op_dir, prev_dir, FULL, shard_files, shard_bytes)
        if copied is not None:
            return copied
    cached, join = _cache_join(store, prev_dir, FULL, backend)
    # Up to this size the prefix pass already hashed the whole content.
    small = backend.whole_in_prefix
    sql = f"""
        WITH p AS (
            SELECT dev, ino, size, digest FROM {source(store, op_dir, PREFIX)}
            WHERE error IS NULL
        ), shared AS (
            SELECT size, digest FROM p GROUP BY size, digest HAVING count(*) > 1
        ), c AS (
            SELECT p.dev, p.ino, p.size, i.mtime_ns, i.path, p.digest AS prefix
            FROM p JOIN shared USING (size, digest)
            JOIN {source(store, op_dir, inputs_dir(PREFIX))} i USING (dev, ino)
        )
        SELECT c.dev, c.ino, c.size, c.mtime_ns, c.path,
               CASE WHEN c.size <= {small} THEN c.prefix ELSE {cached} END
                   AS cached
        FROM c {join}
    """
    return _write_streamed(store, op_dir, FULL, sql, shard_files, shard_bytes)


def _write_streamed(
    store: DataStore,
    op_dir: str,
    pass_name: str,
    sql: str,
    shard_files: int,
    shard_bytes: int | None,
) -> int:
    """The work list's shards (`sql`'s rows by dev and ino), written as DuckDB hands its sorted
    rows over (a shard's rows held at a time, never the whole list): on the shared query
    database for a small tree (BOUNDED_FROM), else on a database of its own under
    WORKLIST_MEMORY, where the rows are a table first and sorted from it."""

    def write(con: duckdb.DuckDBPyConnection) -> int:
        reader = con.sql(f"SELECT * FROM ({sql}) ORDER BY dev, ino").to_arrow_reader(WORKLIST_BATCH)
        return _write_shards(store, op_dir, pass_name, reader, shard_files, shard_bytes)

    def write_from_table(con: duckdb.DuckDBPyConnection) -> int:
        # One statement held its joins' tables and the CTE read twice pinned while it sorted:
        # at a million files it failed under WORKLIST_MEMORY now and then (3 runs of 20), and
        # ran again without a limit, +450 MiB at the prefix stage's peak. A table spills.
        con.execute(f"CREATE OR REPLACE TEMP TABLE worklist AS {sql}")
        reader = con.sql("SELECT * FROM worklist ORDER BY dev, ino").to_arrow_reader(WORKLIST_BATCH)
        return _write_shards(store, op_dir, pass_name, reader, shard_files, shard_bytes)

    if _scanned(store, op_dir) < BOUNDED_FROM:
        with connect(store) as con:
            shards = write(con)
    else:
        shards = _bounded(store, pass_name, write_from_table)
    manifests.mark_done(store, op_dir, inputs_dir(pass_name), {"shards": shards, "rows": ROWS})
    return shards


def _scan_unchanged(store: DataStore, op_dir: str, prev_dir: str) -> bool:
    """Whether this operation's scan shards are the previous one's, byte for byte: the same
    entries with the same lstat fields (path, size, mtime_ns, dev, ino...) in the same order
    make the same Parquet bytes, so every file is unchanged as _cache_join means it."""
    mine = manifests.shard_paths(store, op_dir, "scan")
    theirs = manifests.shard_paths(store, prev_dir, "scan")
    if len(mine) != len(theirs):
        return False
    return all(
        store.read_bytes(a) == store.read_bytes(b) for a, b in zip(mine, theirs, strict=True)
    )


def _all_cached(store: DataStore, op_dir: str, shards: int) -> bool:
    """Whether every prefix digest of this operation was reused (none read, none failed)."""
    for index in range(shards):
        path = manifests.shard_path(op_dir, PREFIX, index)
        if not store.exists(path):
            return False
        done = manifests.read_table(store, path, ["cached", "error"])
        if done["error"].null_count != done.num_rows or not pc.all(done["cached"]).as_py():
            return False
    return True


def _copied(
    store: DataStore,
    op_dir: str,
    prev_dir: str,
    pass_name: str,
    shard_files: int,
    shard_bytes: int | None,
) -> int | None:
    """The previous operation's work list of `pass_name`, its digests as `cached` (null where
    its read failed: read again), when its rows are bound to be this one's (the caller knows
    why) and that list was made by these rules and hashed whole; its shard count, else None."""
    done = manifests.done_info(store, prev_dir, inputs_dir(pass_name))
    if done is None or done.get("rows") != ROWS:
        return None
    n = int(done["shards"])
    results = [manifests.shard_path(prev_dir, pass_name, i) for i in range(n)]
    if not all(store.exists(path) for path in results):
        return None
    lists = [manifests.shard_path(prev_dir, inputs_dir(pass_name), i) for i in range(n)]
    rows = pa.concat_tables([manifests.read_table(store, path) for path in lists])
    digests = pa.concat_tables([manifests.read_table(store, path) for path in results])
    digests = digests.take(pc.sort_indices(digests, [("dev", "ascending"), ("ino", "ascending")]))
    if not (rows["dev"].equals(digests["dev"]) and rows["ino"].equals(digests["ino"])):
        return None  # not one digest per row, in the list's order (dev, ino)
    ok = pc.is_null(digests["error"])  # a failed read is read again, as _cache_join does
    cached = pc.if_else(ok, digests["digest"], pa.scalar(None, pa.binary()))
    rows = rows.set_column(rows.schema.get_field_index("cached"), "cached", cached)
    batches = rows.cast(manifests.HASH_INPUT).to_batches(WORKLIST_BATCH)
    shards = _write_shards(store, op_dir, pass_name, batches, shard_files, shard_bytes)
    info = {"shards": shards, "rows": ROWS, "copied_from": prev_dir}
    manifests.mark_done(store, op_dir, inputs_dir(pass_name), info)
    return shards


def _bounded(
    store: DataStore, pass_name: str, write: Callable[[duckdb.DuckDBPyConnection], int]
) -> int:
    """`write` on a database of its own under WORKLIST_MEMORY, spilling; a step that cannot
    spill and outgrows it runs again without the limit (rewriting the same shards)."""
    with workspace(store) as con, tempfile.TemporaryDirectory(prefix="fileorg-worklist-") as spill:
        con.execute(f"SET memory_limit = '{WORKLIST_MEMORY}'")
        con.execute("SET temp_directory = $dir", {"dir": spill})
        con.execute("SET threads = 1")  # each thread's sort and hash table is memory too
        con.execute("SET preserve_insertion_order = false")  # the list's ORDER BY orders it
        try:
            return write(con)
        except duckdb.OutOfMemoryException:
            log.warning("%s work list: DuckDB needed more than %s", pass_name, WORKLIST_MEMORY)
            con.execute("RESET memory_limit")
            con.execute("RESET threads")
            return write(con)


def _scanned(store: DataStore, op_dir: str) -> int:
    """The scan's entries, from its done marker; unknown counts as large (bounded)."""
    done = manifests.done_info(store, op_dir, "scan")
    return int(done.get("entries", BOUNDED_FROM)) if done is not None else BOUNDED_FROM


def _write_shards(
    store: DataStore,
    op_dir: str,
    pass_name: str,
    batches: Iterable[pa.RecordBatch],
    shard_files: int,
    shard_bytes: int | None,
) -> int:
    """Shards of a work list, in its order, cut as tasks.pool.cut_ranges cuts a whole list:
    a shard ends after `shard_files` rows, or once its bytes still to read reach
    `shard_bytes`. An empty list is one empty shard, so queries need no special case."""
    pending: list[pa.Table] = []
    rows = weight = shards = 0
    for batch in batches:
        table = pa.Table.from_batches([batch]).cast(manifests.HASH_INPUT)
        start = 0
        for end in _ends(table, shard_files, shard_bytes, rows, weight):
            pending.append(table.slice(start, end - start))
            _write_shard(store, op_dir, pass_name, shards, pending)
            pending, rows, weight, shards, start = [], 0, 0, shards + 1, end
        if start < table.num_rows:
            rest = table.slice(start)
            pending.append(rest)
            rows += rest.num_rows
            weight += sum(_to_read(rest)) if shard_bytes is not None else 0
    if pending or shards == 0:
        _write_shard(store, op_dir, pass_name, shards, pending)
        shards += 1
    return shards


def _write_shard(
    store: DataStore, op_dir: str, pass_name: str, index: int, parts: list[pa.Table]
) -> None:
    table = pa.concat_tables(parts) if parts else manifests.HASH_INPUT.empty_table()
    manifests.write_table(store, manifests.shard_path(op_dir, inputs_dir(pass_name), index), table)


def _ends(
    table: pa.Table, shard_files: int, shard_bytes: int | None, rows: int, weight: int
) -> list[int]:
    """The ends (exclusive) of the shards that end within `table`, the shard in progress
    holding `rows` rows and `weight` bytes to read before it."""
    if shard_bytes is None:
        return list(range(shard_files - rows, table.num_rows + 1, shard_files))
    ends: list[int] = []
    for i, size in enumerate(_to_read(table)):
        rows, weight = rows + 1, weight + size
        if rows >= shard_files or weight >= shard_bytes:
            ends.append(i + 1)
            rows = weight = 0
    return ends


def _to_read(table: pa.Table) -> list[int]:
    """Each row's bytes still to read: its size, or 0 where a digest is cached."""
    sizes = pc.if_else(pc.is_null(table.column("cached")), table.column("size"), 0)
    return [int(size) for size in sizes.to_pylist()]
