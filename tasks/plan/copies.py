"""Duplicate copies on the fast path (tasks.plan.fast), in DuckDB, as the pure planner treats them
(tasks.plan.planner._Planner._organize):

- a duplicate group is the candidates of one size and digest (empty ones only with
  --include-empty) on two or more inodes; its kept copy is the first by --keep (oldest: mtime;
  newest: mtime descending; shortest-path: length; each then a name that does not look like a
  copy before one that does, copy_names.copy_rank, then path), and every
  member on another inode than the kept one is a copy;
- the kept copy and the files on its inode are organized like any other file, the kept one
  saying so ("kept copy (oldest) of 3"); under --duplicates report the copies are organized too,
  after every other file (as under hardlink, a copy on another device than the kept one);
  under quarantine each goes to .duplicates/<its path>; under hardlink each becomes a link to
  wherever the kept copy ends up, but one of another owner or mode than the kept copy's, which
  stays (`not-linked`: a link has one owner and one mode, and apply refuses to change whose
  a file is or who may read it).

A group is decided here whole or not at all: only when every member is a plain candidate that
fits (`wanted`.fits). Whatever touches one member sends the group to the residual with it
(`grow`).
"""

from __future__ import annotations

import os

import duckdb

from tasks.plan import reasons
from tasks.plan.copy_names import COPY_NAME_STRONG, COPY_NAME_WEAK
from tasks.plan.planner import QUARANTINE_DIR, PlanPolicy

# tasks.plan.copy_names.copy_rank, the same patterns on the last component.
_NAME = r"regexp_extract(path::VARCHAR, '[^/]*$')"
_COPY_RANK = (
    f"CASE WHEN regexp_matches({_NAME}, '{COPY_NAME_STRONG}') THEN 2"
    f" WHEN regexp_matches({_NAME}, '{COPY_NAME_WEAK}') THEN 1 ELSE 0 END"
)
_KEEP_ORDER = {
    "oldest": f"mtime_ns, {_COPY_RANK}, path",
    "newest": f"mtime_ns DESC, {_COPY_RANK}, path",
    "shortest-path": f"octet_length(path), {_COPY_RANK}, path",
}


def roles(con: duckdb.DuckDBPyConnection, policy: PlanPolicy) -> None:
    """`dupes`: each duplicate group (`gid`), its kept copy, the count its reason gives, and
    whether every member is a plain candidate that fits (`all_ok`). `roles`: the rows of
    `wanted`, each with its group, `kept`, `copy`, its `part` (organize, quarantine or link)
    and `pass` (copies that are organized come after every other file: 1)."""
    sizes = "" if policy.include_empty else "AND f.size > 0"
    con.execute(f"""
        CREATE OR REPLACE TABLE dupes AS
        WITH m AS (
            SELECT f.path, f.size, f.digest, f.dev, f.ino, f.mtime_ns, f.mode, f.owner,
                   coalesce(w.fits, FALSE) AS fits
            FROM facts f JOIN cand c ON c.path = f.path AND NOT c.project
            LEFT JOIN wanted w ON w.path = f.path
            WHERE f.kind = 'file' AND f.digest IS NOT NULL {sizes}
        ), k AS (
            SELECT *, first_value(path) OVER w AS keeper, first_value(dev) OVER w AS kdev,
                   first_value(ino) OVER w AS kino, first_value(mode) OVER w AS kmode,
                   first_value(owner) OVER w AS kowner
            FROM m WINDOW w AS (PARTITION BY size, digest ORDER BY {_KEEP_ORDER[policy.keep]})
        )
        SELECT size, digest, row_number() OVER () AS gid, any_value(keeper) AS keeper,
               any_value(kdev) AS kdev, any_value(kino) AS kino, any_value(kmode) AS kmode,
               any_value(kowner) AS kowner,
               count(*) FILTER (dev <> kdev OR ino <> kino) + 1 AS copies,
               bool_and(fits) AS all_ok
        FROM k GROUP BY size, digest
        HAVING min(dev) <> max(dev) OR min(ino) <> max(ino)
    """)
    organized = {"report": "TRUE", "hardlink": "w.dev <> d.kdev"}.get(policy.duplicates, "FALSE")
    copy_part = "quarantine" if policy.duplicates == "quarantine" else "link"
    # A link has one owner and one mode: a copy of another than its kept one's is not linked
    # (owners null on both sides, as objects', are one owner, as in the pure planner).
    unlinked = (
        "w.owner IS DISTINCT FROM d.kowner OR w.mode <> d.kmode"
        if policy.duplicates == "hardlink"
        else "FALSE"
    )
    con.execute(f"""
        CREATE OR REPLACE TABLE roles AS
        SELECT w.*, d.gid, d.keeper, d.copies, d.all_ok, d.kmode, d.kowner,
               coalesce(w.path = d.keeper, FALSE) AS kept,
               coalesce(w.dev <> d.kdev OR w.ino <> d.kino, FALSE) AS copy,
               CASE WHEN NOT coalesce(w.dev <> d.kdev OR w.ino <> d.kino, FALSE) OR {organized}
                    THEN 'organize' WHEN {unlinked} THEN 'unlinked' ELSE '{copy_part}' END
                    AS part,
               coalesce(w.dev <> d.kdev OR w.ino <> d.kino, FALSE)::INTEGER AS pass
        FROM wanted w LEFT JOIN dupes d ON d.size = w.size AND d.digest = w.digest
    """)


def kept_reason(policy: PlanPolicy) -> str:
    """SQL for what a kept copy's reason adds (tasks.plan.reasons.kept_copy)."""
    return f"CASE WHEN kept THEN '; kept copy ({policy.keep}) of ' || copies ELSE '' END"


def quarantine_folders(con: duckdb.DuckDBPyConnection, policy: PlanPolicy) -> list[str]:
    """The keys of the folders quarantined copies would go to (one per folder of `plain`)."""
    if policy.duplicates != "quarantine":
        return []
    top = os.fsdecode(QUARANTINE_DIR)
    rows = con.execute("SELECT DISTINCT lower(dir) FROM plain").fetchall()
    return [top + ("/" + d if d else "") for (d,) in rows]


# What a copy's row in `fast` keeps of `roles` (tasks.plan.fast: the plan row's other columns
# are joined from facts at the end).
_ROLE = "path, gid, keeper, part, in_place, want, fits, all_ok"


def copy_rows(con: duckdb.DuckDBPyConnection, policy: PlanPolicy) -> None:
    """Into `fast`: the copies that are not organized. A quarantined one claims
    .duplicates/<its path> (`key`, checked like any other claim); a linked one claims nothing,
    its link (FAST_ROWS) is where its kept copy's row ends; an unlinked one (another owner or
    mode than its kept copy's: tasks.plan.reasons.not_linked) stays, claiming nothing.
    (`in_place` says a copy stands where the layout would put it: the files that want that
    place are renamed around it.)"""
    top = os.fsdecode(QUARANTINE_DIR)
    kept = f"(kept: {policy.keep})"
    con.execute(f"""
        INSERT INTO fast BY NAME
        SELECT {_ROLE}, TRUE AS lock_ok, TRUE AS room, '{top}/' || path::VARCHAR AS final,
               lower('{top}/' || path::VARCHAR) AS key,
               '{top}' || CASE WHEN dir = '' THEN '' ELSE '/' || lower(dir) END AS fkey,
               'quarantine' AS action, 'duplicate-quarantined' AS code, keeper AS twin,
               'duplicate of ' || keeper::VARCHAR || ' {kept}' AS reason
        FROM roles WHERE part = 'quarantine'
        UNION ALL BY NAME
        SELECT {_ROLE}, TRUE AS lock_ok, TRUE AS room, 'hardlink' AS action,
               'duplicate-linked' AS code, keeper AS twin,
               'duplicate of ' || keeper::VARCHAR || ' {kept}: linked' AS reason
        FROM roles WHERE part = 'link'
        UNION ALL BY NAME
        SELECT {_ROLE}, TRUE AS lock_ok, TRUE AS room, 'skip' AS action, 'not-linked' AS code,
               keeper AS twin, 'duplicate of ' || keeper::VARCHAR || ' {kept}: not linked: '
               || CASE WHEN owner IS DISTINCT FROM kowner
                       THEN 'owned by ' || owner || ', the kept copy by ' || kowner
                            || ' {reasons.ONE_OWNER}'
                       ELSE 'mode ' || format('{{:04o}}', mode) || ', the kept copy''s '
                            || format('{{:04o}}', kmode) || ' {reasons.ONE_MODE}' END AS reason
        FROM roles WHERE part = 'unlinked'
    """)


def grow(con: duckdb.DuckDBPyConnection) -> None:
    """Grow the paths in `out` until they hold whole groups of `fast`: the duplicate group of
    each (a copy's part hangs on its kept copy, the kept copy on the whole group) and the
    destination of each organized one (the n-th of a destination depends on those before, and
    on the copy that may stand there already). A round in two statements, each joining `out`
    once: as one, its three million-row joins held at once outgrew PLAN_MEMORY (a million
    files all in folders the residual plans, every row of `fast` out)."""
    while True:
        con.execute("""
            CREATE OR REPLACE TABLE out_groups AS
            SELECT DISTINCT f.gid, CASE WHEN f.part = 'organize' OR f.in_place THEN f.want END
                AS want
            FROM fast f SEMI JOIN out o ON o.path = f.path
        """)
        added = con.execute("""
            INSERT INTO out SELECT f.path FROM fast f ANTI JOIN out o ON o.path = f.path
            WHERE f.gid IN (SELECT gid FROM out_groups WHERE gid IS NOT NULL)
               OR ((f.part = 'organize' OR f.in_place)
                   AND f.want IN (SELECT want FROM out_groups WHERE want IS NOT NULL))
        """).fetchall()[0][0]
        if not added:
            break
    con.execute("DROP TABLE out_groups")
