"""Scan: an lstat walk of the root into Parquet shards. Never follows symlinks.

The walk does not enter what is left alone whole (tasks.leave_alone): a folder whose name or
contents say so (node_modules, a project, a Prefect home...) becomes one `dir` row with its
reason code, however many files it holds; files left alone by their name (.bashrc, .DS_Store)
are rows of their own, marked, which later stages neither classify nor hash. When the root
itself is a unit (a project), every entry at its top is such a row and nothing is entered.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pyarrow as pa

from storage import manifests
from storage.locations import DataStore
from storage.roots import check_root as check_root  # its home moved; older imports work
from tasks.leave_alone import LeftAlone, ScanRules, by_contents, by_name

STAGE = "scan"


@dataclass
class ScanEntry:
    path: bytes  # relative to the root
    kind: str
    size: int = 0
    mtime_ns: int = 0
    dev: int = 0
    ino: int = 0
    nlink: int = 0
    mode: int = 0
    link_target: bytes | None = None
    error: str | None = None
    etag: str | None = None  # object roots only (tasks.object_scan)
    version_id: str | None = None
    left_alone: str | None = None  # a reason code: what the scan left alone, and why
    rule: str | None = None

    def leave(self, rule: LeftAlone | None) -> ScanEntry:
        if rule is not None:
            self.left_alone, self.rule = rule.code, rule.detail
        return self


def display(path: bytes) -> str:
    return path.decode("utf-8", "backslashreplace")


def walk(root: bytes, rules: ScanRules = ScanRules()) -> Iterator[ScanEntry]:
    """Every entry under `root` except directories, in a deterministic order; a directory
    left alone whole is one `dir` row instead of its contents. An unreadable directory is
    one `error` entry, not the end of the walk."""
    prefix_len = len(root.rstrip(b"/")) + 1
    stack: list[tuple[bytes, os.stat_result | None]] = [(root, None)]
    while stack:
        directory, dir_st = stack.pop()
        rel_dir = directory[prefix_len:]
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            if directory == root:
                raise
            yield ScanEntry(rel_dir, "error", error=_reason(exc))
            continue
        unit = by_contents([e.name for e in entries])
        if unit is not None and dir_st is not None:
            yield _dir_row(rel_dir, dir_st, unit)
            continue
        subdirs = []
        for entry in entries:
            rel = entry.path[prefix_len:]
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                yield ScanEntry(rel, "error", error=_reason(exc))
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            # The root itself is a unit (a project): its top entries are all left alone.
            rule = (unit or rules.sealed_rule(entry.path)) if is_dir else unit
            rule = rule or by_name(entry.name, is_dir, rules.include_hidden, rules.exclude)
            if is_dir and rule is not None:
                yield _dir_row(rel, st, rule)
            elif is_dir:
                subdirs.append((entry.path, st))
            else:
                yield _entry(rel, entry.path, st).leave(rule)
        stack.extend(reversed(subdirs))


def _dir_row(rel: bytes, st: os.stat_result, rule: LeftAlone) -> ScanEntry:
    """A folder left alone whole: its own identity (a project may move by one rename)."""
    entry = ScanEntry(rel, "dir", 0, st.st_mtime_ns, st.st_dev, st.st_ino, st.st_nlink, st.st_mode)
    return entry.leave(rule)


def _entry(rel: bytes, full: bytes, st: os.stat_result) -> ScanEntry:
    mode = st.st_mode
    kind = "file" if stat.S_ISREG(mode) else "symlink" if stat.S_ISLNK(mode) else "other"
    target = None
    if kind == "symlink":
        try:
            target = os.readlink(full)
        except OSError:
            target = None
    return ScanEntry(
        rel, kind, st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino, st.st_nlink, mode, target
    )


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


@dataclass
class _ShardWriter:
    store: DataStore
    op_dir: str
    rows: int
    on_flush: Callable[[int, int], None]
    index: int = 0
    buffer: list[ScanEntry] = field(default_factory=list)

    def add(self, entry: ScanEntry) -> None:
        self.buffer.append(entry)
        if len(self.buffer) >= self.rows:
            self.flush()

    def flush(self) -> None:
        if not self.buffer and self.index > 0:
            return
        batch, self.buffer = self.buffer, []
        manifests.write_table(
            self.store, manifests.shard_path(self.op_dir, STAGE, self.index), _table(batch)
        )
        self.index += 1
        self.on_flush(len(batch), sum(e.size for e in batch if e.kind == "file"))


def _table(batch: list[ScanEntry]) -> pa.Table:
    return pa.Table.from_pydict(
        {
            "path": [e.path for e in batch],
            "path_text": [display(e.path) for e in batch],
            "kind": [e.kind for e in batch],
            "size": [e.size for e in batch],
            "mtime_ns": [e.mtime_ns for e in batch],
            "dev": [e.dev for e in batch],
            "ino": [e.ino for e in batch],
            "nlink": [e.nlink for e in batch],
            "mode": [e.mode for e in batch],
            "link_target": [e.link_target for e in batch],
            "error": [e.error for e in batch],
            "etag": [e.etag for e in batch],
            "version_id": [e.version_id for e in batch],
            "left_alone": [e.left_alone for e in batch],
            "rule": [e.rule for e in batch],
        },
        schema=manifests.SCAN,
    )


def scan_root(
    store: DataStore,
    op_dir: str,
    root: str,
    shard_rows: int,
    rules: ScanRules = ScanRules(),
    on_flush: Callable[[int, int], None] = lambda files, nbytes: None,
) -> dict[str, int]:
    """Write the scan shards of `root`; return counts. Re-running after success does nothing.

    The walk is one sequential pass (about 1 s warm for 200k files), so an interrupted scan is
    redone whole rather than resumed: its partial shards are removed first.

    An object-store root (`profile://bucket/prefix`) is listed instead of walked; the sealed
    paths of `rules` are then key prefixes relative to the root (tasks.object_scan).
    """
    from storage.objects import is_object_url

    done = manifests.done_info(store, op_dir, STAGE)
    if done is not None:
        return dict(done)
    for stale in manifests.shard_paths(store, op_dir, STAGE):
        store.remove(stale)
    if is_object_url(root):
        from tasks.object_scan import list_entries

        entries_of: Iterator[ScanEntry] = list_entries(root, rules)
        root_dev = 0
    else:
        entries_of = walk(os.fsencode(root), rules)
        root_dev = os.stat(root).st_dev
    writer = _ShardWriter(store, op_dir, shard_rows, on_flush)
    files = entries = total_bytes = errors = left_alone = 0
    for entry in entries_of:
        entries += 1
        if entry.left_alone is not None:
            left_alone += 1
        elif entry.kind == "file":
            files += 1
            total_bytes += entry.size
        elif entry.kind == "error":
            errors += 1
        writer.add(entry)
    writer.flush()
    info = {
        "shards": writer.index,
        "entries": entries,
        "files": files,  # the files to organize: those left alone are counted apart
        "bytes": total_bytes,
        "errors": errors,
        "left_alone": left_alone,
        "root_dev": root_dev,
    }
    manifests.mark_done(store, op_dir, STAGE, info)
    return info
