"""What the planner reads, as a DuckDB table `facts` (one row per scanned entry, the columns of
FileFacts), its fingerprint computed by DuckDB, and FileFacts made from it a batch at a time.

Two rules of what is left alone need more than one entry, so they are facts here, where both
planners (the reference and the columnar one) read them, rather than rules of either: a file
a later stage could not read (its prefix, hash or head: `unreadable`, the scan having marked
those its permission bits deny already), and a file a symlink in the root points
at (`link-target`: moved, the link would dangle). tasks.links resolves the symlinks; the
files they name are found by a join.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import blake3
import duckdb
import pyarrow as pa

from storage import manifests
from storage.locations import DataStore
from storage.queries import has_shards, source
from storage.queries.connection import SCAN_ADDED, with_columns
from tasks.links import named_entries, scanned_links
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
        ("mode", pa.int64()),
        ("owner", pa.string()),
    ]
)
_FIELDS = tuple(FACTS.names)
BATCH_ROWS = 50_000


def load_stage_facts(
    con: duckdb.DuckDBPyConnection,
    store: DataStore,
    op_dir: str,
    include_empty: bool,
    roots: tuple[bytes, ...] = (),
) -> None:
    """The table `facts` from the scan, classify and hash shards, as FileFacts would hold them
    (the defaults for what classify left empty; the empty digest for empty files, if asked),
    and what is left alone as unread or a link's target (module docstring). `roots` are the
    absolute paths of a local root (as given, and resolved) an absolute link target can name.
    A file's owner is "uid:gid", null where the scan recorded none (an object, an older scan)."""
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
               s.left_alone, s.rule, coalesce(s.mode, 0) & 4095 AS mode,
               s.uid::VARCHAR || ':' || s.gid::VARCHAR AS owner
        FROM {with_columns(store, op_dir, "scan", SCAN_ADDED)} s
        LEFT JOIN {source(store, op_dir, "classify")} c ON c.path = s.path
        LEFT JOIN (
            SELECT dev, ino, any_value(digest) AS digest FROM {source(store, op_dir, "hash")}
            WHERE error IS NULL GROUP BY dev, ino
        ) h ON h.dev = s.dev AND h.ino = s.ino AND s.kind = 'file'
        """,
        {"empty_digest": manifests.EMPTY_DIGEST},
    )
    _leave_unread(con, store, op_dir)
    _leave_link_targets(con, store, op_dir, roots)


# A read error that says the file changed, not that it cannot be read: apply re-checks it.
_CHANGED = "changed since scan"


def _leave_unread(con: duckdb.DuckDBPyConnection, store: DataStore, op_dir: str) -> None:
    """Files a later stage failed to read are left alone, `unreadable`, with its error."""
    reads = [
        f"""SELECT s.path, h.error FROM {source(store, op_dir, stage)} h
            JOIN {source(store, op_dir, "scan")} s ON s.dev = h.dev AND s.ino = h.ino"""
        for stage in ("prefix", "hash")
        if has_shards(store, op_dir, stage)
    ]
    if has_shards(store, op_dir, "classify"):
        reads.append(f"SELECT path, error FROM {source(store, op_dir, 'classify')}")
    if not reads:
        return
    union = " UNION ALL ".join(f"({sql})" for sql in reads)
    con.execute(
        f"""
        UPDATE facts SET left_alone = 'unreadable', rule = e.error, digest = NULL
        FROM (SELECT path, min(error) AS error FROM ({union})
              WHERE error IS NOT NULL AND error <> $changed GROUP BY path) e
        WHERE facts.path = e.path AND facts.kind = 'file' AND facts.left_alone IS NULL
        """,
        {"changed": _CHANGED},
    )


def _leave_link_targets(
    con: duckdb.DuckDBPyConnection, store: DataStore, op_dir: str, roots: tuple[bytes, ...]
) -> None:
    """A file a symlink in the root points at is left alone, `link-target`, naming the link,
    so that apply never leaves a link dangling. A link to a folder keeps working while the
    folder is there (the files in it may move; paths through the link change as any path)."""
    targets = named_entries(scanned_links(con, store, op_dir), roots)
    if not targets:
        return
    shown = [link.decode("utf-8", "backslashreplace") for link in targets.values()]
    table = pa.table(
        {"target": list(targets), "link": shown},
        schema=pa.schema([("target", pa.binary()), ("link", pa.string())]),
    )
    con.register("link_targets", table)
    con.execute(
        """
        UPDATE facts SET left_alone = 'link-target', rule = 'by ' || t.link, digest = NULL
        FROM (SELECT target AS path, min(link) AS link FROM link_targets GROUP BY target) t
        WHERE facts.path = t.path AND facts.kind = 'file' AND facts.left_alone IS NULL
        """
    )
    con.unregister("link_targets")


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
