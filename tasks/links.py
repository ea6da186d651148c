"""What the symlinks in a root name, by their words: the plan leaves a file a link names alone
(`link-target`, tasks.plan.facts), and apply keeps a folder a link names even when its moves
emptied it (tasks.apply.stage), so that no link in the root is left dangling.

Only the symlinks are resolved, in Python (they are few): a link's target, relative to its
folder or absolute against the root's absolute paths, through the links among the folders on
the way, and through chains of links (at most 40, as Linux's ELOOP). Nothing is read from the
disk: the scan's rows are what the links said when the tree was planned.
"""

from __future__ import annotations

import os
import posixpath

import duckdb

from storage.locations import DataStore
from storage.objects.urls import is_object_url
from storage.queries import source

# As Linux's ELOOP: a chain of links longer than this resolves to nothing.
_MAX_LINKS = 40


def root_paths(url: str) -> tuple[bytes, ...]:
    """The absolute paths an absolute symlink target may name the root by: as given, and
    resolved; none for a bucket, which holds no symlinks."""
    if is_object_url(url):
        return ()
    given = os.fsencode(os.path.abspath(url))
    return tuple(dict.fromkeys((given, os.fsencode(os.path.realpath(url)))))


def scanned_links(
    con: duckdb.DuckDBPyConnection, store: DataStore, op_dir: str
) -> dict[bytes, bytes]:
    """Each symlink the scan found in the root: its path -> its target, by path."""
    rows = con.execute(
        f"""SELECT path, link_target FROM {source(store, op_dir, "scan")}
            WHERE kind = 'symlink' AND link_target IS NOT NULL ORDER BY path"""
    ).fetchall()
    return {bytes(link): bytes(target) for link, target in rows}


def named_entries(links: dict[bytes, bytes], roots: tuple[bytes, ...]) -> dict[bytes, bytes]:
    """Each entry in the root a link names -> the first link (by path) that names it."""
    named: dict[bytes, bytes] = {}
    for link in sorted(links):
        found = resolve_link(link, links, roots)
        if found is not None:
            named.setdefault(found, link)
    return named


def resolve_link(link: bytes, links: dict[bytes, bytes], roots: tuple[bytes, ...]) -> bytes | None:
    """What the symlink at `link` names in the root, through the other symlinks in the root
    (`links`: each link's path to its target) that its target's folders are: the path of an
    entry that is no symlink, or None when the chain leaves the root or loops."""
    path: bytes | None = link
    for _ in range(_MAX_LINKS):
        if path is None or path not in links:
            return path
        path = link_target(path, links[path], roots)
        if path is not None:
            path = _through_folders(path, links, roots)
    return None


def _through_folders(
    path: bytes, links: dict[bytes, bytes], roots: tuple[bytes, ...]
) -> bytes | None:
    """`path` with its first folder that is a symlink replaced by what it names, again until
    none is (a path through `photos -> Pictures/2020` names a file in Pictures/2020)."""
    for _ in range(_MAX_LINKS):
        parts = path.split(b"/")
        for i in range(1, len(parts)):
            folder = b"/".join(parts[:i])
            if folder in links:
                named = link_target(folder, links[folder], roots)
                if named is None:
                    return None
                path = named + b"/" + b"/".join(parts[i:])
                break
        else:
            return path
    return None


def link_target(link: bytes, target: bytes, roots: tuple[bytes, ...]) -> bytes | None:
    """The path relative to the root that the symlink at `link` (relative to the root) names,
    resolved by its words (a relative target from the link's folder, an absolute one against
    `roots`, the root's absolute paths); None when it names the root itself or leaves it."""
    if target.startswith(b"/"):
        target = posixpath.normpath(target)
        under = [r.rstrip(b"/") + b"/" for r in roots if r.rstrip(b"/")]
        root = next((r for r in under if target.startswith(r)), None)
        if root is None:
            return None
        rel = target[len(root) :]
    else:
        rel = posixpath.join(posixpath.dirname(link), target)
    rel = posixpath.normpath(rel) if rel else b"."
    if rel in (b".", b"..") or rel.startswith((b"../", b"/")):
        return None
    return rel
