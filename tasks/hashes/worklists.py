"""The work lists of the two hash passes: which files must be compared, cut into shards.

Each pass is planned once into `{pass}/_inputs/` so a resumed run hashes the same shards:

* prefix: one file per inode (hard links are one file) among sizes shared by two or more
  inodes: blake3 of the first 4 KiB;
* hash: inodes whose (size, prefix) is still shared: blake3 of the whole content. For files of
  at most 4 KiB the prefix digest already is the full digest and nothing is read again.

Digests of files unchanged since the last operation on the same root (same path, size,
mtime_ns and inode) are reused from that operation's manifests instead of being read.

Object-store roots go through the same work lists; only the reads differ (tasks.hashes.local,
tasks.hashes.objects).
"""

from __future__ import annotations

import pyarrow as pa

from storage import manifests
from storage.locations import DataStore
from storage.queries import connect, has_shards, source
from tasks.hashes import local as hashing
from tasks.hashes import objects as object_hash

PREFIX = "prefix"
FULL = "hash"
INPUTS = "_inputs"


def inputs_dir(pass_name: str) -> str:
    return f"{pass_name}/{INPUTS}"


def _cache_join(
    store: DataStore, prev_dir: str | None, pass_name: str, objects: bool = False
) -> tuple[str, str]:
    """SQL pieces reusing digests from the previous operation, or nothing.

    A file is unchanged when its path, size, mtime_ns and inode are. An object is unchanged
    when its path, size and ETag are: its ino is a hash of key and ETag (tasks.scan.objects),
    and a new LastModified alone (the same content uploaded again) does not change content.
    """
    if prev_dir is None or not has_shards(store, prev_dir, pass_name):
        return "NULL::BLOB", ""
    prev_scan = source(store, prev_dir, "scan")
    prev_hash = source(store, prev_dir, pass_name)
    same_time = "" if objects else "AND prev.mtime_ns = c.mtime_ns"
    join = f"""
        LEFT JOIN (
            SELECT s.path, s.size, s.mtime_ns, s.ino, h.digest
            FROM {prev_scan} s JOIN {prev_hash} h ON s.dev = h.dev AND s.ino = h.ino
            WHERE h.error IS NULL AND s.kind = 'file'
        ) prev ON prev.path = c.path AND prev.size = c.size
              AND prev.ino = c.ino {same_time}
    """
    return "prev.digest", join


def plan_prefix_inputs(
    store: DataStore, op_dir: str, prev_dir: str | None, shard_files: int, objects: bool = False
) -> int:
    """Write the prefix work list; return its number of shards (reusing an existing plan).

    `objects`: the root is an object-store root (the hash cache compares ETags, not times).
    """
    done = manifests.done_info(store, op_dir, inputs_dir(PREFIX))
    if done is not None:
        return int(done["shards"])
    cached, join = _cache_join(store, prev_dir, PREFIX, objects)
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
        SELECT c.dev, c.ino, c.size, c.mtime_ns, c.path, {cached} AS cached
        FROM c {join}
        ORDER BY c.dev, c.ino
    """
    with connect(store) as con:
        table = con.sql(sql).to_arrow_table()
    return _write_inputs(store, op_dir, PREFIX, table, _cut_by_files(table, shard_files))


def plan_full_inputs(
    store: DataStore,
    op_dir: str,
    prev_dir: str | None,
    shard_files: int,
    shard_bytes: int,
    objects: bool = False,
) -> int:
    done = manifests.done_info(store, op_dir, inputs_dir(FULL))
    if done is not None:
        return int(done["shards"])
    cached, join = _cache_join(store, prev_dir, FULL, objects)
    # Up to this size the prefix pass already hashed the whole content.
    small = hashing.PREFIX_BYTES
    if objects:
        small = max(small, object_hash.WHOLE_OBJECT_BYTES)
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
    cuts = _cut_by_bytes(table, shard_files, shard_bytes)
    return _write_inputs(store, op_dir, FULL, table, cuts)


def _cut_by_files(table: pa.Table, shard_files: int) -> list[tuple[int, int]]:
    n = table.num_rows
    return [(a, min(a + shard_files, n)) for a in range(0, n, shard_files)]


def _cut_by_bytes(table: pa.Table, shard_files: int, shard_bytes: int) -> list[tuple[int, int]]:
    sizes = table.column("size").to_pylist()
    cached = table.column("cached").is_null().to_pylist()
    cuts, start, nbytes = [], 0, 0
    for i, (size, to_read) in enumerate(zip(sizes, cached, strict=True)):
        nbytes += size if to_read else 0
        if i + 1 - start >= shard_files or nbytes >= shard_bytes:
            cuts.append((start, i + 1))
            start, nbytes = i + 1, 0
    if start < len(sizes):
        cuts.append((start, len(sizes)))
    return cuts


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
