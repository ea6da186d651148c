"""The plan's fast path, in DuckDB: plain files whose destinations nothing else can touch.

A candidate (a regular file to organize) is decided here when it is not in a possible sidecar
pair nor an album folder, its path and destination are printable ASCII (DuckDB's lower() is
then Python's casefold, tasks.plan.names.key), every component fits in NAME_MAX bytes, and so
does every other file of its destination and of its duplicate group (tasks.plan.copies). The
files of one destination are ranked as the planner takes them: the one already there (or the
first) has it, a later one with its content is a duplicate left in place, the n-th other gets
"name (n)". A group stays here only when what it claims is taken by nothing: no scanned path
at it (but the file left in place), under it or at one of its folders, and no other fast row
claims it, a folder of it or a path under it. A destination folder is rendered in Python once
per distinct value of the few fields it depends on (tasks.plan.layout), then joined. What the
residual planner claims is checked against these rows afterwards (tasks.plan.partition): a
fast row it touches is planned again with the residual, its whole groups with it.
"""

from __future__ import annotations

import os
from datetime import datetime

import duckdb
import pyarrow as pa

from storage.templates import NAME_FIELDS, UNKNOWN
from tasks.plan import copies, reasons
from tasks.plan.layout import UNDATED, Layout, Place
from tasks.plan.names import NAME_MAX
from tasks.plan.planner import PlanPolicy
from tasks.plan.sidecars import SIDECAR_EXTS

# A path as DuckDB shows a BLOB (`path::VARCHAR`) is printable ASCII: every other byte, the
# backslash and the quotes are written \xHH (tests/tasks/plan/test_fast.py holds DuckDB to
# that). A plain path (its text is the bytes themselves) is one whose text has no backslash,
# and no such text has a newline: string functions cut it at its last '/' or '.' as the
# regexps '^(.*)/' and '^(.+)[.]([^.]*)$' did, at a fifth of their CPU.


def plain(text: str) -> str:
    """SQL: the path whose text (`path::VARCHAR`) this is, is plain."""
    return f"NOT contains({text}, '\\')"


def parent(text: str) -> str:
    """SQL: an ASCII text up to its last '/', '' without one (regexp_extract(text, '^(.*)/', 1))."""
    last = f"strpos(reverse({text}), '/')"
    return f"CASE WHEN {last} = 0 THEN '' ELSE left({text}, length({text}) - {last}) END"


def base_name(text: str) -> str:
    """SQL: a text after its last '/' (split_part makes a list per row: slower in a filter)."""
    return f"regexp_extract({text}, '[^/]*$')"


_DIR = parent("f.path::VARCHAR")
_NAME = base_name("f.path::VARCHAR")
_PLACE = ("parent", "relative_dir")
_TAGS = ("artist", "album")
_TYPES = {"day": pa.date32(), "ok": pa.bool_(), "fid": pa.int32()}
_FANC = pa.schema([("fkey", pa.string()), ("anc", pa.string())])


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
    names = [*columns, "folder", "reason", "ok", "fid"]
    out: dict[str, list[object]] = {name: [] for name in names}
    for fid, row in enumerate(rows):
        values = dict(zip(columns, row, strict=True))
        folder, reason = _render(policy, values)
        text = os.fsdecode(folder)
        fits = all(len(p) <= NAME_MAX for p in folder.split(b"/"))
        for name, value in [*values.items(), ("folder", text), ("reason", reason)]:
            out[name].append(value)
        out["ok"].append(fits and _is_plain(text))
        out["fid"].append(fid)
    schema = pa.schema([(n, _TYPES.get(n, pa.string())) for n in out])
    con.register("folders_arrow", pa.table(out, schema=schema))
    con.execute("CREATE OR REPLACE TABLE folders AS SELECT * FROM folders_arrow")
    con.unregister("folders_arrow")


def _render(policy: PlanPolicy, values: dict[str, object]) -> tuple[bytes, str]:
    day = values["day"]
    date = datetime(day.year, day.month, day.day) if day is not None else None  # type: ignore[attr-defined]
    category, ext, source = str(values["category"]), str(values["ext"]), str(values["date_source"])
    undated = policy.undated == "folder" and source in ("mtime", "none")
    tags = values.get("artist"), values.get("album")
    place = Place(os.fsencode(str(values.get("dir", ""))), *tags)  # type: ignore[arg-type]
    parts = policy.layout.destination(
        category, None if undated else date, b"x", ext, place, UNDATED if undated else UNKNOWN
    )
    why = reasons.organized(category, ext, date, source, undated).encode("utf-8", "surrogateescape")
    return b"/".join(parts[:-1]), why.decode("utf-8", "backslashreplace")


def _busy(con: duckdb.DuckDBPyConnection, policy: PlanPolicy) -> None:
    """`busy`: folders the residual plans whole (an album, with a path of it; a sidecar beside
    a name not plain ASCII, which casefold may pair); `busy_files`: possible sidecar pairs."""
    exts = ", ".join(f"'{e}'" for e in sorted(SIDECAR_EXTS))
    album = "count(*) FILTER (category = 'audio') >= 2" if policy.albums != "off" else "FALSE"
    album += " AND 2 * count(*) FILTER (category = 'audio') >= count(*)"  # find_albums's rule
    con.execute(f"""
        CREATE OR REPLACE TABLE busy AS
        WITH files AS (
            SELECT {_DIR} AS dir, f.path, f.ext, f.category, {plain("f.path::VARCHAR")} AS plain
            FROM facts f JOIN cand c ON c.path = f.path AND NOT c.project
        )
        SELECT dir, any_value(path) AS path, {album} AS album FROM files GROUP BY dir
        HAVING ({album}) OR (count(*) FILTER (ext IN ({exts})) > 0
                             AND count(*) FILTER (NOT plain) > 0)
    """)
    # A sidecar and every main it may pick (tasks.plan.sidecars: its name less its last
    # extension is the main's name or stem), not their whole folder: a superset of the pairs.
    con.execute(f"""
        CREATE OR REPLACE TABLE busy_files AS
        WITH files AS (
            SELECT {_DIR} AS dir, {_NAME} AS name, f.path, f.ext
            FROM facts f JOIN cand c ON c.path = f.path AND NOT c.project
            WHERE {plain("f.path::VARCHAR")}
        ), side AS (
            SELECT dir, name, path, lower(regexp_replace(name, '[.][^.]*$', '')) AS stem
            FROM files WHERE ext IN ({exts})
        ), pairs AS (
            SELECT s.path AS side, m.path AS main
            FROM side s JOIN files m ON m.dir = s.dir AND m.name <> s.name
                -- a pair shares the name up to its first dot: joined on it, not on the folder
                AND split_part(lower(m.name), '.', 1) = split_part(s.stem, '.', 1)
            WHERE lower(m.name) = s.stem OR starts_with(lower(m.name), s.stem || '.')
        )
        SELECT side AS path FROM pairs UNION SELECT main FROM pairs
    """)


def _plain(con: duckdb.DuckDBPyConnection, policy: PlanPolicy) -> None:
    """`plain`: candidates with a plain path, with the columns the fast path reads (the rest of
    facts is joined once, in FAST_ROWS); `eligible` when no other part plans them."""
    tags = "".join(f", f.{t}" for t in _TAGS if t in folder_fields(policy.layout))
    fast = "TRUE" if can_be_fast(policy.layout) else "FALSE"
    con.execute(f"""
        CREATE OR REPLACE TABLE plain AS
        SELECT *, {fast} AND dir NOT IN (SELECT dir FROM busy)
               AND path NOT IN (SELECT path FROM busy_files) AS eligible FROM (
            SELECT f.path, {_DIR} AS dir, {_NAME} AS name, f.date::DATE AS day, f.category,
                   f.ext, f.date_source, f.size, f.digest, f.dev, f.ino, f.mode, f.owner {tags}
            FROM facts f JOIN cand c ON c.path = f.path AND NOT c.project
            WHERE f.kind = 'file' AND {plain("f.path::VARCHAR")}
        )
    """)


def _ancestors_table(con: duckdb.DuckDBPyConnection, policy: PlanPolicy) -> None:
    """`fanc`: each folder a fast row may claim in (the layout's, and the quarantine's) with
    itself and its folders; `blocked`: folders one of which is a path of the scan or a unit
    (`units`: nothing can be put inside a file or a folder left alone)."""
    sql = "SELECT DISTINCT lower(folder) FROM folders WHERE ok AND folder <> ''"
    keys = [r[0] for r in con.execute(sql).fetchall()]
    keys += copies.quarantine_folders(con, policy)
    pairs = [(k, a) for k in keys for a in ancestors(k, inclusive=True)]
    columns = {"fkey": [p[0] for p in pairs], "anc": [p[1] for p in pairs]}
    con.register("fanc_arrow", pa.table(columns, schema=_FANC))
    con.execute("CREATE OR REPLACE TABLE fanc AS SELECT * FROM fanc_arrow")
    con.unregister("fanc_arrow")
    con.execute("""
        CREATE OR REPLACE TABLE blocked AS
        SELECT DISTINCT fkey FROM fanc WHERE anc IN (SELECT key FROM ek UNION SELECT * FROM units)
    """)


def _wanted(con: duckdb.DuckDBPyConnection, policy: PlanPolicy) -> None:
    """`wanted`: each plain candidate's destination before any clash, its key (`want`)."""
    on = " AND ".join(f"k.{c} IS NOT DISTINCT FROM p.{c}" for c in _key_columns(policy.layout))
    con.execute(f"""
        CREATE OR REPLACE TABLE wanted AS
        WITH d AS (
            SELECT p.path, p.dir, p.name, p.size, p.digest, p.dev, p.ino, p.mode, p.owner, k.fid,
                   lower(k.folder) AS fkey,
                   p.eligible AND k.ok AND strlen(p.name) <= {NAME_MAX} AS fits,
                   CASE WHEN k.folder = '' THEN p.name ELSE k.folder || '/' || p.name END AS dst
            FROM plain p JOIN folders k ON {on}
        )
        SELECT *, lower(dst) AS want, lower(path::VARCHAR) = lower(dst) AS in_place FROM d
    """)
    con.execute("DROP TABLE plain")


def fast_path(con: duckdb.DuckDBPyConnection, policy: PlanPolicy) -> None:
    """The table `fast`: the candidates (`cand`) decided here, each with its plan row's
    `action`, `reason`, `code`, `twin` and, when it claims a path, its `final` (key `key`).
    Needs `ek` and `ed`."""
    _busy(con, policy)
    _plain(con, policy)
    _folders(con, policy)
    _ancestors_table(con, policy)
    _wanted(con, policy)
    copies.roles(con, policy)
    con.execute("CREATE OR REPLACE TABLE wanted AS SELECT path, want, fkey FROM roles")
    _ranked(con, policy)
    copies.copy_rows(con, policy)
    con.execute("DROP TABLE roles")
    _drop_clashing_groups(con)


def _ranked(con: duckdb.DuckDBPyConnection, policy: PlanPolicy) -> None:
    """`fast`: the organized candidates of each destination (`want`) in the planner's order
    (`pass`, then path). What stands there is a candidate at its own destination (`in_place`,
    a copy too), else the first of them, which takes it; after it, one with the same content
    (unless a copy not reported) is a duplicate left in place, the n-th other gets "name (n)"
    (Names.free_variant). `lock_ok`: nothing else of the scan stands there. What stands at
    each destination is found per destination, then one running count."""
    report = "TRUE" if policy.duplicates == "report" else "FALSE"
    kept = copies.kept_reason(policy)
    named = _NAMED.format(
        half=NAME_MAX // 2, name_max=NAME_MAX, kept=kept, columns=_KEPT,
        case_only=f"'{reasons.CASE_ONLY}'", hidden=f"'{reasons.HIDDEN_KEPT}'",
    )  # fmt: skip
    con.execute(f"""
        CREATE OR REPLACE TABLE fast AS
        {_RANKS.format(report=report)}
        {named}
        UNION ALL BY NAME
        SELECT {_KEPT}, NULL::VARCHAR AS fkey, TRUE AS room,
               'keep' AS action, 'already in place' AS reason,
               CASE WHEN kept THEN 'duplicate-kept' ELSE 'already-in-place' END AS code
        FROM (SELECT *, 0 AS nth FROM o JOIN g USING (want) WHERE in_place)
    """)


# The columns of `fast` (but fkey, room, final, key, action, reason, code, twin): what the
# checks after it read. What the plan rows take from facts is joined once, in FAST_ROWS.
_KEPT = "path, gid, keeper, part, in_place, want, fits, all_ok, lock_ok, nth"


# _ranked's first part (`s`): where each organized candidate stands in its destination's
# order. Per destination (`g`): how many scanned paths are at it, the candidate in place
# there (`ip`) or else the first of the others (`first`), which claims it (`claimer`); a row
# with the content of what stands there is `redundant`, the others count up from 1 (`nth`).
_RANKS = """
        WITH o AS (
            SELECT * EXCLUDE (dev, ino) FROM roles WHERE part = 'organize'
        ), ex AS (
            SELECT key AS want, count(*) AS ex FROM ek WHERE key IN (SELECT want FROM o)
            GROUP BY key
        ), ip AS (
            SELECT want, count(*) AS n_ip, any_value(path) AS o_path, any_value(size) AS o_size,
                   any_value(digest) AS o_digest, any_value(copy) AS o_copy
            FROM roles WHERE in_place GROUP BY want
        ), firsts AS (  -- the first path by (pass, path), then its row: arg_min costs 2x
            SELECT want, CASE WHEN min(pass) = 0 THEN min(path) FILTER (pass = 0)
                              ELSE min(path) END AS path FROM o WHERE NOT in_place GROUP BY want
        ), first AS (
            SELECT want, {{'path': path, 'size': size, 'digest': digest, 'copy': copy, 'dst': dst}}
                AS f FROM o SEMI JOIN firsts USING (want, path)
        ), g AS (
            SELECT want, coalesce(ex.ex, 0) = coalesce(ip.n_ip, 0)
                         AND coalesce(ip.n_ip, 0) <= 1 AS lock_ok,
                   ip.n_ip IS NOT NULL AS scanned, first.f.path AS first_path,
                   CASE WHEN ip.n_ip IS NULL THEN first.f.path ELSE ip.o_path END AS o_path,
                   CASE WHEN ip.n_ip IS NULL THEN first.f.size ELSE ip.o_size END AS o_size,
                   CASE WHEN ip.n_ip IS NULL THEN first.f.digest ELSE ip.o_digest END
                       AS o_digest,
                   CASE WHEN ip.n_ip IS NULL THEN first.f.copy ELSE ip.o_copy END AS o_copy,
                   CASE WHEN ip.n_ip IS NULL THEN first.f.dst ELSE ip.o_path::VARCHAR END
                       AS holder
            FROM (SELECT DISTINCT want FROM o) LEFT JOIN ex USING (want)
            LEFT JOIN ip USING (want) LEFT JOIN first USING (want)
        ), r AS (
            SELECT o.*, g.lock_ok, g.o_path, g.holder,
                   NOT g.scanned AND o.path = g.first_path AS claimer,
                   (g.scanned OR o.path <> g.first_path)
                   AND coalesce(o.digest = g.o_digest AND o.size = g.o_size, FALSE)
                   AND (NOT g.o_copy OR {report}) AS redundant
            FROM o JOIN g USING (want) WHERE NOT o.in_place
        ), s AS (
            SELECT *, CASE WHEN claimer THEN 0 WHEN redundant THEN NULL
                    ELSE sum(CASE WHEN claimer OR redundant THEN 0 ELSE 1 END) OVER (
                        PARTITION BY want ORDER BY pass, path
                        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) END AS nth
            FROM r JOIN (SELECT fid, folder, reason FROM folders) USING (fid)
        )
"""


# The ranked rows of _ranked (`s`) named: the claimer keeps its name, the n-th renamed one gets
# "stem (n).ext" (the extension kept unless it is too long), a redundant one claims nothing.
_NAMED = """
    , n0 AS (
        SELECT *, strpos(reverse(name), '.') AS dot FROM s WHERE NOT in_place
    ), n AS (
        -- a stem before the last dot, and an extension short enough: '^(.+)[.]([^.]*)$'
        SELECT *, 0 < dot AND dot < length(name) AND dot <= {half} AS split FROM n0
    ), v AS (
        SELECT *, CASE WHEN split THEN left(name, length(name) - dot) ELSE name END AS stem,
                  CASE WHEN split AND dot > 1 THEN right(name, dot) ELSE '' END AS tail
        FROM n
    ), f AS (
        SELECT *, CASE WHEN redundant THEN NULL WHEN nth = 0 THEN dst
                       ELSE (CASE WHEN folder = '' THEN '' ELSE folder || '/' END)
                            || stem || ' (' || nth || ')' || tail END AS final,
                  redundant OR nth = 0 OR strlen(stem) + strlen(' (' || nth || ')')
                                          + strlen(tail) <= {name_max} AS room
        FROM v
    )
    SELECT {columns}, fkey, room, final, lower(final) AS key,
           CASE WHEN redundant THEN 'skip' ELSE 'move' END AS action,
           CASE WHEN redundant THEN 'duplicate of ' || o_path::VARCHAR || ', which '
                    || CASE WHEN o_path::VARCHAR = dst THEN 'is already at ' ELSE 'goes to ' END
                    || dst
                ELSE reason || {kept}
                     || CASE WHEN starts_with(name, '.') THEN {hidden} ELSE '' END
                     || CASE WHEN nth = 0 THEN ''
                             WHEN holder = dst THEN '; renamed: ' || dst || ' is taken'
                             ELSE '; renamed: ' || dst || ' is taken by ' || holder || ' '
                                  || {case_only} END
           END AS reason,
           CASE WHEN redundant THEN 'duplicate' WHEN kept THEN 'duplicate-kept'
                WHEN nth = 0 THEN 'organized' ELSE 'renamed' END AS code,
           CASE WHEN redundant THEN o_path END AS twin
    FROM f
"""


def _drop_clashing_groups(con: duckdb.DuckDBPyConnection) -> None:
    """Whole groups out (copies.grow): any member that does not fit, of a duplicate group not
    all here, at a destination something else of the scan holds, or in a folder that cannot
    be made; any claim without room, at a scanned path or folder, at a name someone else wants
    (but a first choice), that another fast row claims, or at a folder of a fast row's claim."""
    con.execute("""
        CREATE OR REPLACE TABLE out AS SELECT path FROM fast
        WHERE NOT fits OR NOT coalesce(all_ok, TRUE) OR NOT lock_ok
           OR fkey IN (SELECT fkey FROM blocked)
           OR (key IS NOT NULL AND (
               NOT room OR key IN (SELECT key FROM ek) OR key IN (SELECT key FROM ed)
               OR (coalesce(nth, 1) > 0 AND key IN (SELECT want FROM wanted))
               OR key IN (SELECT key FROM fast GROUP BY key HAVING count(*) > 1)
               OR key IN (SELECT anc FROM fanc WHERE fkey IN (
                   SELECT fkey FROM fast WHERE key IS NOT NULL))))
    """)
    copies.grow(con)
    con.execute("DELETE FROM fast WHERE path IN (SELECT path FROM out)")


def touched(con: duckdb.DuckDBPyConnection) -> list[bytes]:
    """Fast rows that what the residual claimed (`claims`: keys; `claimed_dirs`: their folders
    and the album folders) could touch, with their whole groups, taken out of `fast`."""
    con.execute("""
        CREATE OR REPLACE TABLE out AS SELECT path FROM fast
        WHERE key IN (SELECT key FROM claims) OR key IN (SELECT key FROM claimed_dirs)
           OR fkey IN (SELECT fkey FROM fanc WHERE anc IN (SELECT key FROM claims))
    """)
    copies.grow(con)
    rows = con.execute(
        "DELETE FROM fast WHERE path IN (SELECT path FROM out) RETURNING path"
    ).fetchall()
    return [r[0] for r in rows]


FAST_ROWS = """
    SELECT f.path AS src,
           CASE WHEN f.action IN ('move', 'quarantine') THEN encode(f.final)
                WHEN f.action = 'hardlink' THEN f.path END AS dst,
           f.action, f.reason, x.size, x.mtime_ns, x.dev, x.ino, x.category,
           year(x.date)::INTEGER AS year, x.digest,
           CASE WHEN f.action = 'hardlink' THEN
               CASE WHEN k.action = 'move' THEN encode(k.final) ELSE k.path END END AS link_to,
           f.code AS reason_code, x.kind, NULL::BLOB AS unit, f.twin,
           nullif(x.date_source, '') AS date_source
    FROM fast f JOIN facts x ON x.path = f.path
    LEFT JOIN fast k ON f.action = 'hardlink' AND k.path = f.keeper
"""
