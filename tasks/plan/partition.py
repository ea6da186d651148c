"""The plan of a whole tree in parts, equal row for row to tasks.plan.planner.plan_moves.

Three parts, none holding a FileFacts per entry of the tree at once:
- entries not organized as files (symlinks, what is left alone, --keep-subfolders): decided
  one batch at a time by the planner's own sorting, with the units of the whole scan;
- the fast path (tasks.plan.fast, tasks.plan.copies): plain files nothing else touches, their
  name clashes and duplicate groups included, decided in DuckDB;
- the residual (sidecars, albums, projects, non-ASCII names, and the clash and duplicate
  groups those touch): the pure planner itself, given only those files and the scanned paths
  it asks about.

The residual planner sees the paths of the scan it needs, not all of them, and not the fast
rows' destinations. Whatever it claims is checked afterwards in DuckDB: a claim at, above or
under a scanned path it was not shown loads that path and plans the residual again; a claim
that touches a fast row's destination moves that row into the residual, and plans again. When
nothing is touched, every question the residual asked had the answer the whole plan would give.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import duckdb
import pyarrow as pa

from storage import manifests
from storage.leave_alone import (
    DATA_MARKERS,
    JUNK_NAMES,
    PROJECT_FILES,
    PROJECT_SUFFIXES,
    TOOL_MARKERS,
    VCS_MARKERS,
)
from tasks.plan import fast
from tasks.plan.facts import stream_facts
from tasks.plan.names import Names, key
from tasks.plan.planner import FileFacts, PlannedMove, PlanPolicy, _Planner
from tasks.plan.units import UnitIndex


class _Entry:
    """A path for UnitIndex: one per folder, and the marker files (units_by_markers)."""

    __slots__ = ("kind", "left_alone", "path", "rule")

    def __init__(self, path: bytes, kind: str, left_alone: str | None, rule: str | None):
        self.path, self.kind, self.left_alone, self.rule = path, kind, left_alone, rule


def _sql_list(values: Iterable[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in sorted(values))


def unit_index(con: duckdb.DuckDBPyConnection, policy: PlanPolicy) -> UnitIndex:
    """The units of the whole scan, from one path per folder, the folder rows and the paths
    whose name may be a marker (is_marker decides, in UnitIndex)."""
    names = [*PROJECT_FILES, *VCS_MARKERS, *TOOL_MARKERS, *DATA_MARKERS]
    # A suffix (no '/' in it) ends the name when it ends the path: DuckDB would compute the
    # name once for each suffix tested.
    suffixes = " OR ".join(f"suffix(path::VARCHAR, '{s}')" for s in PROJECT_SUFFIXES)
    sql = f"""
        SELECT min(path), 'file', NULL, NULL FROM facts GROUP BY {fast.parent("path::VARCHAR")}
        UNION ALL
        SELECT path, kind, left_alone, rule FROM facts WHERE kind = 'dir'
        UNION ALL
        SELECT path, 'file', NULL, NULL FROM facts WHERE kind <> 'dir'
            AND ({fast.base_name("path::VARCHAR")} IN ({_sql_list(names)}) OR {suffixes})
    """
    entries = [_Entry(*row) for row in con.execute(sql).fetchall()]
    return UnitIndex(entries, policy.include_hidden, policy.exclude)


def _insert(con: duckdb.DuckDBPyConnection, table: str, rows: pa.Table) -> None:
    con.register("rows_arrow", rows)
    con.execute(f"INSERT INTO {table} SELECT * FROM rows_arrow")
    con.unregister("rows_arrow")


def plan_table(moves: Sequence[PlannedMove]) -> pa.Table:
    """PlannedMoves as plan rows (reasons as valid UTF-8: Parquet strings must be)."""
    columns = {name: [getattr(m, name) for m in moves] for name in manifests.PLAN.names}
    columns["reason"] = [_display_text(r) for r in columns["reason"]]
    return pa.Table.from_pydict(columns, schema=manifests.PLAN)


def _display_text(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


_CANDIDATES = pa.schema([("path", pa.binary()), ("project", pa.bool_())])


def sort_out(
    con: duckdb.DuckDBPyConnection, policy: PlanPolicy, root_dev: int | None, units: UnitIndex
) -> None:
    """`decided`: the rows of every entry not organized as a file; `cand`: the others (and the
    projects that move whole), by path. Plain files in folders no unit holds, under names no
    rule takes, are candidates at once; the planner sorts out the rest, a batch at a time."""
    con.execute("CREATE OR REPLACE TABLE cand (path BLOB, project BOOLEAN)")
    if not policy.exclude:
        _free_dirs(con, units)
        junk = _sql_list(n for n in JUNK_NAMES if n.isprintable())
        top = "AND NOT contains(path::VARCHAR, '/')" if policy.keep_subfolders else ""
        con.execute(f"""
            INSERT INTO cand SELECT path, FALSE FROM (
                SELECT path, {fast.base_name("path::VARCHAR")} AS name FROM facts
                WHERE kind = 'file' AND left_alone IS NULL {top}
                  AND {fast.parent("path::VARCHAR")} IN (SELECT dir FROM free)
            ) WHERE {fast.plain("name")} AND NOT starts_with(name, '.')
                AND lower(name) NOT IN ({junk})
        """)
    nobody: Names[FileFacts] = Names(())
    rest = "SELECT * FROM facts WHERE path NOT IN (SELECT path FROM cand)"
    for batch in stream_facts(con, rest):
        planner = _Planner(batch, policy, root_dev, names=nobody, units=units)
        candidates, projects = planner._sort_out()
        _insert(con, "decided", plan_table(list(planner.plan.values())))
        paths = [f.path for f in candidates] + [f.path for f, _ in projects]
        flags = [False] * len(candidates) + [True] * len(projects)
        _insert(con, "cand", pa.table({"path": paths, "project": flags}, schema=_CANDIDATES))


def _free_dirs(con: duckdb.DuckDBPyConnection, units: UnitIndex) -> None:
    """`free`: the folders (as DuckDB shows their paths) that no unit holds."""
    rows = con.execute(
        f"SELECT {fast.parent('path::VARCHAR')} AS dir, min(path) FROM facts GROUP BY dir"
    ).fetchall()
    free = [d for d, sample in rows if units.folder(sample.rpartition(b"/")[0]) is None]
    con.register("free_arrow", pa.table({"dir": free}, schema=pa.schema([("dir", pa.string())])))
    con.execute("CREATE OR REPLACE TABLE free AS SELECT * FROM free_arrow")
    con.unregister("free_arrow")


def existing_keys(con: duckdb.DuckDBPyConnection) -> set[str]:
    """`ek`: every scanned path with its key as text (DuckDB's lower() for plain ASCII, Python's
    casefold for the rest, escaped by `text`); `ed`: every folder of those keys. Returns the
    folders as keys (names.key), for the residual's Names."""
    con.execute(f"""
        CREATE OR REPLACE TABLE ek AS SELECT path, lower(path::VARCHAR) AS key FROM facts
        WHERE {fast.plain("path::VARCHAR")}
    """)
    parents = con.execute(f"SELECT DISTINCT {fast.parent('key')} FROM ek").fetchall()
    folders = {a for (p,) in parents if p for a in fast.ancestors(p, inclusive=True)}
    sql = f"SELECT path FROM facts WHERE NOT ({fast.plain('path::VARCHAR')})"
    for batch in con.cursor().sql(sql).to_arrow_reader(50_000):
        paths = batch.column(0).to_pylist()
        keys = [key(p) for p in paths]
        folders.update(a for k in keys for a in fast.ancestors(k, inclusive=False))
        _insert(con, "ek", pa.table({"path": paths, "key": [text(k) for k in keys]}, _KEYS))
    _keys_table(con, "ed", (text(k) for k in folders))
    return folders


def text(k: str) -> str:
    """A key as valid text for DuckDB, one to one: backslashes doubled, then the bytes a
    non-UTF-8 name decoded to (surrogates) as \\xHH. Plain ASCII keys stay as they are."""
    escaped = k.replace("\\", "\\\\")
    return escaped.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


_KEYS = pa.schema([("path", pa.binary()), ("key", pa.string())])


def _keys_table(con: duckdb.DuckDBPyConnection, name: str, keys: Iterable[str]) -> None:
    con.register("keys_arrow", pa.table({"key": sorted(keys)}, schema=_ONE_KEY))
    con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM keys_arrow")
    con.unregister("keys_arrow")


class _Recording(Names[FileFacts]):
    """Names that know the scanned paths shown and every scanned folder, and note each claim."""

    def __init__(self, shown: Iterable[FileFacts], folders: set[str]) -> None:
        super().__init__(shown)
        self.dirs |= folders
        self.claimed: list[str] = []
        self.created: list[str] = []

    def claim(self, dst: bytes, who: FileFacts) -> None:
        super().claim(dst, who)
        self.claimed.append(key(dst))

    def claim_folder(self, folder: bytes) -> None:
        super().claim_folder(folder)
        self.created.append(key(folder))


# A key's folder: by string functions for an ASCII key (tasks.plan.fast.parent), by the regexp
# for the rest (DuckDB's reverse() takes a grapheme for one).
_PARENT = (
    f"CASE WHEN strlen(ek.key) = length(ek.key) THEN {fast.parent('ek.key')}"
    " ELSE regexp_extract(ek.key, '(?s)^(.*)/', 1) END"
)


def _plan_residual(
    con: duckdb.DuckDBPyConnection,
    policy: PlanPolicy,
    root_dev: int | None,
    units: UnitIndex,
    folders: set[str],
) -> tuple[list[PlannedMove], _Recording]:
    files = [f for batch in stream_facts(con, _RESIDUAL) for f in batch]
    shown = [f for batch in stream_facts(con, _SHOWN) for f in batch]
    names = _Recording([*files, *shown], folders)
    albums = {
        path.rpartition(b"/")[0]
        for (path,) in con.execute("SELECT path FROM busy WHERE album").fetchall()
    }
    moves = _Residual(files, policy, root_dev, names, units, albums).run()
    return moves, names


class _Residual(_Planner):
    """The planner on the residual's files: its album folders are those of the whole scan
    (`albums`, tasks.plan.fast._busy), which it is given whole; a folder it sees part of
    (two tracks of a folder of mostly other files) is not one."""

    def __init__(
        self,
        files: Sequence[FileFacts],
        policy: PlanPolicy,
        root_dev: int | None,
        names: Names[FileFacts],
        units: UnitIndex,
        albums: set[bytes],
    ) -> None:
        super().__init__(files, policy, root_dev, names=names, units=units)
        self.album_dirs = albums

    def _find_albums(self, candidates: list[FileFacts]) -> None:
        held = [f for f in candidates if f.path.rpartition(b"/")[0] in self.album_dirs]
        super()._find_albums(held)


_RESIDUAL = "SELECT * FROM facts WHERE path IN (SELECT path FROM res)"
_SHOWN = f"""
    SELECT facts.* FROM facts JOIN ek ON ek.path = facts.path
    WHERE facts.path NOT IN (SELECT path FROM res)
      AND (ek.key IN (SELECT key FROM shown) OR {_PARENT} IN (SELECT key FROM shown_dirs))
"""


def residual(
    con: duckdb.DuckDBPyConnection,
    policy: PlanPolicy,
    root_dev: int | None,
    units: UnitIndex,
    folders: set[str],
) -> list[PlannedMove]:
    """The residual planned until what it claims touches nothing it was not shown (module
    docstring). Each round shows it more (`shown` gains a key it lacked) or takes fast rows
    back (deleted from `fast`), and neither is ever undone, so the rounds end: at most one
    per scanned key plus one per fast row. No cap on them (and no fallback to the whole tree
    through the pure planner, which would hold a FileFacts per entry): a cap could only end
    the loop before the residual's answers are the whole plan's."""
    con.execute("""
        CREATE OR REPLACE TABLE res AS
        SELECT path FROM cand WHERE path NOT IN (SELECT path FROM fast)
    """)
    con.execute("""
        CREATE OR REPLACE TABLE shown AS
        SELECT DISTINCT key FROM ek WHERE path IN (SELECT path FROM res)
    """)
    # The folders the residual's files want first: what is there already is shown at once.
    con.execute("""
        CREATE OR REPLACE TABLE shown_dirs AS
        SELECT DISTINCT fkey AS key FROM wanted WHERE path IN (SELECT path FROM res)
    """)
    while True:
        moves, names = _plan_residual(con, policy, root_dev, units, folders)
        _keys_table(con, "claims", (text(k) for k in names.claimed))
        above = {a for k in names.claimed for a in fast.ancestors(k, inclusive=False)}
        above |= {a for k in names.created for a in fast.ancestors(k, inclusive=True)}
        _keys_table(con, "claimed_dirs", (text(k) for k in above))
        if not _show_more(con) and not _take_back(con):
            return moves


def _show_more(con: duckdb.DuckDBPyConnection) -> bool:
    """Scanned paths the residual claimed, or claimed under, without being shown them: shown
    next round (with the whole folder of a claimed one: its "name (n)" variants)."""
    hits = con.execute("""
        SELECT key, key IN (SELECT key FROM claims) FROM ek
        WHERE key NOT IN (SELECT key FROM shown)
          AND (key IN (SELECT key FROM claims) OR key IN (SELECT key FROM claimed_dirs))
    """).fetchall()
    if not hits:
        return False
    _insert(con, "shown", pa.table({"key": sorted({k for k, _ in hits})}, schema=_ONE_KEY))
    dirs = {k.rpartition("/")[0] for k, claimed in hits if claimed}
    _insert(con, "shown_dirs", pa.table({"key": sorted(dirs)}, schema=_ONE_KEY))
    return True


def _take_back(con: duckdb.DuckDBPyConnection) -> bool:
    """Fast rows the residual's claims touch, planned with the residual next round."""
    moved = fast.touched(con)
    if moved:
        _insert(con, "res", pa.table({"path": moved}, schema=pa.schema([("path", pa.binary())])))
        keys = con.execute(
            "SELECT DISTINCT key FROM ek WHERE path IN (SELECT path FROM res)"
            " AND key NOT IN (SELECT key FROM shown)"
        ).fetchall()
        _insert(con, "shown", pa.table({"key": [k for (k,) in keys]}, schema=_ONE_KEY))
    return bool(moved)


_ONE_KEY = pa.schema([("key", pa.string())])


def plan_parts(con: duckdb.DuckDBPyConnection, policy: PlanPolicy, root_dev: int | None) -> None:
    """The view `plan_rows`: every entry of `facts` planned, as plan_moves would (unordered)."""
    con.register("plan_empty", manifests.PLAN.empty_table())
    con.execute("CREATE OR REPLACE TABLE decided AS SELECT * FROM plan_empty")
    con.unregister("plan_empty")
    units = unit_index(con, policy)
    sort_out(con, policy, root_dev, units)
    folders = existing_keys(con)
    # Units a listing showed by their markers (no folder row): no fast row may claim in one.
    _keys_table(con, "units", (text(key(u)) for u in units.units if u))
    fast.fast_path(con, policy)
    _insert(con, "decided", plan_table(residual(con, policy, root_dev, units, folders)))
    for done in ("ek", "cand", "wanted"):  # a million rows each that the plan rows do not read
        con.execute(f"DROP TABLE {done}")
    con.execute(
        f"CREATE OR REPLACE VIEW plan_rows AS SELECT * FROM decided UNION ALL {fast.FAST_ROWS}"
    )


def plan_facts(
    files: Sequence[FileFacts], policy: PlanPolicy, root_dev: int | None = None
) -> list[dict[str, object]]:
    """plan_parts over a list of FileFacts, its rows in path order (for tests)."""
    from tasks.plan.facts import facts_table

    con = duckdb.connect()
    try:
        con.register("facts_arrow", facts_table(files))
        con.execute("CREATE TABLE facts AS SELECT * FROM facts_arrow")
        plan_parts(con, policy, root_dev)
        rows: list[dict[str, object]] = (
            con.sql("SELECT * FROM plan_rows ORDER BY src").to_arrow_table().to_pylist()
        )
        return rows
    finally:
        con.close()
