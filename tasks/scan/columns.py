"""The scan's rows as columns: one list per column of storage.manifests.SCAN, no object per row.

The conventions every later stage relies on: `path` is relative to the root (bytes, never
decoded; `path_text` is its display form); a local row carries lstat's fields (its owner too,
uid and gid), an object row dev = 0, an ino made of its key and ETag (tasks.scan.objects) and
no owner (null uid and gid, as an error row); `left_alone` names the rule that keeps later
stages away (storage.leave_alone) and `rule` what it saw. Both backends append here and hand
the stage Arrow record batches of the SCAN schema.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pyarrow as pa

from storage import manifests
from storage.leave_alone import LeftAlone


def display(path: bytes) -> str:
    return path.decode("utf-8", "backslashreplace")


# Columns only object rows fill (an ETag, a version id) and only local rows fill (an owner).
_OBJECT = ("etag", "version_id")
_LOCAL = ("uid", "gid")


class ScanColumns:
    """Rows being gathered, column by column. The walk appends to the lists directly in its
    hot loop; `add` is for the rarer rows (errors, folders left alone, objects)."""

    __slots__ = (
        "dev", "error", "etag", "gid", "ino", "kind", "left_alone", "link_target", "mode",
        "mtime_ns", "nlink", "objects", "path", "rule", "size", "uid", "version_id",
    )  # fmt: skip

    def __init__(self, objects: bool = False) -> None:
        # Only object rows have an ETag and a version id: a folder's are nulls, never stored.
        self.objects = objects
        self.path: list[bytes] = []
        self.kind: list[str] = []
        self.size: list[int] = []
        self.mtime_ns: list[int] = []
        self.dev: list[int] = []
        self.ino: list[int] = []
        self.nlink: list[int] = []
        self.mode: list[int] = []
        self.uid: list[int | None] = []  # local rows only: an object has no owner
        self.gid: list[int | None] = []
        self.link_target: list[bytes | None] = []
        self.error: list[str | None] = []
        self.etag: list[str | None] = []  # object roots only (tasks.scan.objects)
        self.version_id: list[str | None] = []
        self.left_alone: list[str | None] = []  # a reason code: what was left alone, and why
        self.rule: list[str | None] = []

    def __len__(self) -> int:
        return len(self.path)

    def add(
        self,
        path: bytes,
        kind: str,
        size: int = 0,
        mtime_ns: int = 0,
        dev: int = 0,
        ino: int = 0,
        nlink: int = 0,
        mode: int = 0,
        uid: int | None = None,
        gid: int | None = None,
        *,
        link_target: bytes | None = None,
        error: str | None = None,
        left: LeftAlone | None = None,
        etag: str | None = None,
        version_id: str | None = None,
    ) -> None:
        self.path.append(path)
        self.kind.append(kind)
        self.size.append(size)
        self.mtime_ns.append(mtime_ns)
        self.dev.append(dev)
        self.ino.append(ino)
        self.nlink.append(nlink)
        self.mode.append(mode)
        if not self.objects:
            self.uid.append(uid)
            self.gid.append(gid)
        self.link_target.append(link_target)
        self.error.append(error)
        if self.objects:
            self.etag.append(etag)
            self.version_id.append(version_id)
        self.left_alone.append(left.code if left is not None else None)
        self.rule.append(left.detail if left is not None else None)

    def file_appender(self) -> Callable[[bytes, os.stat_result, LeftAlone | None], None]:
        """`add` of a regular file from its lstat, for the walk's hot loop: the lists' appends
        bound once (a folder's worth of files, not an attribute lookup per column per file)."""
        path, kind, size, mtime, dev = (self.path.append, self.kind.append, self.size.append,
                                        self.mtime_ns.append, self.dev.append)  # fmt: skip
        ino, nlink, mode, target = (self.ino.append, self.nlink.append, self.mode.append,
                                    self.link_target.append)  # fmt: skip
        error, code, rule = self.error.append, self.left_alone.append, self.rule.append
        uid, gid = self.uid.append, self.gid.append
        assert not self.objects  # an object row has an ETag: add() it

        def append(rel: bytes, st: os.stat_result, left: LeftAlone | None) -> None:
            path(rel)
            kind("file")
            size(st.st_size)
            mtime(st.st_mtime_ns)
            dev(st.st_dev)
            ino(st.st_ino)
            nlink(st.st_nlink)
            mode(st.st_mode)
            uid(st.st_uid)
            gid(st.st_gid)
            target(None)
            error(None)
            if left is None:
                code(None)
                rule(None)
            else:
                code(left.code)
                rule(left.detail)

        return append

    def batch(self) -> pa.RecordBatch:
        """The rows so far as one record batch of the SCAN schema."""
        n = len(self.path)
        columns: list[pa.Array] = []
        for field in manifests.SCAN:
            if field.name == "path_text":
                columns.append(text_of(columns[0]))
            elif field.name in (_LOCAL if self.objects else _OBJECT):
                columns.append(pa.nulls(n, field.type))
            else:
                columns.append(pa.array(getattr(self, field.name), field.type))
        return pa.RecordBatch.from_arrays(columns, schema=manifests.SCAN)


def text_of(paths: pa.Array) -> pa.Array:
    """`display` of each path: Arrow's UTF-8 check (as strict as Python's) decodes a batch of
    valid names at once; a batch holding another name is decoded name by name."""
    try:
        return paths.cast(pa.string())
    except pa.ArrowInvalid:
        return pa.array([display(p) for p in paths.to_pylist()], pa.string())
