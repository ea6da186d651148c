"""Scan: the entries of a root into Parquet shards (the stage's entry): the backend's walk or
listing (tasks.scan.local, tasks.scan.objects) as SCAN record batches, cut into shards of
`shard_rows` rows by one writer."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from storage import manifests
from storage.leave_alone import ScanRules
from storage.locations import DataStore

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
    buffer: list[pa.RecordBatch] = field(default_factory=list)
    buffered: int = 0

    def add(self, batch: pa.RecordBatch) -> None:
        self.buffer.append(batch)
        self.buffered += batch.num_rows
        if self.buffered >= self.rows:
            table = pa.Table.from_batches(self.buffer, manifests.SCAN)
            start = 0
            while table.num_rows - start >= self.rows:
                self._write(table.slice(start, self.rows))
                start += self.rows
            rest = table.slice(start)
            self.buffer, self.buffered = rest.to_batches(), rest.num_rows

    def flush(self) -> None:
        if self.buffered or self.index == 0:
            self._write(pa.Table.from_batches(self.buffer, manifests.SCAN))
        self.buffer, self.buffered = [], 0

    def _write(self, table: pa.Table) -> None:
        path = manifests.shard_path(self.op_dir, STAGE, self.index)
        manifests.write_table(self.store, path, table.combine_chunks())
        self.index += 1
        self.on_flush(table.num_rows, _sum(table["size"], pc.equal(table["kind"], "file")))


def _sum(values: pa.ChunkedArray, where: pa.ChunkedArray) -> int:
    return int(pc.sum(pc.filter(values, where)).as_py() or 0)


def _count(info: dict[str, int], batch: pa.RecordBatch) -> None:
    """Add a batch's rows to the done-info counts: what is left alone is counted apart from
    the files to organize and the errors."""
    kept = pc.is_null(batch["left_alone"])
    files = pc.and_(kept, pc.equal(batch["kind"], "file"))
    info["entries"] += batch.num_rows
    info["left_alone"] += batch.num_rows - int(pc.sum(kept).as_py() or 0)
    info["files"] += int(pc.sum(files).as_py() or 0)
    info["bytes"] += int(pc.sum(pc.filter(batch["size"], files)).as_py() or 0)
    info["errors"] += int(pc.sum(pc.and_(kept, pc.equal(batch["kind"], "error"))).as_py() or 0)


def write_batches(
    store: DataStore,
    op_dir: str,
    batches: Iterable[pa.RecordBatch],
    shard_rows: int,
    on_flush: Callable[[int, int], None],
) -> dict[str, int]:
    """The batches into shards of `shard_rows` rows (at least one shard, maybe empty); counts."""
    writer = _ShardWriter(store, op_dir, shard_rows, on_flush)
    info = dict.fromkeys(("entries", "files", "bytes", "errors", "left_alone"), 0)
    for batch in batches:
        _count(info, batch)
        writer.add(batch)
    writer.flush()
    return {"shards": writer.index, **info}


def scan_root(
    store: DataStore,
    op_dir: str,
    backend: RootBackend,
    shard_rows: int,
    rules: ScanRules = ScanRules(),
    on_flush: Callable[[int, int], None] = lambda files, nbytes: None,
    processes: int = 1,
) -> dict[str, int]:
    """Write the scan shards of the root; return counts. Re-running after success does nothing.

    An interrupted scan is redone whole rather than resumed (a walk takes seconds): its
    partial shards are removed first. A folder is walked (tasks.scan.local, by `processes`
    at once), a bucket listed (tasks.scan.objects); the sealed paths of `rules` are absolute
    paths for a folder, key prefixes relative to a bucket root.
    """
    done = manifests.done_info(store, op_dir, STAGE)
    if done is not None:
        return dict(done)
    for stale in manifests.shard_paths(store, op_dir, STAGE):
        store.remove(stale)
    batches = backend.entries(rules, processes)  # lazy: nothing is read before the first row
    root_dev = backend.root_dev()
    counts = write_batches(store, op_dir, batches, shard_rows, on_flush)
    info = {
        "shards": counts["shards"],
        "entries": counts["entries"],
        "files": counts["files"],  # the files to organize: those left alone are counted apart
        "bytes": counts["bytes"],
        "errors": counts["errors"],
        "left_alone": counts["left_alone"],
        "root_dev": root_dev,
    }
    manifests.mark_done(store, op_dir, STAGE, info)
    return info
