"""The work lists of the two hash passes: which files must be compared, cut into shards.

Each pass is planned once into `{pass}/_inputs/` so a resumed run hashes the same shards:

* prefix: one file per inode (hard links are one file) among sizes shared by two or more
  inodes: blake3 of the first 4 KiB;
* hash: inodes whose (size, prefix) is still shared: blake3 of the whole content. For files of
  at most 4 KiB the prefix digest already is the full digest and nothing is read again.

Digests of files unchanged since the last operation on the same root (same path, size,
mtime_ns and inode) are reused from that operation's manifests instead of being read, and so
are the prefix digests the classify stage took of the heads it read anyway (its `prefix`
column): one read per file.

Object-store roots go through the same work lists; only the reads differ (tasks.hashes.local,
tasks.hashes.objects).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from storage import manifests
from storage.locations import DataStore
from storage.queries import connect, has_shards, source
from storage.queries.connection import columns
from tasks import pool
from tasks.hashes.local import PREFIX_BYTES

if TYPE_CHECKING:
    from tasks.backends import RootBackend

PREFIX = "prefix"
FULL = "hash"
INPUTS = "_inputs"


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
        ORDER BY c.dev, c.ino
    """
    with connect(store) as con:
        table = con.sql(sql).to_arrow_table()
    return _write_inputs(store, op_dir, PREFIX, table, _cut(table, shard_files, None))


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
        ORDER BY c.dev, c.ino
    """
    with connect(store) as con:
        table = con.sql(sql).to_arrow_table()
    cuts = _cut(table, shard_files, shard_bytes)
    return _write_inputs(store, op_dir, FULL, table, cuts)


def _cut(table: pa.Table, shard_files: int, shard_bytes: int | None) -> list[tuple[int, int]]:
    """Shards of a work list: by files, and by the bytes still to read (a cached digest
    costs no read)."""
    if shard_bytes is None:
        return pool.cut_ranges([0] * table.num_rows, shard_files)
    sizes = table.column("size").to_pylist()
    to_read = table.column("cached").is_null().to_pylist()
    weights = [size if read else 0 for size, read in zip(sizes, to_read, strict=True)]
    return pool.cut_ranges(weights, shard_files, shard_bytes)


def _write_inputs(
    store: DataStore, op_dir: str, pass_name: str, table: pa.Table, cuts: list[tuple[int, int]]
) -> int:
    table = table.cast(manifests.HASH_INPUT)
    if not cuts:
        # One empty shard keeps "the pass has shards" true, so queries need no special case.
        cuts = [(0, 0)]
    for index, (a, b) in enumerate(cuts):
        path = manifests.shard_path(op_dir, inputs_dir(pass_name), index)
        manifests.write_table(store, path, table.slice(a, b - a))
    manifests.mark_done(store, op_dir, inputs_dir(pass_name), {"shards": len(cuts)})
    return len(cuts)
