"""Scan: an lstat walk of the root into Parquet shards. Never follows symlinks."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pyarrow as pa

from storage import manifests
from storage.locations import DataStore
from storage.roots import check_root as check_root  # its home moved; older imports work

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


def display(path: bytes) -> str:
    return path.decode("utf-8", "backslashreplace")


def walk(root: bytes, skip: frozenset[bytes] = frozenset()) -> Iterator[ScanEntry]:
    """Every entry under `root` except directories, in a deterministic order.

    `skip` holds absolute paths of directories not to enter (the data folder, when it lies
    inside the root). An unreadable directory is one `error` entry, not the end of the walk.
    """
    stack = [root]
    prefix_len = len(root.rstrip(b"/")) + 1
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            if directory == root:
                raise
            yield ScanEntry(directory[prefix_len:], "error", error=_reason(exc))
            continue
        subdirs = []
        for entry in entries:
            full = entry.path
            rel = full[prefix_len:]
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                yield ScanEntry(rel, "error", error=_reason(exc))
                continue
            if stat.S_ISDIR(st.st_mode):
                if full not in skip:
                    subdirs.append(full)
                continue
            yield _entry(rel, full, st)
        stack.extend(reversed(subdirs))


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
        },
        schema=manifests.SCAN,
    )


def scan_root(
    store: DataStore,
    op_dir: str,
    root: str,
    shard_rows: int,
    skip: frozenset[bytes] = frozenset(),
    on_flush: Callable[[int, int], None] = lambda files, nbytes: None,
) -> dict[str, int]:
    """Write the scan shards of `root`; return counts. Re-running after success does nothing.

    The walk is one sequential pass (about 1 s warm for 200k files), so an interrupted scan is
    redone whole rather than resumed: its partial shards are removed first.

    An object-store root (`profile://bucket/prefix`) is listed instead of walked; `skip` then
    holds key prefixes relative to the root (tasks.object_scan).
    """
    from storage.objects import is_object_url

    done = manifests.done_info(store, op_dir, STAGE)
    if done is not None:
        return dict(done)
    for stale in manifests.shard_paths(store, op_dir, STAGE):
        store.remove(stale)
    if is_object_url(root):
        from tasks.object_scan import list_entries

        entries_of: Iterator[ScanEntry] = list_entries(root, skip)
    else:
        entries_of = walk(os.fsencode(root), skip)
    writer = _ShardWriter(store, op_dir, shard_rows, on_flush)
    files = entries = total_bytes = errors = 0
    for entry in entries_of:
        entries += 1
        if entry.kind == "file":
            files += 1
            total_bytes += entry.size
        elif entry.kind == "error":
            errors += 1
        writer.add(entry)
    writer.flush()
    info = {
        "shards": writer.index,
        "entries": entries,
        "files": files,
        "bytes": total_bytes,
        "errors": errors,
    }
    manifests.mark_done(store, op_dir, STAGE, info)
    return info
