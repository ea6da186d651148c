"""Parquet manifests: one schema per stage, shards written whole or not at all.

Layout of an operation folder:

    operation.json                 parameters, status, stage timings (storage.operations)
    scan/part-00000.parquet        one row per entry under the root
    scan/_SUCCESS                  the stage finished; its shards are all there
    prefix/_inputs/part-*.parquet  work lists made once, so a resumed run hashes the same shards
    prefix/part-*.parquet
    hash/_inputs/part-*.parquet, hash/part-*.parquet
    classify/part-*.parquet
    plan/part-*.parquet
    report.json

Paths are stored as raw bytes (`binary`), relative to the root, so that names which are not
UTF-8 survive exactly; `path_text` is a lossy display copy for searching and printing only.
"""

from __future__ import annotations

import io
import json
from typing import Any

import blake3
import pyarrow as pa
import pyarrow.parquet as pq

from storage.locations import DataStore

# blake3 of no bytes: the digest every empty file has (the hash stage never reads them).
EMPTY_DIGEST = blake3.blake3(b"").digest()

SCAN = pa.schema(
    [
        ("path", pa.binary()),
        ("path_text", pa.string()),
        # file | symlink | other | error | dir (a folder left alone whole, never entered)
        ("kind", pa.string()),
        ("size", pa.int64()),
        ("mtime_ns", pa.int64()),
        ("dev", pa.uint64()),
        ("ino", pa.uint64()),
        ("nlink", pa.int64()),
        ("mode", pa.int64()),
        # The owner (st_uid, st_gid) of a local entry; null for an object (a bucket's objects
        # have none), an error, and in shards written before the columns existed
        # (storage.queries.connection.SCAN_ADDED): a hard link has one owner.
        ("uid", pa.int64()),
        ("gid", pa.int64()),
        ("link_target", pa.binary()),
        ("error", pa.string()),
        # Object roots only (null on local disk): the listed ETag (quotes stripped) and the
        # version id on a versioned bucket. Apply re-checks objects by ETag and size.
        ("etag", pa.string()),
        ("version_id", pa.string()),
        # What the scan left alone (a reason code, below) and what its rule saw; null for
        # the entries to organize. Later stages neither read nor hash those entries.
        ("left_alone", pa.string()),
        ("rule", pa.string()),
    ]
)

# Work lists and results of the two hashing passes share one shape.
HASH_INPUT = pa.schema(
    [
        ("dev", pa.uint64()),
        ("ino", pa.uint64()),
        ("size", pa.int64()),
        ("mtime_ns", pa.int64()),
        ("path", pa.binary()),
        ("cached", pa.binary()),  # digest reused from an earlier operation, or null
    ]
)
HASH = pa.schema(
    [
        ("dev", pa.uint64()),
        ("ino", pa.uint64()),
        ("size", pa.int64()),
        ("digest", pa.binary()),
        ("cached", pa.bool_()),
        ("error", pa.string()),
    ]
)

CLASSIFY = pa.schema(
    [
        ("path", pa.binary()),
        ("category", pa.string()),
        ("ext", pa.string()),
        ("date", pa.timestamp("us")),
        ("date_source", pa.string()),
        ("year", pa.int32()),
        ("month", pa.int32()),
        ("error", pa.string()),
        # Audio tags (album artist, else artist; album), read by tasks.classify.tags.
        ("artist", pa.string()),
        ("album", pa.string()),
        # blake3 of the first min(size, 4096) bytes, as the prefix pass digests them
        # (tasks.hashes.local), when classify read them from offset 0 of a file that still had
        # the scanned size; null otherwise (and in shards written before it existed).
        ("prefix", pa.binary()),
    ]
)

PLAN = pa.schema(
    [
        ("src", pa.binary()),
        ("dst", pa.binary()),  # null when nothing moves
        ("action", pa.string()),  # move | keep | skip | quarantine | hardlink
        ("reason", pa.string()),
        ("size", pa.int64()),
        ("mtime_ns", pa.int64()),
        ("dev", pa.uint64()),
        ("ino", pa.uint64()),
        ("category", pa.string()),
        ("year", pa.int32()),
        ("digest", pa.binary()),
        ("link_to", pa.binary()),  # hardlink: the kept copy's final path
        ("reason_code", pa.string()),  # one of REASON_CODES: what `reason` says, for filters
        ("kind", pa.string()),  # file | dir (a folder moved or left alone whole) | symlink...
        ("unit", pa.binary()),  # the folder left alone that holds this entry, if any
        ("twin", pa.binary()),  # duplicates: the kept copy, or the copy at the destination
        ("date_source", pa.string()),  # exif | media | filename | mtime | none
    ]
)

# Why a plan row does what it does. The first group moves or keeps files in the layout; the
# rest leave an entry where it is, each for the reason its name says.
REASON_CODES: dict[str, str] = {
    "organized": "moved where the layout puts it",
    "renamed": "moved where the layout puts it, under a free name (its own was taken)",
    "album": "moved with its album folder",
    "sidecar": "follows its main file",
    "duplicate-kept": "the kept copy of a duplicate group, organized",
    "duplicate-quarantined": "a duplicate copy, moved to .duplicates/",
    "duplicate-linked": "a duplicate copy, replaced by a hard link to the kept copy",
    "project-moved": "a project, moved whole to Projects/",
    "already-in-place": "already where the layout puts it",
    "subfolder": "inside a subfolder (--keep-subfolders sorts only the top level)",
    "duplicate": "a duplicate whose kept copy takes its destination: left where it is",
    "not-linked": "a duplicate copy of another owner or mode than the kept copy's: a link has"
    " one owner and one mode, so it is left where it is, not linked",
    "conflict": "its destination cannot be used: left where it is",
    "hidden": "a hidden entry (--include-hidden opts in)",
    "config": "a dot-folder or a dot-file that configures something (.bashrc): never sorted",
    "junk": "OS junk (.DS_Store, Thumbs.db, desktop.ini, ._*)",
    "download": "an unfinished download (*.part, *.crdownload, *.download...)",
    "tool-folder": "a tool or state folder (node_modules, virtualenv, cache, trash...)",
    "credentials": "a credentials folder (.ssh, .gnupg)",
    "data-folder": "application data: fileorg's data folder, a Prefect home",
    "project": "a project, kept whole (--projects move moves it to Projects/)",
    "excluded": "matches --exclude",
    "symlink": "a symlink: never followed",
    "special": "not a regular file (a FIFO, socket or device)",
    "unreadable": "cannot be read by the user scanning (its permissions, or a failed read)",
    "link-target": "the target of a symlink in the root: moved, the link would dangle",
    "read-only-folder": "in a folder the user scanning cannot change: apply could not move it",
}
LEFT_ALONE_CODES = (
    "hidden", "config", "junk", "download", "tool-folder", "credentials", "data-folder", "project",
    "excluded", "symlink", "special", "unreadable", "link-target", "read-only-folder",
)  # fmt: skip

SUCCESS = "_SUCCESS"


def shard_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def shard_path(op_dir: str, stage: str, index: int) -> str:
    return f"{op_dir}/{stage}/{shard_name(index)}"


# Columns whose values are nearly all distinct (paths, digests, inodes, sizes, times): a
# dictionary only costs Arrow's writer its tries at one (a 20,000-row scan shard took 18.6 ms
# of CPU written with dictionaries everywhere, 9.7 without these, and is smaller).
DISTINCT = frozenset(
    {"path", "path_text", "link_target", "digest", "cached", "prefix", "ino", "size", "mtime_ns"}
)


def write_table(store: DataStore, path: str, table: pa.Table) -> None:
    buffer = io.BytesIO()
    dictionary = [name for name in table.column_names if name not in DISTINCT]
    pq.write_table(table, buffer, compression="zstd", use_dictionary=dictionary)
    store.write_bytes(path, buffer.getvalue())


def read_table(store: DataStore, path: str, columns: list[str] | None = None) -> pa.Table:
    """The shard read whole, then parsed from memory that Arrow owns. Parsed from the store's
    Python file object, Arrow's IO threads held buffers of Python bytes, and the last of them
    could be released in such a thread just after read_table returned: a CLI exiting at that
    moment aborted ("terminate called without an active exception", the thread unable to take
    the GIL during finalization; about one first run in nine on a loaded machine)."""
    return table_of(store.read_bytes(path), columns)


def table_of(data: bytes, columns: list[str] | None = None) -> pa.Table:
    """A shard's bytes parsed (read_table's part), from a copy that Arrow owns. On one thread:
    a shard is a few MB at most, and Arrow's threads cost 2.6x the CPU reading one (a 20,000-row
    scan shard: 12.8 ms against 4.9 on 2 busy cores) for no wall time saved."""
    owned = pa.BufferOutputStream()
    owned.write(data)
    return pq.read_table(pa.BufferReader(owned.getvalue()), columns=columns, use_threads=False)


def shard_paths(store: DataStore, op_dir: str, stage: str) -> list[str]:
    return store.glob(f"{op_dir}/{stage}/part-*.parquet")


def mark_done(store: DataStore, op_dir: str, stage: str, info: dict[str, Any]) -> None:
    store.write_bytes(f"{op_dir}/{stage}/{SUCCESS}", json.dumps(info).encode())


def done_info(store: DataStore, op_dir: str, stage: str) -> dict[str, Any] | None:
    path = f"{op_dir}/{stage}/{SUCCESS}"
    if not store.exists(path):
        return None
    info: dict[str, Any] = json.loads(store.read_bytes(path))
    return info


REPORT = "report.json"  # beside the stage folders: what the report stage built, read by all


def write_report(store: DataStore, op_dir: str, report: dict[str, Any]) -> None:
    """report.json, written whole (DataStore.write_bytes) so a reader never sees half of it."""
    store.write_bytes(f"{op_dir}/{REPORT}", json.dumps(report, indent=1).encode())


def read_report(store: DataStore, op_dir: str) -> dict[str, Any] | None:
    """The report of an operation, or None before its report stage finished."""
    path = f"{op_dir}/{REPORT}"
    if not store.exists(path):
        return None
    data: dict[str, Any] = json.loads(store.read_bytes(path))
    return data
