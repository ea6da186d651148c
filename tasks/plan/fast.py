"""The plan's fast path, in DuckDB: plain files whose destination nothing else can touch.

A candidate (a regular file to organize) is decided here when it is not a duplicate copy, not
beside a sidecar, not in a folder of audio (an album), its path and destination are printable
ASCII (DuckDB's lower() is then Python's casefold, tasks.plan.names.key), every component fits
in NAME_MAX bytes, and either it is already in place or its destination is taken by nothing: no
path of the scan is at it, under it, or at one of its folders, and no other fast row wants it,
a folder of it, or a path under it. Its destination folder depends on a few fields only: it is
rendered in Python once per distinct value of those (tasks.plan.layout), then joined.
What the residual planner claims is checked against these rows afterwards
(tasks.plan.partition): a fast row it touches is planned again with the residual.
"""

from __future__ import annotations

import os
from datetime import datetime

import duckdb
import pyarrow as pa

from storage.templates import NAME_FIELDS, UNKNOWN
from tasks.plan import reasons
from tasks.plan.layout import UNDATED, Layout, Place
from tasks.plan.names import NAME_MAX
from tasks.plan.planner import PlanPolicy
from tasks.plan.sidecars import SIDECAR_EXTS

# Printable ASCII but the backslash: DuckDB's BLOB to VARCHAR is then the bytes themselves.
PLAIN = r"'[ -\[\]-~]*'"
_PLACE = ("parent", "relative_dir")
_TAGS = ("artist", "album")
_TYPES = {"day": pa.date32(), "ok": pa.bool_()}


def folder_fields(layout: Layout) -> frozenset[str]:
    return frozenset().union(*(c.fields for c in layout.directories))


def can_be_fast(layout: Layout) -> bool:
    """Folders that do not depend on the file's own name, and the name kept as it is."""
    return layout.filename.template == "{name}" and not folder_fields(layout) & NAME_FIELDS


def ancestors(key: str, inclusive: bool) -> list[str]:
    """The folders of a relative path ("a", "a/b" for "a/b/c"), and the path itself if asked."""
    parts = key.split("/")
    end = len(parts) + 1 if inclusive else len(parts)
    return ["/".join(parts[:i]) for i in range(1, end)]


def _is_plain(text: str) -> bool:
    return all(" " <= ch <= "~" and ch != "\\" for ch in text)


def _key_columns(layout: Layout) -> list[str]:
    used = folder_fields(layout)
    columns = ["category", "ext", "day", "date_source"]
    if used & set(_PLACE):
        columns.append("dir")
    return columns + [t for t in _TAGS if t in used]


def _folders(con: duckdb.DuckDBPyConnection, policy: PlanPolicy) -> None:
    """The table `folders`: for each distinct key, the destination folder and the reason."""
    columns = _key_columns(policy.layout)
    rows = con.execute(f"SELECT DISTINCT {', '.join(columns)} FROM plain").fetchall()
    out: dict[str, list[object]] = {name: [] for name in [*columns, "folder", "reason", "ok"]}
    for row in rows:
        values = dict(zip(columns, row, strict=True))
        folder, reason = _render(policy, values)
        text = os.fsdecode(folder)
        fits = all(len(p) <= NAME_MAX for p in folder.split(b"/"))
        for name, value in [*values.items(), ("folder", text), ("reason", reason)]:
            out[name].append(value)
        out["ok"].append(fits and _is_plain(text))
    schema = pa.schema([(n, _TYPES.get(n, pa.string())) for n in out])
    con.register("folders_arrow", pa.table(out, schema=schema))
    con.execute("CREATE OR REPLACE TABLE folders AS SELECT * FROM folders_arrow")
    con.unregister("folders_arrow")


def _render(policy: PlanPolicy, values: dict[str, object]) -> tuple[bytes, str]:
    day = values["day"]
    date = datetime(day.year, day.month, day.day) if day is not None else None  # type: ignore[attr-defined]
    category, ext, source = str(values["category"]), str(values["ext"]), str(values["date_source"])
    undated = policy.undated == "folder" and source in ("mtime", "none")
    place = Place(
        os.fsencode(str(values.get("dir", ""))),
        values.get("artist"),  # type: ignore[arg-type]
        values.get("album"),  # type: ignore[arg-type]
    )
    parts = policy.layout.destination(
        category, None if undated else date, b"x", ext, place, UNDATED if undated else UNKNOWN
    )
    why = reasons.organized(category, ext, date, source, undated)
    return b"/".join(parts[:-1]), why.encode("utf-8", "surrogateescape").decode(
        "utf-8", "backslashreplace"
    )


def _busy(con: duckdb.DuckDBPyConnection, policy: PlanPolicy) -> None:
    """Folders whose files the residual plans (sidecars, albums) and duplicate contents."""
    exts = ", ".join(f"'{e}'" for e in sorted(SIDECAR_EXTS))
    audio = "OR count(*) FILTER (category = 'audio') >= 2" if policy.albums != "off" else ""
    # A folder is busy when a sidecar there may pair with a main file (tasks.plan.sidecars:
    # its name less its last extension is the main's name, or the main's name less its own
    # extension), and whenever a name there is not plain ASCII (casefold may pair those).
    # A superset of the pairs sidecars_of finds: a sidecar alone is planned as a plain file.
    con.execute(f"""
        CREATE OR REPLACE TABLE busy AS
        WITH files AS (
            SELECT regexp_extract(f.path::VARCHAR, '^(.*)/', 1) AS dir,
                   regexp_extract(f.path::VARCHAR, '[^/]*$') AS name, f.ext, f.category,
                   regexp_full_match(f.path::VARCHAR, {PLAIN}) AS plain
            FROM facts f JOIN cand c ON c.path = f.path AND NOT c.project
        ), side AS (
            SELECT dir, name, lower(regexp_replace(name, '[.][^.]*$', '')) AS stem
            FROM files WHERE ext IN ({exts})
        )
        SELECT dir FROM files GROUP BY dir
        HAVING count(*) FILTER (ext IN ({exts})) > 0
               AND count(*) FILTER (NOT plain) > 0 {audio}
        UNION
        SELECT DISTINCT s.dir FROM side s JOIN files m ON m.dir = s.dir AND m.name <> s.name
        WHERE lower(m.name) = s.stem OR starts_with(lower(m.name), s.stem || '.')
    """)
    # Any two files of equal content go to the residual, empty ones and hard links of one
    # inode included: the planner leaves a copy whose twin takes its destination where it is
    # (PlannedMove "duplicate"), whatever the duplicates policy counts as a group.
    con.execute("""
        CREATE OR REPLACE TABLE dups AS
        SELECT f.size, f.digest FROM facts f JOIN cand c ON c.path = f.path AND NOT c.project
        WHERE f.kind = 'file' AND f.digest IS NOT NULL
        GROUP BY f.size, f.digest HAVING count(*) > 1
    """)


def _plain(con: duckdb.DuckDBPyConnection) -> None:
    """`plain`: candidates with a plain path; `eligible` when no other part plans them."""
    con.execute(f"""
        CREATE OR REPLACE TABLE plain AS
        SELECT f.*, regexp_extract(f.path::VARCHAR, '^(.*)/', 1) AS dir,
               regexp_extract(f.path::VARCHAR, '[^/]*$') AS name, f.date::DATE AS day,
               regexp_extract(f.path::VARCHAR, '^(.*)/', 1) NOT IN (SELECT dir FROM busy)
               AND NOT EXISTS (
                   SELECT 1 FROM dups d WHERE d.size = f.size AND d.digest = f.digest
               ) AS eligible
        FROM facts f JOIN cand c ON c.path = f.path AND NOT c.project
        WHERE f.kind = 'file' AND regexp_full_match(f.path::VARCHAR, {PLAIN})
    """)


def _ancestors_table(con: duckdb.DuckDBPyConnection) -> None:
    """`fanc`: each fast folder with itself and its folders; `blocked`: folders one of which
    is a path of the scan (nothing can be put inside a file or a folder left alone)."""
    keys = [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT lower(folder) FROM folders WHERE ok AND folder <> ''"
        ).fetchall()
    ]
    pairs = [(k, a) for k in keys for a in ancestors(k, inclusive=True)]
    table = pa.table(
        {"fkey": [p[0] for p in pairs], "anc": [p[1] for p in pairs]},
        schema=pa.schema([("fkey", pa.string()), ("anc", pa.string())]),
    )
    con.register("fanc_arrow", table)
    con.execute("CREATE OR REPLACE TABLE fanc AS SELECT * FROM fanc_arrow")
    con.unregister("fanc_arrow")
    con.execute("""
        CREATE OR REPLACE TABLE blocked AS
        SELECT DISTINCT fkey FROM fanc WHERE anc IN (SELECT key FROM ek)
    """)


def _wanted(con: duckdb.DuckDBPyConnection, policy: PlanPolicy) -> None:
    """`wanted`: each plain candidate's destination before any clash, its key (`want`)."""
    on = " AND ".join(f"k.{c} IS NOT DISTINCT FROM p.{c}" for c in _key_columns(policy.layout))
    con.execute(f"""
        CREATE OR REPLACE TABLE wanted AS
        WITH d AS (
            SELECT p.*, k.reason, k.folder, lower(k.folder) AS fkey,
                   p.eligible AND k.ok AND strlen(p.name) <= {NAME_MAX} AS fits,
                   CASE WHEN k.folder = '' THEN p.name ELSE k.folder || '/' || p.name END AS dst
            FROM plain p JOIN folders k ON {on}
        )
        SELECT *, lower(dst) AS want, lower(path::VARCHAR) = lower(dst) AS in_place,
               regexp_extract(name, '^(.+)[.]([^.]*)$', 1) AS stem_,
               regexp_extract(name, '^(.+)[.]([^.]*)$', 2) AS ext_
        FROM d
    """)


def fast_path(con: duckdb.DuckDBPyConnection, policy: PlanPolicy) -> None:
    """The table `fast`: the candidates (`cand`) decided here: `in_place`, or moved to `final`
    (key `key`): the first of the files wanting one destination (`want`, in path order) gets
    it, the n-th after it "name (n)", as Names.free_variant would. Needs `ek` and `ed`."""
    _busy(con, policy)
    _plain(con)
    if not can_be_fast(policy.layout):
        con.execute("UPDATE plain SET eligible = FALSE")
    _folders(con, policy)
    _ancestors_table(con)
    _wanted(con, policy)
    half = NAME_MAX // 2
    con.execute(f"""
        CREATE OR REPLACE TABLE fast AS
        WITH g AS (
            SELECT want FROM wanted GROUP BY want HAVING bool_and(fits AND NOT in_place)
        ), r AS (
            SELECT w.*, row_number() OVER (PARTITION BY w.want ORDER BY w.path) - 1 AS nth,
                   stem_ <> '' AND strlen(ext_) + 1 <= {half} AS split
            FROM wanted w WHERE w.want IN (SELECT want FROM g)
        ), v AS (
            SELECT *, CASE WHEN split THEN stem_ ELSE name END AS stem,
                      CASE WHEN split AND ext_ <> '' THEN '.' || ext_ ELSE '' END AS tail
            FROM r
        ), n AS (
            SELECT *, CASE WHEN nth = 0 THEN dst
                           ELSE (CASE WHEN folder = '' THEN '' ELSE folder || '/' END)
                                || stem || ' (' || nth || ')' || tail END AS final,
                      nth = 0 OR strlen(stem) + strlen(' (' || nth || ')') + strlen(tail)
                                 <= {NAME_MAX} AS room
            FROM v
        )
        SELECT * EXCLUDE (split), lower(final) AS key FROM n
        UNION ALL BY NAME
        SELECT *, 0 AS nth, name AS stem, '' AS tail, NULL AS final, TRUE AS room, want AS key
        FROM wanted WHERE in_place AND fits
    """)
    _drop_clashing_groups(con)


def _drop_clashing_groups(con: duckdb.DuckDBPyConnection) -> None:
    """Whole groups out (the n-th of a group is "name (n)" only with every one before it):
    any member at a scanned path, a folder of one, under a scanned path, at a name someone
    else wants or another fast row takes, at a folder of a fast row, or without room."""
    con.execute("""
        DELETE FROM fast WHERE NOT in_place AND want IN (
            SELECT want FROM fast WHERE NOT in_place AND (
                NOT room OR key IN (SELECT key FROM ek) OR key IN (SELECT key FROM ed)
                OR fkey IN (SELECT fkey FROM blocked)
                OR (nth > 0 AND key IN (SELECT want FROM wanted))
                OR key IN (SELECT key FROM fast GROUP BY key HAVING count(*) > 1)
                OR key IN (SELECT anc FROM fanc WHERE fkey IN (
                    SELECT fkey FROM fast WHERE NOT in_place))))
    """)


def touched(con: duckdb.DuckDBPyConnection) -> list[bytes]:
    """Fast rows that what the residual claimed (`claims`: keys; `claimed_dirs`: their folders
    and the album folders) could touch, taken out of `fast`: their paths."""
    rows = con.execute("""
        DELETE FROM fast WHERE NOT in_place AND want IN (
            SELECT want FROM fast WHERE NOT in_place AND (
                key IN (SELECT key FROM claims) OR key IN (SELECT key FROM claimed_dirs)
                OR fkey IN (SELECT fkey FROM fanc WHERE anc IN (SELECT key FROM claims))))
        RETURNING path
    """).fetchall()
    return [r[0] for r in rows]


FAST_ROWS = """
    SELECT path AS src, CASE WHEN in_place THEN NULL ELSE encode(final) END AS dst,
           CASE WHEN in_place THEN 'keep' ELSE 'move' END AS action,
           CASE WHEN in_place THEN 'already in place' WHEN nth = 0 THEN reason
                ELSE reason || '; renamed: ' || dst || ' is taken' END AS reason,
           size, mtime_ns, dev, ino, category, year(date)::INTEGER AS year, digest,
           NULL::BLOB AS link_to,
           CASE WHEN in_place THEN 'already-in-place' WHEN nth = 0 THEN 'organized'
                ELSE 'renamed' END AS reason_code,
           kind, NULL::BLOB AS unit, NULL::BLOB AS twin, nullif(date_source, '') AS date_source
    FROM fast
"""
