"""What the planner reads, as a DuckDB table `facts` (one row per scanned entry, the columns of
FileFacts), its fingerprint computed by DuckDB, and FileFacts made from it a batch at a time."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import blake3
import duckdb
import pyarrow as pa

from storage import manifests
from storage.locations import DataStore
from storage.queries import source
from tasks.plan.planner import FileFacts

FACTS = pa.schema(
    [
        ("path", pa.binary()),
        ("kind", pa.string()),
        ("size", pa.int64()),
        ("mtime_ns", pa.int64()),
        ("dev", pa.uint64()),
        ("ino", pa.uint64()),
        ("category", pa.string()),
        ("ext", pa.string()),
        ("date", pa.timestamp("us")),
        ("digest", pa.binary()),
        ("error", pa.string()),
        ("date_source", pa.string()),
        ("artist", pa.string()),
        ("album", pa.string()),
        ("left_alone", pa.string()),
        ("rule", pa.string()),
    ]
)
_FIELDS = tuple(FACTS.names)
BATCH_ROWS = 50_000


def load_stage_facts(
    con: duckdb.DuckDBPyConnection, store: DataStore, op_dir: str, include_empty: bool
) -> None:
    """The table `facts` from the scan, classify and hash shards, as FileFacts would hold them
    (the defaults for what classify left empty; the empty digest for empty files, if asked)."""
    empty = "TRUE" if include_empty else "FALSE"
    con.execute(
        f"""
        CREATE TABLE facts AS
        SELECT s.path, s.kind, s.size, s.mtime_ns, s.dev::UBIGINT AS dev, s.ino::UBIGINT AS ino,
               coalesce(c.category, 'other') AS category, coalesce(c.ext, '') AS ext,
               c.date::TIMESTAMP AS date,
               CASE WHEN h.digest IS NULL AND {empty} AND s.kind = 'file' AND s.size = 0
                         AND s.left_alone IS NULL THEN $empty_digest
                    ELSE h.digest END AS digest,
               s.error, coalesce(c.date_source, '') AS date_source, c.artist, c.album,
               s.left_alone, s.rule
        FROM {source(store, op_dir, "scan")} s
        LEFT JOIN {source(store, op_dir, "classify")} c ON c.path = s.path
        LEFT JOIN (
            SELECT dev, ino, any_value(digest) AS digest FROM {source(store, op_dir, "hash")}
            WHERE error IS NULL GROUP BY dev, ino
        ) h ON h.dev = s.dev AND h.ino = s.ino AND s.kind = 'file'
        """,
        {"empty_digest": manifests.EMPTY_DIGEST},
    )


def facts_table(files: Iterable[FileFacts]) -> pa.Table:
    """FileFacts as the rows of `facts` (tests plan a list of them through DuckDB)."""
    rows = [[getattr(f, name) for name in _FIELDS] for f in files]
    columns = {name: [r[i] for r in rows] for i, name in enumerate(_FIELDS)}
    return pa.Table.from_pydict(columns, schema=FACTS)


def stream_facts(
    con: duckdb.DuckDBPyConnection, sql: str, params: object = None
) -> Iterator[list[FileFacts]]:
    """FileFacts for the rows of `sql` (which selects facts' columns), a batch at a time."""
    # A cursor of its own: the caller may write to other tables between batches.
    reader = con.cursor().sql(sql, params=params).to_arrow_reader(BATCH_ROWS)
    for batch in reader:
        columns = [batch.column(name).to_pylist() for name in _FIELDS]
        yield [FileFacts(*values) for values in zip(*columns, strict=True)]


def fingerprint(con: duckdb.DuckDBPyConnection, header: bytes) -> str:
    """`header` (the options, the planner's version, the root's device) and every row of
    `facts`: equal fingerprints give equal plans. DuckDB hashes each row (paths are unique, so
    the rows' order does not count) into two 64-bit sums and a xor; Python hashes those."""
    row = ", ".join(_FIELDS)
    sql = f"""
        SELECT count(*), bit_xor(hash({row})), sum(hash({row})::HUGEINT),
               sum(hash('salt', {row})::HUGEINT)
        FROM facts
    """
    hasher = blake3.blake3(header)
    hasher.update(repr(con.execute(sql).fetchall()).encode())
    return hasher.hexdigest()
