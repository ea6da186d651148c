"""The tree a plan would leave: folders near the root, with their files and bytes.

Shown before an apply, so that a user sees `Images/2019  1,204 files  3.1 GB` rather than a
list of moves. A file ends at its destination when it moves (or is quarantined), and stays
where it is otherwise (kept, left alone, replaced by a hard link).

It counts every regular file the scan listed: the ones organized and the ones left alone by
a rule (hidden, junk, a root that is a project...), which stay where they are; the summary
counts the first as its files, the second as left alone (tasks.report), so the two add up.
The files of a folder left whole without being entered are in neither.

One GROUP BY over the plan's shards in DuckDB: each regular file's final folder cut to `depth`
levels, counted; Python then adds each of those few groups to its folders above. Paths are
bytes (BLOBs, not always UTF-8), and DuckDB has no substring on a BLOB: the folder is cut on
the path's hex digits, a pair at a time, so a "/" (2F) is only ever a whole byte.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from storage import queries
from storage.locations import DataStore
from storage.manifests import LEFT_ALONE_CODES
from storage.queries.connection import PLAN_ADDED, with_columns

MOVING = ("move", "quarantine")
# A byte of the path that is not "/", as two hex digits.
_NOT_SLASH = "(?:[013-9A-F][0-9A-F]|2[0-9A-E])"


@dataclass
class Folder:
    path: bytes  # relative to the root; b"" is the root itself (files directly in it)
    files: int = 0
    bytes: int = 0
    arriving: int = 0  # files the plan moves into it (or below it)
    left_alone: int = 0  # files a rule leaves alone in it (or below it), where they are


def _grouped_sql(table: str, depth: int) -> str:
    """Per final folder cut to `depth` levels (hex, with its last "/"): files, bytes, arriving,
    left alone. Links, folders left alone whole and errors are not counted: the summary's files
    are regular files, so are the tree's (the tryout: 28 vs 48)."""
    moving = ", ".join(f"'{a}'" for a in MOVING)
    kept = ", ".join(f"'{code}'" for code in LEFT_ALONE_CODES)
    return f"""
        WITH final AS (
            SELECT action IN ({moving}) AND dst IS NOT NULL AS moving,
                   CASE WHEN action IN ({moving}) AND dst IS NOT NULL THEN dst ELSE src END AS path,
                   coalesce(size, 0) AS size, reason_code IN ({kept}) AS kept
            FROM {table} WHERE kind = 'file'
        )
        SELECT regexp_extract(hex(path), '^((?:{_NOT_SLASH}*2F){{0,{int(depth)}}})', 1) AS cut,
               count(*), sum(size)::HUGEINT, count(*) FILTER (moving), count(*) FILTER (kept)
        FROM final GROUP BY cut
    """


def resulting_tree(store: DataStore, op_dir: str, depth: int = 2) -> list[Folder]:
    """Folders down to `depth` levels, each counting every file at or below it, in path
    order (a parent before its children)."""
    if not queries.has_shards(store, op_dir, "plan"):
        return []
    table = with_columns(store, op_dir, "plan", PLAN_ADDED)
    with queries.connect(store) as con:
        groups = con.execute(_grouped_sql(table, depth)).fetchall()
    folders: dict[bytes, Folder] = defaultdict(lambda: Folder(b""))
    for cut, files, size, arriving, kept in groups:
        parts = bytes.fromhex(cut).split(b"/")[:-1]  # the folders, the last "/" dropped
        for level in range(len(parts) + 1):
            key = b"/".join(parts[:level])
            folder = folders[key]
            folder.path = key
            folder.files += files
            folder.bytes += int(size)
            folder.arriving += arriving
            folder.left_alone += kept
    return [folders[k] for k in sorted(folders, key=lambda p: p.split(b"/") if p else [])]
