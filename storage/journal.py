"""The move journal: append-only JSON lines, fsynced before the moves they announce.

Rule 2 of the data-safety rules: intent is durable before a change and its outcome after.
Lines are written in batches (one fsync per batch, not per file), which is safe because
recovery never trusts an intent alone: the journal plus the real state of the files decides
what was done. A crash can tear the last line; readers drop a line that does not parse.

Each line is what `json.dumps(entry)` writes, byte for byte (so every journal ever written
reads the same way, and older versions read new ones), but the flat entries of the moves are
built without the general encoder (`encode_entry`), and a journal is parsed as one JSON
array where no line is torn (`parse_lines`): at 200,000 moves the encoder took a third of
an apply and reading the journals again and again most of a rollback.

On local disk a journal is one file (appends and fsync make it trustworthy). Object stores
offer neither, so a journal whose path is an object URL (`s3://bucket/.../move-00000.jsonl`,
the scheme naming the storage profile) is a folder of segments, `{path}.d/00000000.jsonl`,
`00000001.jsonl`...: each sync writes one new immutable object, never over an existing one
(If-None-Match). A PUT that returned is durable, and a segment that exists is complete.
`Journal(path)` and `read_journal(path)` take either kind of path.

Layout, under an operation's folder: `journal/apply/{phase}-{shard:05d}.jsonl`, one journal
per plan shard and apply phase (moves, then hard links), and `journal/rollback/` with the
same names, the undo of each, under the same `seq` per item. A data folder in an object
store keeps them as object URLs (`profile://bucket/.../journal/...`).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Collection, Iterable
from json.encoder import encode_basestring_ascii as _escape
from types import TracebackType
from typing import Any

from storage import collector
from storage.errors import StorageError
from storage.locations import DataStore
from storage.objects import ObjectExists, ObjectStore, describe, is_object_url, parse_object_url

Entry = dict[str, Any]
SEGMENT = re.compile(r"[0-9]{8}\.jsonl")
SEGMENT_ATTEMPTS = 10  # segment numbers tried when another writer takes them first
PHASES = ("move", "link")  # hard links point at kept copies' final paths: after every move
_FS = (sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())  # os.fsdecode's
PATH_CODEC = _FS  # decode_path is `text.encode(*PATH_CODEC)`, for loops that inline it
JOURNAL_NAME = re.compile(r"(?:.*/)?(?P<phase>[a-z]+)-[0-9]{5}\.jsonl")


def encode_path(path: bytes | None) -> str | None:
    """Bytes to a JSON-safe string that decodes back to the same bytes (os.fsdecode's
    codec, called without its checks: twice per move)."""
    return None if path is None else path.decode(*_FS)


def decode_path(text: str | None) -> bytes | None:
    return None if text is None else text.encode(*_FS)


class Journal:
    def __new__(cls, path: str) -> Journal:
        # One name for both kinds, so that the one apply engine (tasks.apply.engine) journals
        # into a local folder or an object store unchanged.
        if cls is Journal and is_object_url(path):
            return super().__new__(SegmentJournal)
        return super().__new__(cls)

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
        self._pending.append(encode_entry(entry))

    def add_line(self, line: bytes) -> None:
        """A line already encoded (`intent_line`, `encode_entry`): written as it is."""
        self._pending.append(line)

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


class SegmentJournal(Journal):
    """A journal in an object store: one new segment object per sync (see the module doc)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._pending = []
        self._objects = _segments_store(path)
        found = _segment_keys(self._objects, path)
        self._next = int(self._objects.root.rel(found[-1][0])[:8]) + 1 if found else 0

    def sync(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending)
        for _ in range(SEGMENT_ATTEMPTS):
            key = self._objects.root.key(f"{self._next:08d}.jsonl")
            self._next += 1
            try:
                self._objects.put_if_absent(key, data)
            except ObjectExists:
                continue  # another writer took this number: the next one
            except Exception as exc:
                raise StorageError(describe(exc, f"cannot write journal {self.path}")) from exc
            self._pending.clear()
            return
        raise StorageError(f"cannot write journal {self.path}: its segment names are taken")

    def close(self) -> None:
        self.sync()


def _segments_store(path: str) -> ObjectStore:
    return ObjectStore(parse_object_url(f"{path}.d"))


def _segment_keys(objects: ObjectStore, path: str) -> list[tuple[str, str, int]]:
    """(key, etag, size) of every segment, in the order they were written."""
    try:
        infos = [info for page in objects.list_pages() for info in page]
    except Exception as exc:
        raise StorageError(describe(exc, f"cannot read journal {path}")) from exc
    named = [i for i in infos if SEGMENT.fullmatch(objects.root.rel(i.key))]
    return [(i.key, i.etag, i.size) for i in sorted(named, key=lambda i: i.key)]


def _read_segments(path: str) -> list[bytes]:
    objects = _segments_store(path)
    found = _segment_keys(objects, path)
    lines: list[bytes] = []
    for _, data in zip(found, objects.read_heads(found), strict=True):
        if isinstance(data, BaseException):
            raise StorageError(describe(data, f"cannot read journal {path}")) from data
        lines += data.split(b"\n")
    return lines


def read_lines(path: str) -> list[bytes]:
    """The journal's lines as written (a torn last line included); none when it is missing."""
    if is_object_url(path):
        return _read_segments(path)
    data = _read_file(path)
    return data.split(b"\n") if data else []


def read_journal(path: str, phases: Collection[str] | None = None) -> list[Entry]:
    """The journal's entries; with `phases`, only the entries of those phases, their lines
    found without parsing the others (a few folders' among 200,000 moves')."""
    if phases is None:
        return parse_lines(read_lines(path))
    # Every line is encode_entry's (json.dumps' separators): its phase reads `"phase": "x"`,
    # and a string value cannot hold that unescaped; a line that merely mentions it is
    # parsed and left out below.
    markers = [b'"phase": ' + _escape(phase).encode() for phase in phases]
    if is_object_url(path):
        lines = [line for line in read_lines(path) if any(m in line for m in markers)]
    else:
        lines = _lines_with(_read_file(path), markers)
    return [entry for entry in parse_lines(lines) if entry.get("phase") in phases]


def _read_file(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        return b""


def _lines_with(data: bytes, markers: list[bytes]) -> list[bytes]:
    """The lines of `data` that hold any of `markers`, in their order."""
    starts = set()
    for marker in markers:
        at = data.find(marker)
        while at >= 0:
            starts.add(data.rfind(b"\n", 0, at) + 1)
            at = data.find(marker, at + len(marker))
    lines = []
    for start in sorted(starts):
        end = data.find(b"\n", start)
        lines.append(data[start:] if end < 0 else data[start:end])
    return lines


def parse_lines(lines: list[bytes]) -> list[Entry]:
    """The entries of a journal's lines, a line that does not parse left out. Parsed as one
    array first: every line is a whole entry or a prefix of one (torn by a crash), and a
    prefix leaves its `{` open, which swallows the lines after it into one element, so as
    many objects as lines means that every line parsed whole, on its own."""
    lines = [line for line in lines if line]
    try:
        with collector.paused():  # an entry (a dict) a line, none refers to another
            entries = json.loads(b"[" + b",".join(lines) + b"]")
    except ValueError:
        entries = None
    if (
        isinstance(entries, list)
        and len(entries) == len(lines)
        and all(type(e) is dict for e in entries)
    ):
        return entries
    return _parse_each(lines)


def _parse_each(lines: list[bytes]) -> list[Entry]:
    entries = []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue  # a line torn by a crash: its outcome is decided from the files
    return entries


_KEYS: dict[str, str] = {}  # '"key": ' for each key seen, escaped once


def encode_entry(entry: Entry) -> bytes:
    """`json.dumps(entry, ensure_ascii=True)` and a newline, byte for byte; strings,
    integers and None built here, anything else through json."""
    if tuple(entry) == _DONE_KEYS and entry["phase"] == "done":  # every move's outcome
        seq, method, dev, ino = entry["seq"], entry["method"], entry["dev"], entry["ino"]
        if type(seq) is str and type(method) is str and type(dev) is int and type(ino) is int:
            return done_line(seq, method, dev, ino)
    parts = []
    for key, value in entry.items():
        prefix = _KEYS.get(key)
        if prefix is None:
            prefix = _KEYS.setdefault(key, f"{_escape(key)}: ")
        kind = type(value)
        if kind is str:
            parts.append(prefix + _escape(value))
        elif kind is int:
            parts.append(prefix + int.__repr__(value))
        elif value is None:
            parts.append(prefix + "null")
        else:
            parts.append(prefix + json.dumps(value, ensure_ascii=True))
    return ("{" + ", ".join(parts) + "}\n").encode()


_INTENT = (
    '{"seq": %s, "phase": "intent", "action": %s, "src": %s, "dst": %s, "dev": %d, "ino": %d, '
    '"size": %d, "mtime_ns": %d, "link_to": null, "kept": null}\n'
)
_DONE_KEYS = ("seq", "phase", "method", "dev", "ino")
_DONE = '{"seq": %s, "phase": "done", "method": %s, "dev": %d, "ino": %d}\n'


def intent_line(
    seq: str, action: str, src: bytes, dst: bytes, dev: int, ino: int, size: int, mtime_ns: int
) -> bytes:
    """The line of a plain move's intent (no link, no digest, no ETag), from one template:
    encode_entry of the same entry, byte for byte, in a third of the time."""
    encoding, errors = _FS
    return (
        _INTENT
        % (
            _escape(seq),
            _escape(action),
            _escape(src.decode(encoding, errors)),
            _escape(dst.decode(encoding, errors)),
            dev,
            ino,
            size,
            mtime_ns,
        )
    ).encode()


def done_line(seq: str, method: str, dev: int, ino: int) -> bytes:
    """The line of a move's outcome, as encode_entry writes it."""
    return (_DONE % (_escape(seq), _escape(method), dev, ino)).encode()


def item_seq(phase: str, shard: int, index: int) -> str:
    """The journal key of a plan row: apply `phase` (move, link), plan shard, row index in it.
    Rollback journals the undo of an item under the same key; storage.outcomes joins on it."""
    return f"{phase}-{shard}-{index}"


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


# --- where an operation's journals are ------------------------------------------------------


def journal_dir(store: DataStore, op_dir: str) -> str:
    if store.is_local:
        return f"{op_dir}/journal"
    if is_object_url(store.url):
        return f"{parse_object_url(store.url).profile}://{op_dir}/journal"
    raise StorageError(
        "apply keeps its journal on local disk or in an object store: "
        "use a local or s3:// FILEORG_DATA_URL"
    )


def apply_journal(store: DataStore, op_dir: str, phase: str, shard: int) -> str:
    return f"{journal_dir(store, op_dir)}/apply/{phase}-{shard:05d}.jsonl"


def rollback_journal(store: DataStore, op_dir: str, apply_journal_path: str) -> str:
    """The journal of the undo of one apply journal."""
    name = apply_journal_path.rsplit("/", 1)[-1]
    return f"{journal_dir(store, op_dir)}/rollback/{name}"


def applied_journals(store: DataStore, op_dir: str) -> list[str]:
    """Apply journals in the order they were written."""
    directory = f"{journal_dir(store, op_dir)}/apply"
    if store.is_local:
        names = [p.rsplit("/", 1)[-1] for p in store.glob(f"{directory}/*-*.jsonl")]
    else:
        names = _segment_journals(directory)
    found = []
    for phase in PHASES:
        mine = [n for n in names if (m := JOURNAL_NAME.fullmatch(n)) and m["phase"] == phase]
        found += [f"{directory}/{name}" for name in sorted(mine)]
    return found


def _segment_journals(directory: str) -> list[str]:
    """Names of the journals under an object URL: each is a folder of segments, and one that
    was ever written has its first segment."""
    listing = ObjectStore(parse_object_url(directory))
    first = "/00000000.jsonl"
    return [
        listing.root.rel(info.key).removesuffix(".d" + first)
        for page in listing.list_pages()
        for info in page
        if info.key.endswith(".d" + first)
    ]


def has_applied_anything(store: DataStore, op_dir: str) -> bool:
    return any(
        e["phase"] in ("intent", "mkdir")
        for path in applied_journals(store, op_dir)
        for e in read_journal(path)
    )
