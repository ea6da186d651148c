"""Scan: the entries of a root into Parquet shards (the stage's entry): the backend's walk or
listing (tasks.scan.local, tasks.scan.objects), written by one shard writer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa

from storage import manifests
from storage.locations import DataStore
from tasks.leave_alone import ScanRules
from tasks.scan.entry import ScanEntry, display

if TYPE_CHECKING:
    from tasks.backends import RootBackend

STAGE = "scan"


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
    # Each column is the ScanEntry field of its name, but path_text: the path for display.
    columns = {
        name: [display(e.path) for e in batch]
        if name == "path_text"
        else [getattr(e, name) for e in batch]
        for name in manifests.SCAN.names
    }
    return pa.Table.from_pydict(columns, schema=manifests.SCAN)


def scan_root(
    store: DataStore,
    op_dir: str,
    backend: RootBackend,
    shard_rows: int,
    rules: ScanRules = ScanRules(),
    on_flush: Callable[[int, int], None] = lambda files, nbytes: None,
) -> dict[str, int]:
    """Write the scan shards of the root; return counts. Re-running after success does nothing.

    The walk is one sequential pass (about 1 s warm for 200k files), so an interrupted scan is
    redone whole rather than resumed: its partial shards are removed first.

    A folder is walked (tasks.scan.local), a bucket listed (tasks.scan.objects); the sealed
    paths of `rules` are absolute paths for a folder, key prefixes relative to a bucket root.
    """
    done = manifests.done_info(store, op_dir, STAGE)
    if done is not None:
        return dict(done)
    for stale in manifests.shard_paths(store, op_dir, STAGE):
        store.remove(stale)
    entries_of = backend.entries(rules)  # lazy: nothing is read before the first row
    root_dev = backend.root_dev()
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
