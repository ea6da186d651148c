"""The moves of a finished local apply journal as one compact file beside it, for rollback.

Reading a journal of 20,000 moves back into entries (json) and the entries into undo items
was most of what a rollback costs beyond the moves themselves. When one run of apply carried
out every item of a fresh journal as a plain rename (no skip, no copy, no link, nothing
resumed or settled), it writes `{journal}.moves`: the rows (seq, src, dst, dev, ino, size,
mtime_ns) of its moves in the order it announced them, as marshal data. Then it journals
one last entry, `sealed`, with that file's length and SHA-256 and the journal's length
before the entry.

The journal stays the record: rollback uses the file only when the journal's last line is
that entry, the journal's length is the one it names, and the file's length and digest
match (`sealed_moves`); in any other case (a crash between the two writes, a line added
since, a file torn, changed or missing, an unreadable one) it reads the journal as before.
The file is not fsynced: a crash can lose it or tear it, and then its digest does not match.
It is written as `{journal}.moves.tmp` and renamed into place; a kill -9 between the two leaves
that temporary, and one between the rename and the seal's write a `.moves` no seal vouches
for (its journal, resumed, is never sealed again). Neither is ever read (only a sealed,
matching `.moves` is), so the next apply or rollback of the journal removes both
(`discard_leftover`): nothing else ever would.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import marshal
import os
from typing import Any

from storage import collector
from storage.journal import Entry
from storage.objects import is_object_url

SUFFIX = ".moves"
TMP = ".tmp"
PHASE = "sealed"
SEQ = "sealed"
_FORMAT = "fileorg-moves-1"
_TAIL = 4096  # the sealed entry is about 200 bytes

# (seq, src, dst, dev, ino, size, mtime_ns): a move apply carried out, dev and ino as it left
# the file (its identity for the undo), size and mtime_ns as the scan saw them.
Row = tuple[str, bytes, bytes, int, int, int, int]


def moves_path(journal_path: str) -> str:
    return journal_path + SUFFIX


def write_moves(journal_path: str, rows: list[Row]) -> Entry:
    """Write the moves file of `journal_path` and return the entry that seals it (to journal
    as the journal's last line, once the file is written)."""
    data = marshal.dumps((_FORMAT, rows))
    path, tmp = moves_path(journal_path), moves_path(journal_path) + TMP
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    os.replace(tmp, path)  # our own file: an older one (never sealed) is replaced
    return {
        "seq": SEQ,
        "phase": PHASE,
        "rows": len(rows),
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "journal_size": os.stat(journal_path).st_size,
    }


def discard_leftover(journal_path: str) -> None:
    """Remove what a kill mid-seal left beside `journal_path`: the moves file's temporary, and
    a moves file the journal's last line does not seal. Run under the operation's lock, before
    the journal is used (no seal is under way); a journal that cannot be read keeps its file."""
    if is_object_url(journal_path):
        return
    path = moves_path(journal_path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path + TMP)
    with contextlib.suppress(OSError):
        if os.path.exists(path) and _journal_seal(journal_path) is None:
            os.unlink(path)


def sealed_moves(journal_path: str) -> list[Row] | None:
    """The rows of a sealed journal's moves file, or None where the journal is not sealed
    or the file does not match what the journal says of it."""
    if is_object_url(journal_path):
        return None  # a journal of segments is never sealed
    try:
        seal = _journal_seal(journal_path)
        if seal is None:
            return None
        with open(moves_path(journal_path), "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    if len(data) != seal["size"] or hashlib.sha256(data).hexdigest() != seal["sha256"]:
        return None
    try:
        with collector.paused():  # a tuple a move, none refers to another
            loaded = marshal.loads(data)
    except (ValueError, EOFError, TypeError):
        return None
    if not (type(loaded) is tuple and len(loaded) == 2 and loaded[0] == _FORMAT):
        return None
    rows = loaded[1]
    if type(rows) is not list or len(rows) != seal["rows"]:
        return None
    return rows


def _journal_seal(journal_path: str) -> dict[str, Any] | None:
    """The journal's seal, if its last line is one (OSError where it cannot be read)."""
    with open(journal_path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        fh.seek(max(0, size - _TAIL))
        return _seal(fh.read(), size)


def _seal(tail: bytes, size: int) -> dict[str, Any] | None:
    """The sealed entry, if it is the journal's last line and names the journal's length."""
    if not tail.endswith(b"\n"):
        return None
    start = tail.rfind(b"\n", 0, len(tail) - 1) + 1
    if start == 0 and len(tail) == _TAIL:
        return None  # a last line longer than any seal
    try:
        entry = json.loads(tail[start:])
    except ValueError:
        return None
    if type(entry) is not dict or entry.get("phase") != PHASE or entry.get("seq") != SEQ:
        return None
    fields = ("rows", "size", "journal_size")
    if any(type(entry.get(k)) is not int for k in fields) or type(entry.get("sha256")) is not str:
        return None
    if entry["journal_size"] != size - (len(tail) - start):
        return None  # the journal is not the length it had when it was sealed
    return entry
