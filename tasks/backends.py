"""The root backend: what a stage does differently on a folder and on a bucket, chosen once.

`backend_for(url)` is the one place that looks at a root's URL: the organize flow calls it
once per operation and hands the backend to every stage, which then never asks what kind of
root it has. Each method is one stage's reads (scan/local.py or scan/objects.py, and so on);
what the stages share (work lists, shard writing, caches, planning) stays in their stage.py.

The two differ where the stores do:

* a folder is walked with lstat and read in the process pool; a bucket is listed and read
  with GETs on s3fs's event loop (s3fs does not survive a fork), so it takes no processes;
* an object's ino is a hash of its key and ETag (tasks.scan.objects), so an unchanged ino is
  unchanged content whatever its LastModified says; a file's ino is only its inode;
* a folder moves whole by one rename; a bucket has no folders to move.

A backend is a small frozen value (its URL), so it crosses Prefect's task runners and Dask
whole; it opens nothing until a method runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from storage.leave_alone import ScanRules
from storage.locations import DataStore
from storage.objects import is_object_url
from tasks.apply.stage import ApplyBackend, BucketApply, LocalApply
from tasks.classify import local as classify_local
from tasks.classify import objects as classify_objects
from tasks.classify.content import Classification
from tasks.hashes import columns as hash_columns
from tasks.hashes import local as hash_local
from tasks.hashes import objects as hash_objects
from tasks.scan import local as scan_local
from tasks.scan import objects as scan_objects

if TYPE_CHECKING:
    import pyarrow as pa

OnChunk = Callable[[int, int], None]
Rows = list[dict[str, Any]]
Digests = hash_columns.Hashed
Classes = list[Classification]
DATA_FOLDER = "fileorg data folder"


class RootBackend(Protocol):
    """A root to organize, by kind of store (see the module docstring)."""

    @property
    def url(self) -> str: ...

    @property
    def folders_move(self) -> bool:
        """A folder left alone whole (a project) may move by one rename."""

    @property
    def ino_names_content(self) -> bool:
        """An unchanged (path, size, ino) is unchanged content, whatever the mtime says."""

    @property
    def whole_in_prefix(self) -> int:
        """Up to this size the prefix pass digests the whole content (the full pass skips it)."""

    def processes(self, configured: int) -> int:
        """How many processes read content, given the configured number."""

    def sealed(
        self, store: DataStore, folders: Sequence[tuple[bytes, str]]
    ) -> list[tuple[bytes, str]]:
        """What the scan never enters, with why: the data folder when it lies in the root,
        and the local `folders` (Prefect's home...) where the root can hold them."""

    def root_dev(self) -> int:
        """The root's device (0 for a bucket): a move within it is a rename."""

    def entries(self, rules: ScanRules, processes: int) -> Iterator[pa.RecordBatch]:
        """Every entry of the root, in a deterministic order: the scan's rows, as batches."""

    def scanned_etags(self, store: DataStore, op_dir: str, inputs_path: str) -> dict[bytes, str]:
        """The scanned ETag of each row of a hash work list (a read must match it)."""

    def hash_rows(self, full: bool, rows: pa.Table, processes: int, on_chunk: OnChunk) -> Digests:
        """Digests and errors of each work-list row (path, size, etag), in order, as columns:
        of the first PREFIX_BYTES, or of all of it when `full`."""

    def classify_rows(self, rows: Rows, processes: int, on_chunk: OnChunk) -> Classes:
        """Category and date of each scan row (path, size, mtime_ns, etag), in order."""

    def apply(self) -> ApplyBackend:
        """What apply and rollback do on this root: its mover and the steps around it."""


@dataclass(frozen=True)
class LocalBackend:
    """A folder on this machine."""

    url: str
    folders_move: ClassVar[bool] = True
    ino_names_content: ClassVar[bool] = False
    whole_in_prefix: ClassVar[int] = hash_local.PREFIX_BYTES

    def processes(self, configured: int) -> int:
        return configured

    def sealed(
        self, store: DataStore, folders: Sequence[tuple[bytes, str]]
    ) -> list[tuple[bytes, str]]:
        # Absolute paths: the walk compares them with each folder it would enter.
        data = [(os.fsencode(os.path.realpath(store.base)), DATA_FOLDER)] if store.is_local else []
        return data + list(folders)

    def root_dev(self) -> int:
        return os.stat(self.url).st_dev

    def entries(self, rules: ScanRules, processes: int) -> Iterator[pa.RecordBatch]:
        return scan_local.batches(os.fsencode(self.url), rules, processes)

    def scanned_etags(self, store: DataStore, op_dir: str, inputs_path: str) -> dict[bytes, str]:
        return {}  # a file has no ETag: the fstat in the read checks it

    def hash_rows(self, full: bool, rows: pa.Table, processes: int, on_chunk: OnChunk) -> Digests:
        return hash_columns.hash_table(self.url, full, rows, processes, on_chunk)

    def classify_rows(self, rows: Rows, processes: int, on_chunk: OnChunk) -> Classes:
        return classify_local.classify_rows(self.url, rows, processes, on_chunk)

    def apply(self) -> ApplyBackend:
        return LocalApply(self.url)


@dataclass(frozen=True)
class ObjectBackend:
    """A prefix of a bucket (`profile://bucket/prefix`)."""

    url: str
    folders_move: ClassVar[bool] = False
    ino_names_content: ClassVar[bool] = True

    @property
    def whole_in_prefix(self) -> int:
        # Read when asked, as the prefix pass reads it (tests set it smaller).
        return max(hash_local.PREFIX_BYTES, hash_objects.WHOLE_OBJECT_BYTES)

    def processes(self, configured: int) -> int:
        return 1  # requests wait on s3fs's event loop, not in the process pool

    def sealed(
        self, store: DataStore, folders: Sequence[tuple[bytes, str]]
    ) -> list[tuple[bytes, str]]:
        # Key prefixes relative to the root; local folders cannot be in a bucket.
        return [(p, DATA_FOLDER) for p in scan_objects.data_prefix_in_root(self.url, store.url)]

    def root_dev(self) -> int:
        return 0

    def entries(self, rules: ScanRules, processes: int) -> Iterator[pa.RecordBatch]:
        return scan_objects.list_batches(self.url, rules)  # pages: one request at a time

    def scanned_etags(self, store: DataStore, op_dir: str, inputs_path: str) -> dict[bytes, str]:
        return hash_objects.scanned_etags(store, op_dir, inputs_path)

    def hash_rows(self, full: bool, rows: pa.Table, processes: int, on_chunk: OnChunk) -> Digests:
        return hash_objects.hash_rows(self.url, full, rows, on_chunk)

    def classify_rows(self, rows: Rows, processes: int, on_chunk: OnChunk) -> Classes:
        return classify_objects.classify_rows(self.url, rows, on_chunk)

    def apply(self) -> ApplyBackend:
        return BucketApply(self.url)


def backend_for(root_url: str) -> RootBackend:
    """The backend of a root: the one place that tells a bucket from a folder by its URL."""
    return ObjectBackend(root_url) if is_object_url(root_url) else LocalBackend(root_url)
