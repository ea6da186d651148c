"""What storage/journal.py promises (its module docstring), on local disk and in an object
store: lines are appended, never rewritten; a line is durable when sync() returns, before the
act it announces; a line torn by a crash costs only itself; journals are found in the order
they were written, which rollback walks backwards."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.errors import StorageError
from storage.journal import (
    Journal,
    SegmentJournal,
    applied_journals,
    apply_journal,
    decode_path,
    done_line,
    encode_entry,
    encode_path,
    has_applied_anything,
    intent_line,
    item_seq,
    journal_dir,
    last_phase,
    parse_lines,
    read_journal,
    read_lines,
    rollback_journal,
)
from storage.locations import DataStore
from tests.conftest import S3Env

BUCKET = "journal-bucket"


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DataStore]:
    """A data folder on each kind of storage a journal can live on."""
    if request.param == "local":
        yield DataStore(str(tmp_path / "data"))
        return
    s3: S3Env = request.getfixturevalue("s3")  # only here: local runs start no moto server
    s3.bucket(BUCKET)
    yield DataStore(f"s3://{BUCKET}/data")


@pytest.fixture
def op_dir(store: DataStore) -> str:
    return store.operation_dir(str(uuid.uuid4()))


def entry(seq: str, phase: str, **more: object) -> dict[str, object]:
    return {"seq": seq, "phase": phase, **more}


# --- both kinds of journal ------------------------------------------------------------


def test_a_synced_line_is_readable_as_soon_as_sync_returns(store: DataStore, op_dir: str) -> None:
    path = apply_journal(store, op_dir, "move", 0)
    with Journal(path) as log:
        log.add(entry("move-0-0", "intent"))
        log.sync()
        # Read by another reader before the journal is closed: what apply acts on next.
        assert read_journal(path) == [entry("move-0-0", "intent")]
        log.add(entry("move-0-0", "done"))
    assert read_journal(path) == [entry("move-0-0", "intent"), entry("move-0-0", "done")]


def test_lines_are_batched_until_sync(store: DataStore, op_dir: str) -> None:
    path = apply_journal(store, op_dir, "move", 0)
    with Journal(path) as log:
        log.add(entry("move-0-0", "intent"))
        log.add(entry("move-0-1", "intent"))
        assert read_journal(path) == []  # one fsync (or one PUT) per batch, not per line
        log.sync()
        assert [e["seq"] for e in read_journal(path)] == ["move-0-0", "move-0-1"]


def test_reopening_appends_and_never_rewrites(store: DataStore, op_dir: str) -> None:
    path = apply_journal(store, op_dir, "move", 0)
    with Journal(path) as log:
        log.add(entry("move-0-0", "intent"))
    written = read_lines(path)
    with Journal(path) as log:
        log.add(entry("move-0-0", "done"))
    after = read_lines(path)
    assert after[: len(written) - 1] == written[:-1]  # everything before stays as it was
    assert [e["phase"] for e in read_journal(path)] == ["intent", "done"]


def test_an_empty_sync_writes_nothing(store: DataStore, op_dir: str) -> None:
    path = apply_journal(store, op_dir, "move", 0)
    with Journal(path) as log:
        log.sync()
    assert read_journal(path) == []
    assert applied_journals(store, op_dir) == ([path] if store.is_local else [])


def test_a_missing_journal_reads_as_empty(store: DataStore, op_dir: str) -> None:
    path = apply_journal(store, op_dir, "move", 7)
    assert read_lines(path) == []
    assert read_journal(path) == []


def test_a_name_that_is_not_utf8_survives_the_round_trip(store: DataStore, op_dir: str) -> None:
    name = b"photos/caf\xe9 \xff.jpg"  # Latin-1 bytes: not UTF-8
    path = apply_journal(store, op_dir, "move", 0)
    with Journal(path) as log:
        log.add(entry("move-0-0", "intent", src=encode_path(name)))
    line = read_lines(path)[0]
    assert line.isascii()  # JSON with escapes: no encoding can mangle the line itself
    assert decode_path(read_journal(path)[0]["src"]) == name
    assert encode_path(None) is None and decode_path(None) is None


def test_journals_are_found_in_the_order_they_were_written(store: DataStore, op_dir: str) -> None:
    """Moves before hard links (links point at the moved copies), shards in order; rollback
    walks this list backwards, newest first."""
    written = [
        apply_journal(store, op_dir, "link", 0),
        apply_journal(store, op_dir, "move", 10),
        apply_journal(store, op_dir, "move", 2),
    ]
    for path in written:
        with Journal(path) as log:
            log.add(entry("x", "intent"))
    expected_order = [
        apply_journal(store, op_dir, "move", 2),
        apply_journal(store, op_dir, "move", 10),
        apply_journal(store, op_dir, "link", 0),
    ]
    assert applied_journals(store, op_dir) == expected_order
    assert rollback_journal(store, op_dir, expected_order[0]) == (
        f"{journal_dir(store, op_dir)}/rollback/move-00002.jsonl"
    )


def test_something_is_applied_once_an_intent_is_journaled(store: DataStore, op_dir: str) -> None:
    assert not has_applied_anything(store, op_dir)
    with Journal(apply_journal(store, op_dir, "move", 0)) as log:
        log.add(entry("move-0-0", "error"))
    assert not has_applied_anything(store, op_dir)  # an error alone moved nothing
    with Journal(apply_journal(store, op_dir, "move", 1)) as log:
        log.add(entry("move-1-0", "intent"))
    assert has_applied_anything(store, op_dir)


def test_the_latest_entry_of_each_item_wins() -> None:
    entries = [
        entry(item_seq("move", 0, 0), "intent"),
        entry(item_seq("move", 0, 1), "intent"),
        entry(item_seq("move", 0, 0), "done"),
    ]
    assert last_phase(entries) == {
        "move-0-0": entry("move-0-0", "done"),
        "move-0-1": entry("move-0-1", "intent"),
    }


def test_a_data_folder_that_is_neither_local_nor_a_bucket_has_no_journal() -> None:
    memory = DataStore(f"memory://journal-{uuid.uuid4().hex}")
    with pytest.raises(StorageError, match="local or s3://"):
        journal_dir(memory, memory.operation_dir(str(uuid.uuid4())))


# --- local disk: appends and fsync ----------------------------------------------------


def test_sync_writes_then_fsyncs_before_it_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file holds the line when its fsync is called, and sync() returns after it: the act
    announced (a move) comes after a durable line."""
    path = tmp_path / "journal" / "apply" / "move-00000.jsonl"
    seen: list[tuple[str, bytes]] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            seen.append(("dir", b""))
        else:
            seen.append(("file", path.read_bytes()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)  # the one storage.journal calls
    log = Journal(str(path))
    assert seen == [("dir", b"")]  # the new file's name is durable in its folder
    log.add(entry("move-0-0", "intent"))
    assert path.read_bytes() == b""
    log.sync()
    assert seen[-1] == ("file", b'{"seq": "move-0-0", "phase": "intent"}\n')
    log.close()
    log.close()  # closing twice is harmless
    assert path.read_bytes() == b'{"seq": "move-0-0", "phase": "intent"}\n'


def test_a_torn_last_line_costs_only_itself(tmp_path: Path) -> None:
    path = tmp_path / "move-00000.jsonl"
    path.write_bytes(b'{"seq": "a", "phase": "intent"}\n{"seq": "a", "pha')  # a crash mid-write
    assert read_journal(str(path)) == [entry("a", "intent")]
    with Journal(str(path)) as log:
        log.add(entry("b", "intent"))
    # The torn line is ended first: glued to it, the new line would be lost as well.
    assert path.read_bytes().endswith(b'"pha\n{"seq": "b", "phase": "intent"}\n')
    assert read_journal(str(path)) == [entry("a", "intent"), entry("b", "intent")]


def test_the_journal_is_opened_for_appending(tmp_path: Path) -> None:
    """O_APPEND: every write lands at the end, whatever else wrote to the file meanwhile."""
    path = tmp_path / "move-00000.jsonl"
    with Journal(str(path)) as log:
        with path.open("ab") as other:
            other.write(b'{"seq": "other", "phase": "intent"}\n')
        log.add(entry("mine", "intent"))
    assert [e["seq"] for e in read_journal(str(path))] == ["other", "mine"]


def test_a_journal_that_cannot_be_opened_says_so(tmp_path: Path) -> None:
    blocker = tmp_path / "journal"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(StorageError, match="cannot open journal"):
        Journal(str(blocker / "apply" / "move-00000.jsonl"))


# --- object stores: one new segment per sync -------------------------------------------


def test_each_sync_is_a_new_segment_and_a_taken_number_is_skipped(s3: S3Env) -> None:
    s3.bucket(BUCKET)
    path = f"s3://{BUCKET}/ops/journal/apply/move-00000.jsonl"
    client = s3.client()
    with Journal(path) as log:
        assert isinstance(log, SegmentJournal)
        log.add(entry("a", "intent"))
        log.sync()
        # Another writer takes the next number first: ours goes to the one after, theirs stays.
        other = json.dumps(entry("z", "intent")).encode() + b"\n"
        client.put_object(
            Bucket=BUCKET, Key="ops/journal/apply/move-00000.jsonl.d/00000001.jsonl", Body=other
        )
        log.add(entry("a", "done"))
    keys = [
        o["Key"].rsplit("/", 1)[-1]
        for o in client.list_objects_v2(Bucket=BUCKET, Prefix="ops/")["Contents"]
    ]
    assert keys == ["00000000.jsonl", "00000001.jsonl", "00000002.jsonl"]
    assert [(e["seq"], e["phase"]) for e in read_journal(path)] == [
        ("a", "intent"),
        ("z", "intent"),
        ("a", "done"),
    ]
    with Journal(path) as again:  # a reopened journal continues after the last segment
        again.add(entry("b", "intent"))
    assert read_journal(path)[-1] == entry("b", "intent")


# --- the encoding: json's lines, built and parsed faster ------------------------------

_TEXT = st.text() | st.binary().map(os.fsdecode)  # names that are not UTF-8 included
_FLAT = st.none() | st.booleans() | st.integers() | _TEXT
_VALUE = _FLAT | st.floats(allow_nan=False) | st.lists(_FLAT) | st.dictionaries(_TEXT, _FLAT)
_ENTRY = st.dictionaries(st.sampled_from(["seq", "phase", "src", "dst", "ino"]) | _TEXT, _VALUE)


@given(_ENTRY)
def test_a_line_is_what_json_writes_byte_for_byte(entry: dict[str, object]) -> None:
    """Journals written before the encoder, and readers of any version, meet the same lines."""
    assert encode_entry(entry) == json.dumps(entry, ensure_ascii=True).encode() + b"\n"


@given(st.lists(st.tuples(_ENTRY, st.none() | st.integers(min_value=0))))
def test_lines_parse_as_each_would_alone_torn_ones_left_out(
    lines: list[tuple[dict[str, object], int | None]],
) -> None:
    """A crash can cut a line anywhere (a later run ends it with a newline and goes on)."""
    written = [encode_entry(e).rstrip(b"\n") for e, _ in lines]
    cut = [
        line if at is None else line[: at % len(line)]
        for line, (_, at) in zip(written, lines, strict=True)
    ]
    expected_entries = []
    for line in cut:
        with contextlib.suppress(ValueError):
            expected_entries.append(json.loads(line))

    assert parse_lines(cut) == expected_entries
    assert parse_lines(b"\n".join(cut).split(b"\n")) == expected_entries


_NAME = st.binary(min_size=1).filter(lambda b: b"\0" not in b)  # any bytes a name can hold
_INT = st.integers(min_value=-(2**63), max_value=2**64)


@given(_TEXT, _TEXT, _NAME, _NAME, _INT, _INT, _INT, _INT)
def test_a_plain_intent_line_is_the_encoders_line_of_its_entry(
    seq: str, action: str, src: bytes, dst: bytes, dev: int, ino: int, size: int, mtime_ns: int
) -> None:
    entry = {
        "seq": seq,
        "phase": "intent",
        "action": action,
        "src": encode_path(src),
        "dst": encode_path(dst),
        "dev": dev,
        "ino": ino,
        "size": size,
        "mtime_ns": mtime_ns,
        "link_to": None,
        "kept": None,
    }
    expected_line = json.dumps(entry, ensure_ascii=True).encode() + b"\n"

    assert intent_line(seq, action, src, dst, dev, ino, size, mtime_ns) == expected_line
    assert encode_entry(entry) == expected_line


@given(_TEXT, _TEXT, _INT | st.booleans() | _TEXT, _INT | st.none())
def test_a_moves_outcome_is_what_json_writes_whatever_its_values(
    seq: str, method: str, dev: object, ino: object
) -> None:
    """The outcome's own template serves only the types it writes; json the rest."""
    entry = {"seq": seq, "phase": "done", "method": method, "dev": dev, "ino": ino}
    expected_line = json.dumps(entry, ensure_ascii=True).encode() + b"\n"

    assert encode_entry(entry) == expected_line
    if type(dev) is int and type(ino) is int:
        assert done_line(seq, method, dev, ino) == expected_line


def test_reading_some_phases_gives_the_entries_of_those_phases_only(
    store: DataStore, op_dir: str
) -> None:
    path = apply_journal(store, op_dir, "move", 0)
    lines = [
        entry("dir:a", "dirmeta", path="a"),
        entry("move-0-0", "intent", src='a/"phase": "mkdir"'),  # says it, is not one
        entry("mkdir:b", "mkdir", path="b"),
        entry("move-0-0", "done"),
        entry("dir:c", "dirmeta", path="c"),
    ]
    with Journal(path) as journal:
        for line in lines:
            journal.add(line)
    if store.is_local:
        with open(path, "ab") as fh:
            fh.write(encode_entry(entry("mkdir:d", "mkdir", path="d"))[:-9])  # torn by a crash
    wanted = {"dirmeta", "mkdir"}
    expected_entries = [e for e in read_journal(path) if e["phase"] in wanted]

    assert read_journal(path, wanted) == expected_entries
    assert [e["seq"] for e in expected_entries] == ["dir:a", "mkdir:b", "dir:c"]
