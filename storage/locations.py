"""Where bytes at rest live: the data folder, resolved by fsspec so that S3 needs no rewrite.

A file written here is written whole or not at all: local files go to a temporary name beside
the target and are renamed into place (the checkpoint rule: a shard that exists is complete);
object stores make a single PUT atomic on their own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import BinaryIO

from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from storage.errors import OperationNotFound, StorageError

COPY_CHUNK = 1 << 20


@dataclass(frozen=True)
class DataStore:
    """The data folder (FILEORG_DATA_URL) and the operations inside it."""

    url: str

    @cached_property
    def _resolved(self) -> tuple[AbstractFileSystem, str]:
        from storage.objects import filesystem, is_object_url, parse_object_url

        if is_object_url(self.url):  # s3://, r2://...: through the operator's storage profile
            root = parse_object_url(self.url)
            return filesystem(root.profile), f"{root.bucket}/{root.prefix}".rstrip("/")
        fs, base = url_to_fs(self.url)
        return fs, base.rstrip("/")

    @property
    def fs(self) -> AbstractFileSystem:
        return self._resolved[0]

    @property
    def base(self) -> str:
        return self._resolved[1]

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    def operations_dir(self) -> str:
        return f"{self.base}/operations"

    def operation_dir(self, operation_id: str) -> str:
        return f"{self.operations_dir()}/{canonical_operation_id(operation_id)}"

    def duckdb_path(self, path: str) -> str:
        """The name DuckDB reads `path` by: plain for local files, protocol-qualified otherwise
        (the fsspec filesystem is registered on the connection, see storage.queries)."""
        if self.is_local:
            return path
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return f"{protocol}://{path}"

    def write_bytes(self, path: str, data: bytes) -> None:
        try:
            if self.is_local:
                _write_local_atomic(path, data)
            else:
                self.fs.pipe_file(path, data)
        except OSError as exc:
            raise StorageError(f"cannot write {path}: {exc}") from exc

    def write_file(self, path: str, local: Path) -> None:
        """`local`'s bytes as `path`, as write_bytes writes them, read in chunks: a listing
        manifest's file at a million rows is tens of MB, which write_bytes(read_bytes())
        held in the process beside DuckDB's memory at the run's peak."""
        try:
            if self.is_local:
                with local.open("rb") as source:
                    _write_local_atomic(path, source)
            else:
                self.fs.put_file(str(local), path)
        except OSError as exc:
            raise StorageError(f"cannot write {path}: {exc}") from exc

    def read_bytes(self, path: str) -> bytes:
        try:
            data: bytes = self.fs.cat_file(path)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc}") from exc
        return data

    def exists(self, path: str) -> bool:
        return bool(self.fs.exists(path))

    def glob(self, pattern: str) -> list[str]:
        return sorted(str(p) for p in self.fs.glob(pattern))

    def remove(self, path: str) -> None:
        if self.exists(path):
            self.fs.rm(path, recursive=True)


def canonical_operation_id(operation_id: str) -> str:
    """Operation ids are UUIDs; anything else cannot name an operation (nor escape the folder)."""
    try:
        return str(uuid.UUID(operation_id))
    except (ValueError, AttributeError, TypeError):
        raise OperationNotFound(str(operation_id)) from None


def _write_local_atomic(path: str, data: bytes | BinaryIO) -> None:
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        with os.fdopen(fd, "wb") as fh:
            if isinstance(data, bytes):
                fh.write(data)
            else:
                shutil.copyfileobj(data, fh, COPY_CHUNK)
            fh.flush()
            os.fsync(fh.fileno())
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
