"""Scan of an object-store root: a paginated listing turned into scan rows.

One row per object, with the conventions every stage relies on (see `add_object` and
tasks.scan.columns), gathered as columns and handed on as one record batch per page:

* path = the key relative to the root prefix (UTF-8 bytes), mtime_ns = LastModified;
* dev = 0 marks object rows, ino = `object_ino(key, etag)`, so that (dev, ino) names one
  version of one object and an unchanged object keeps its id from one scan to the next;
* folder markers (keys ending in "/") and keys with empty, "." or ".." components cannot be
  organized as files: they are kind "other" with an error, and nothing ever touches them;
* keys the name rules leave alone (storage.leave_alone: hidden, junk, under node_modules/...)
  are marked, like the local scan's, and keys under the data folder are one `dir` row. A flat
  listing cannot skip a project before it has seen its marker key: the planner finds those.

A listing costs one request per 1,000 keys (well under one request per object).
"""

from __future__ import annotations

import stat
from collections.abc import Iterator

import blake3
import pyarrow as pa

from storage.leave_alone import LeftAlone, ScanRules, for_path
from storage.objects import ObjectInfo, ObjectRoot, ObjectStore, parse_object_url
from tasks.scan.columns import ScanColumns

INO_MASK = (1 << 63) - 1
FILE_MODE = stat.S_IFREG | 0o644


def object_ino(key: str, etag: str) -> int:
    """A stable 63-bit id of one object version: blake3(key NUL etag), first 8 bytes, big-endian."""
    digest = blake3.blake3(key.encode("utf-8") + b"\0" + etag.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") & INO_MASK


def _unorganizable(rel: str) -> str | None:
    """Why a key cannot be treated as a file, or None."""
    if rel == "" or rel.endswith("/"):
        return "folder marker (key ends with '/'): left as is"
    if any(part in ("", ".", "..") for part in rel.split("/")):
        return "key has an empty, '.' or '..' component: left as is"
    return None


def add_object(rows: ScanColumns, root: ObjectRoot, info: ObjectInfo, rules: ScanRules) -> None:
    """One object's row, marked when a name rule of `rules` leaves it alone."""
    rel = root.rel(info.key)
    problem = _unorganizable(rel)
    path = rel.encode("utf-8")
    left = None
    if problem is None:
        found = for_path(path, False, rules.include_hidden, rules.exclude)
        left = found[1] if found is not None else None
    rows.add(
        path,
        "other" if problem else "file",
        info.size,
        info.mtime_ns,
        0,
        object_ino(info.key, info.etag),
        1,
        FILE_MODE,
        error=problem,
        left=left,
        etag=info.etag,
        version_id=info.version_id,
    )


def list_batches(root_url: str, rules: ScanRules = ScanRules()) -> Iterator[pa.RecordBatch]:
    """Every object under the root in key order, one record batch per listed page, except
    keys under a sealed prefix of `rules` (prefixes relative to the root ending in "/": the
    data folder when it lies in the root), which are one `dir` row each instead."""
    root = parse_object_url(root_url)
    store = ObjectStore(root)
    sealed = [(p.decode("utf-8"), detail) for p, detail in rules.sealed]
    reported: set[str] = set()
    for page in store.list_pages(store.versioned()):
        rows = ScanColumns(objects=True)
        for info in page:
            rel = root.rel(info.key)
            inside = next(((p, d) for p, d in sealed if rel.startswith(p)), None)
            if inside is None:
                add_object(rows, root, info, rules)
            elif inside[0] not in reported:
                reported.add(inside[0])
                path = inside[0].rstrip("/").encode("utf-8")
                rows.add(path, "dir", mode=stat.S_IFDIR, left=LeftAlone("data-folder", inside[1]))
        if len(rows):
            yield rows.batch()


def data_prefix_in_root(root_url: str, data_url: str) -> list[bytes]:
    """The key prefix (relative to the root) the scan must skip because the data folder is
    there, if the data folder is an object URL inside this root; else nothing.

    Two profiles name the same store when they have the same endpoint (or are the same
    profile): manifests written through one are objects under the root seen through the other.
    """
    from storage.objects import is_object_url
    from storage.settings import get_profiles

    if not is_object_url(data_url):
        return []
    root, data = parse_object_url(root_url), parse_object_url(data_url)
    profiles = get_profiles()
    same_store = root.profile == data.profile or (
        profiles[root.profile].endpoint_url == profiles[data.profile].endpoint_url
    )
    if not same_store or root.bucket != data.bucket:
        return []
    as_root = ObjectRoot(root.profile, data.bucket, data.prefix)
    if not root.contains(as_root):
        return []
    rel = root.rel(as_root.key_prefix)
    # The data folder is the root itself: only the operations the data store writes are skipped.
    return [(rel or "operations/").encode("utf-8")]
