"""A root to organize, on either backend, for contract tests: one test, two backends.

`TreeRoot` is what the `root` fixture (tests/tasks/conftest.py) yields: the root's URL, as a
user would pass it, and helpers that write, read, list, stat and remove files by their path
relative to the root. `LocalRoot` is a temporary folder; `BucketRoot` is a prefix of a bucket
on moto's S3 server, reached with boto3 directly (never through storage.objects, so that the
helpers do not trust the code under test).

Relative paths are bytes or str; a bucket key is UTF-8, so a name that is not cannot exist
there. What one backend cannot have (symlinks, hard links, chosen mtimes on objects) skips
the test on that backend, with the reason, instead of pretending.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# 2019-04-12 15:30:00 UTC, the trees' base time (tests/trees.py).
BASE_MTIME_NS = 1_555_083_000 * 10**9


@dataclass(frozen=True)
class FileStat:
    """What a scan must report for a file: its size and its modification time."""

    size: int
    mtime_ns: int


def _bytes(rel: bytes | str) -> bytes:
    return rel if isinstance(rel, bytes) else rel.encode("utf-8")


class TreeRoot:
    """The interface shared by both backends (see the module docstring)."""

    kind: str  # "local" or "bucket": the id of the parametrized test
    url: str  # the root as a user gives it: a folder path or an s3:// URL
    is_object = False
    dev = 0  # the device a scan reports for the root (a bucket has none)

    def write(self, rel: bytes | str, data: bytes, mtime_ns: int | None = None) -> None:
        raise NotImplementedError

    def read(self, rel: bytes | str) -> bytes:
        raise NotImplementedError

    def exists(self, rel: bytes | str) -> bool:
        raise NotImplementedError

    def files(self) -> list[bytes]:
        """Every file under the root, relative, sorted."""
        raise NotImplementedError

    def stat(self, rel: bytes | str) -> FileStat:
        raise NotImplementedError

    def remove(self, rel: bytes | str) -> None:
        raise NotImplementedError

    def symlink(self, rel: bytes | str, target: bytes | str) -> None:
        pytest.skip(f"a {self.kind} root has no symlinks")

    def hardlink(self, rel: bytes | str, existing: bytes | str) -> None:
        pytest.skip(f"a {self.kind} root has no hard links")

    def snapshot(self) -> dict[bytes, bytes]:
        """Every file and its content: equal snapshots mean nothing changed."""
        return {rel: self.read(rel) for rel in self.files()}


class LocalRoot(TreeRoot):
    kind = "local"

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.url = str(path)
        self.dev = os.stat(path).st_dev

    def full(self, rel: bytes | str) -> bytes:
        return os.fsencode(self.path) + b"/" + _bytes(rel)

    def write(self, rel: bytes | str, data: bytes, mtime_ns: int | None = None) -> None:
        full = self.full(rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "xb") as out:
            out.write(data)
        if mtime_ns is not None:
            os.utime(full, ns=(mtime_ns, mtime_ns))

    def read(self, rel: bytes | str) -> bytes:
        with open(self.full(rel), "rb") as src:
            return src.read()

    def exists(self, rel: bytes | str) -> bool:
        """A file or a link is there (a folder is not a file)."""
        try:
            return not stat.S_ISDIR(os.lstat(self.full(rel)).st_mode)
        except FileNotFoundError:
            return False

    def files(self) -> list[bytes]:
        base = os.fsencode(self.path)
        found = []
        for folder, _dirs, names in os.walk(base):
            for name in names:
                found.append(os.path.join(folder, name)[len(base) + 1 :])
        return sorted(found)

    def stat(self, rel: bytes | str) -> FileStat:
        st = os.lstat(self.full(rel))
        return FileStat(st.st_size, st.st_mtime_ns)

    def remove(self, rel: bytes | str) -> None:
        os.unlink(self.full(rel))

    def symlink(self, rel: bytes | str, target: bytes | str) -> None:
        full = self.full(rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        os.symlink(_bytes(target), full)

    def hardlink(self, rel: bytes | str, existing: bytes | str) -> None:
        full = self.full(rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        os.link(self.full(existing), full)


class BucketRoot(TreeRoot):
    kind = "bucket"
    is_object = True

    def __init__(self, client: Any, bucket: str, prefix: str = "root") -> None:
        self.client, self.bucket, self.prefix = client, bucket, prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}"

    def key(self, rel: bytes | str) -> str:
        return f"{self.prefix}/{_bytes(rel).decode('utf-8')}"

    def write(self, rel: bytes | str, data: bytes, mtime_ns: int | None = None) -> None:
        if mtime_ns is not None:
            pytest.skip("an object's mtime is the store's LastModified: it cannot be chosen")
        if self.exists(rel):
            raise FileExistsError(self.key(rel))
        self.client.put_object(Bucket=self.bucket, Key=self.key(rel), Body=data)

    def read(self, rel: bytes | str) -> bytes:
        answer = self.client.get_object(Bucket=self.bucket, Key=self.key(rel))
        return bytes(answer["Body"].read())

    def exists(self, rel: bytes | str) -> bool:
        found = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.key(rel), MaxKeys=1)
        return any(item["Key"] == self.key(rel) for item in found.get("Contents", []))

    def files(self) -> list[bytes]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix}/"
        )
        skip = len(self.prefix) + 1
        keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
        return sorted(key[skip:].encode("utf-8") for key in keys)

    def stat(self, rel: bytes | str) -> FileStat:
        """From the listing, as a scan sees it (a HEAD's Last-Modified drops the milliseconds)."""
        found = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.key(rel), MaxKeys=1)
        item = next(i for i in found.get("Contents", []) if i["Key"] == self.key(rel))
        modified = item["LastModified"]
        mtime_ns = int(modified.timestamp()) * 10**9 + modified.microsecond * 1000
        return FileStat(int(item["Size"]), mtime_ns)

    def remove(self, rel: bytes | str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key(rel))
