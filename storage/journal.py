"""The move journal: append-only JSON lines, fsynced before the moves they announce.

Rule 2 of the data-safety rules: intent is durable before a change and its outcome after.
Lines are written in batches (one fsync per batch, not per file), which is safe because
recovery never trusts an intent alone: the journal plus the real state of the files decides
what was done. A crash can tear the last line; readers drop a line that does not parse.

The journal lives on local disk next to the files it describes: appends and fsync are what
make it trustworthy, and object stores offer neither.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from storage.errors import StorageError

Entry = dict[str, Any]


def encode_path(path: bytes | None) -> str | None:
    """Bytes to a JSON-safe string that decodes back to the same bytes."""
    return None if path is None else os.fsdecode(path)


def decode_path(text: str | None) -> bytes | None:
    return None if text is None else os.fsencode(text)


class Journal:
    def __init__(self, path: str) -> None:
        self.path = path
        directory = os.path.dirname(path)
        try:
            os.makedirs(directory, exist_ok=True)
            self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            size = os.fstat(self._fd).st_size
            torn = size > 0 and os.pread(self._fd, 1, size - 1) != b"\n"
        except OSError as exc:
            raise StorageError(f"cannot open journal {path}: {exc.strerror}") from exc
        # A line torn by a crash is ended first: glued to it, the next line would be lost too.
        self._pending: list[bytes] = [b"\n"] if torn else []
        _fsync_dir(directory)

    def add(self, entry: Entry) -> None:
        self._pending.append(json.dumps(entry, ensure_ascii=True).encode() + b"\n")

    def sync(self) -> None:
        """Make every added line durable."""
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            self.sync()
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def read_journal(path: str) -> list[Entry]:
    try:
        with open(path, "rb") as fh:
            lines = fh.read().split(b"\n")
    except FileNotFoundError:
        return []
    entries = []
    for line in lines:
        if not line:
            continue
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue  # a line torn by a crash: its outcome is decided from the files
    return entries


def last_phase(entries: Iterable[Entry]) -> dict[str, Entry]:
    """The latest entry of each item (by its `seq`)."""
    latest: dict[str, Entry] = {}
    for entry in entries:
        latest[entry["seq"]] = entry
    return latest


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
