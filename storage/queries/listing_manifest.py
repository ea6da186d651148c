"""The listing manifest: an operation's files, plan and duplicate groups joined and sorted once,
when planning ends, so that a page of a million rows is a read of one row group.

    listing/files-{path,size,date,name}.parquet   the files (scan joined with classify), one
                                                  copy per sort, in that sort's order
    listing/plan.parquet                          the plan's rows with their journal key, by src
    listing/duplicates.parquet                    duplicate groups, largest waste first
    listing/_SUCCESS                              written last: the build's id and row counts

Each row carries `r`, its position in the file's order, and the files also `r_desc`, their
position in the descending order (nulls stay last and ties stay by path, so it is not `r`
reversed): a page is the rows whose position lies in a range, which the row groups' min/max
statistics find without reading the others. Every stage the manifest reads is final once
written (a stage writes its shards once; the plan once it is marked done), so a build is never
stale; the files are written whole (DataStore.write_file) and `_SUCCESS` after them, so a
build interrupted by a crash is built again, and readers fall back to the shards until then.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from pathlib import Path
from typing import Any

import duckdb

from storage.locations import DataStore
from storage.queries.connection import has_shards, workspace
from storage.queries.duplicates import duplicate_query
from storage.queries.keyset import Order
from storage.queries.listings import FILE_SORTS, file_query, plan_items

VERSION = 1
FOLDER = "listing"
DONE = "_SUCCESS"
ROW_GROUP_ROWS = 10_000  # a page reads one or two row groups of this many rows
# Past it the sorts spill to a temporary folder: at 256 MB they spilled, several times slower.
# It is the run's peak at a million files (the build takes about this plus 140 MB): 384 MB
# took ~125 MiB off it, for a slower build; 192 MB another ~190, at +35 % of its CPU, not kept
# with the plan's 128 MB (bench/README.md, the million files' memory, the third part).
BUILD_MEMORY = "384MB"

FILE_KINDS = {"path": "bytes", "size": "int", "date": "time", "name": "str"}
PLAN_COLUMNS = (
    "src, dst, action, reason, reason_code, size, category, year, link_to, kind, unit, twin,"
    " date_source, seq"
)
PLAN_ORDER = Order("src", "bytes")  # a plan has one row per entry: src is unique
DUPLICATE_ORDER = Order(
    "wasted_bytes", "int", descending=True, tiebreak="digest", tiebreak_kind="str"
)


def file_order(sort: str, descending: bool) -> Order:
    """The files' order for a sort of FILE_SORTS: its column, then the path (unique)."""
    column = FILE_SORTS.get(sort)
    if column is None:
        raise ValueError(f"unknown sort {sort!r}: use {', '.join(FILE_SORTS)}")
    if column == "path":
        return Order("path", "bytes", descending)
    return Order(column, FILE_KINDS[sort], descending, tiebreak="path")


def manifest_path(store: DataStore, op_dir: str, name: str) -> str:
    """The name DuckDB reads one of the manifest's files by."""
    return store.duckdb_path(f"{op_dir}/{FOLDER}/{name}")


def info(store: DataStore, op_dir: str) -> dict[str, Any] | None:
    """The finished build's id and row counts (None for a part whose stage has no shards), or
    None when there is no finished build."""
    done = f"{op_dir}/{FOLDER}/{DONE}"
    try:
        found: dict[str, Any] = json.loads(store.read_bytes(done))
    except FileNotFoundError:
        return None
    return found if found.get("version") == VERSION else None


def build(
    store: DataStore, op_dir: str, include_empty: bool, same_as: str | None = None
) -> dict[str, Any]:
    """Build the listing manifest of a planned operation, unless it is built already.

    `same_as`: an operation whose every input of the manifest is known equal to this one's
    (its plan was reused: the plan's fingerprint covers every scanned, classified and hashed
    field the files and duplicates read, and the plan shards are copies): its finished
    manifest is copied instead of built (a re-scan of an unchanged tree spent 44 % of its time
    building it again)."""
    done = info(store, op_dir)
    if done is not None:
        return done
    if same_as is not None:
        copied = _copy_from(store, op_dir, same_as, include_empty)
        if copied is not None:
            return copied
    built: dict[str, Any] = {"version": VERSION, "build": uuid.uuid4().hex}
    built["include_empty"] = include_empty
    with workspace(store) as con, tempfile.TemporaryDirectory(prefix="fileorg-listing-") as work:
        con.execute(f"SET memory_limit = '{BUILD_MEMORY}'")
        con.execute("SET temp_directory = $dir", {"dir": f"{work}/spill"})
        writer = _Writer(con, store, op_dir, Path(work))
        built["files"] = _files(writer) if has_shards(store, op_dir, "classify") else None
        built["plan"] = _plan(writer) if has_shards(store, op_dir, "plan") else None
        built["duplicates"] = _duplicates(writer, include_empty)
    store.write_bytes(f"{op_dir}/{FOLDER}/{DONE}", json.dumps(built).encode())
    return built


def _copy_from(
    store: DataStore, op_dir: str, operation_id: str, include_empty: bool
) -> dict[str, Any] | None:
    """The manifest of `operation_id` (beside `op_dir`) copied, `_SUCCESS` last with a build
    id of its own (a cursor names the build it was made on); None when that one is not
    finished or was built for another `include_empty`."""
    source_dir = f"{op_dir.rsplit('/', 1)[0]}/{operation_id}"
    found = info(store, source_dir)
    if found is None or found.get("include_empty") != include_empty:
        return None
    for path in store.glob(f"{source_dir}/{FOLDER}/*.parquet"):
        name = path.rsplit("/", 1)[-1]
        store.write_bytes(f"{op_dir}/{FOLDER}/{name}", store.read_bytes(path))
    built = {**found, "build": uuid.uuid4().hex, "copied_from": operation_id}
    store.write_bytes(f"{op_dir}/{FOLDER}/{DONE}", json.dumps(built).encode())
    return built


class _Writer:
    """Writes a query's rows, in their order, as one of the manifest's files."""

    def __init__(self, con: duckdb.DuckDBPyConnection, store: DataStore, op_dir: str, work: Path):
        self.con, self.store, self.op_dir, self.work = con, store, op_dir, work

    def write(self, name: str, sql: str, *same: str) -> None:
        """The rows as `name`, and as each of `same` (files with the same rows)."""
        local = self.work / name
        options = f"FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {ROW_GROUP_ROWS}"
        quoted = str(local).replace("'", "''")
        self.con.execute(f"COPY ({sql}) TO '{quoted}' ({options})")
        for each in (name, *same):
            self.store.write_file(f"{self.op_dir}/{FOLDER}/{each}", local)
        local.unlink()


def _positioned(
    con: duckdb.DuckDBPyConnection, table: str, order: Order, descending: Order | None = None
) -> str:
    """The table's rows in `order`, with `r` (and `r_desc`: the position in `descending`):
    one sort of the whole rows, `r` counted as they stream out of it. `r_desc` by arithmetic
    on `r` and the sort key alone: a sort of the paths is its own reverse; for a key with a
    tiebreak, the descending order puts the key's groups in reverse order, nulls last, each
    group by path as before, so a row's `r_desc` is `r` less its group's first position `f`
    plus the rows of the groups after it: `nonnull - c - 2f + r` for a group of `c` rows
    (the key's positions alone sorted, grouped, and zipped to the rows: POSITIONAL JOIN)."""
    ranked = (
        f"SELECT *, (row_number() OVER () - 1)::INTEGER AS r"
        f" FROM (SELECT * FROM {table} ORDER BY {order.sql()})"
    )
    if descending is None:
        return ranked
    if descending.tiebreak is None:  # a unique key without nulls (the path)
        last = _count(con, table) - 1
        return f"SELECT *, ({last} - r)::INTEGER AS r_desc FROM ({ranked})"
    key = order.key
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE keys AS SELECT k, (row_number() OVER () - 1)::INTEGER AS r
        FROM (SELECT {key} AS k FROM {table} ORDER BY {order.sql()})
    """)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE key_groups AS
        SELECT k, min(r) AS f, count(*) AS c FROM keys WHERE k IS NOT NULL GROUP BY k
    """)
    counted = con.execute("SELECT count(k) FROM keys").fetchone()
    nonnull = int(counted[0]) if counted else 0
    desc = (
        f"SELECT CASE WHEN k IS NULL THEN r ELSE {nonnull} - c - 2 * f + r END::INTEGER AS r_desc"
        " FROM keys LEFT JOIN key_groups USING (k) ORDER BY r"
    )
    return f"SELECT * FROM ({ranked}) POSITIONAL JOIN ({desc})"


def _files(writer: _Writer) -> int:
    listed = file_query(writer.store, writer.op_dir)
    writer.con.execute(
        f"CREATE TEMP TABLE files AS SELECT *, lower(path_text) AS name_lower FROM ({listed.sql})"
    )
    # The name's order (path_text, then path) is the path's when every path is valid UTF-8, its
    # text its own bytes (both compared as bytes; no two such texts equal): one file for both.
    same = ("files-name.parquet",) if _texts_are_paths(writer.con) else ()
    for sort in FILE_SORTS:
        if sort != "name" or not same:
            sql = _positioned(writer.con, "files", file_order(sort, False), file_order(sort, True))
            writer.write(f"files-{sort}.parquet", sql, *(same if sort == "path" else ()))
    writer.con.execute("DROP TABLE IF EXISTS keys")
    writer.con.execute("DROP TABLE IF EXISTS key_groups")
    return _dropped(writer.con, "files")


def _texts_are_paths(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether every file's path_text is its path's bytes (encode: no escapes read)."""
    assert FILE_SORTS["name"] == "path_text"
    found = con.execute(
        "SELECT count(*) FROM files WHERE path_text IS NULL OR encode(path_text) <> path"
    ).fetchone()
    return found is not None and found[0] == 0


def _plan(writer: _Writer) -> int:
    items = plan_items(writer.store, writer.op_dir)
    writer.con.execute(f"CREATE TEMP TABLE plan AS SELECT {PLAN_COLUMNS} FROM {items}")
    writer.write("plan.parquet", _positioned(writer.con, "plan", PLAN_ORDER))
    return _dropped(writer.con, "plan")


def _duplicates(writer: _Writer, include_empty: bool) -> int:
    """Groups of equal content; none when nothing was hashed (no two files shared a size)."""
    store, op_dir = writer.store, writer.op_dir
    if has_shards(store, op_dir, "scan") and has_shards(store, op_dir, "hash"):
        groups = duplicate_query(store, op_dir, include_empty).sql
    else:
        groups = NO_GROUPS
    writer.con.execute(f"CREATE TEMP TABLE duplicates AS {groups}")
    writer.write("duplicates.parquet", _positioned(writer.con, "duplicates", DUPLICATE_ORDER))
    return _count(writer.con, "duplicates")


NO_GROUPS = """
    SELECT NULL::VARCHAR AS digest, NULL::BIGINT AS size, NULL::BIGINT AS copies,
           NULL::BIGINT AS wasted_bytes, NULL::BLOB[] AS paths, NULL::VARCHAR[] AS paths_text
    WHERE false
"""


def _dropped(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """The table's rows counted, then the table dropped: the next table's sorts get the
    memory it held (BUILD_MEMORY is for the whole build), instead of spilling beside it."""
    counted = _count(con, table)
    con.execute(f"DROP TABLE {table}")
    return counted


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    counted = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(counted[0]) if counted else 0
