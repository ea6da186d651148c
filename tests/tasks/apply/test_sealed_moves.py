"""A finished apply journal sealed with its moves file (storage.journal_moves): rollback reads
the file instead of the journal only while the journal's seal vouches for it, and otherwise
reads the journal as before; either way the tree comes back."""

from __future__ import annotations

import marshal
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from storage import journal_moves
from storage.journal import read_journal, read_lines
from storage.operations import PlanOptions
from tasks.apply import rollback
from tasks.apply import stage as apply
from tests.apply_helpers import Operation, differences, temp_names
from tests.trees import snapshot

NAMES = [b"a.txt", b"b.pdf", b"caf\xe9 \xff.txt", b"notes.md", b"d.jpg"]


def distinct(tmp_path: Path) -> Operation:
    """Files of distinct contents (a non-UTF-8 name among them) in two folders: every item a
    plain rename."""
    planned = Operation(tmp_path, PlanOptions(mode="category"))
    root = os.fsencode(planned.root)
    for i, name in enumerate(NAMES):
        folder = root + (b"/inbox" if i % 2 else b"/old/sub")
        os.makedirs(folder, exist_ok=True)
        with open(folder + b"/" + name, "wb") as fh:
            fh.write(b"content %d" % i)
        os.utime(folder + b"/" + name, ns=(10**18 + i, 10**18 + i))
    planned.plan()
    return planned


def move_journal(planned: Operation) -> str:
    (journal,) = [j for j in planned.journals() if j.rsplit("/", 1)[-1].startswith("move-")]
    return journal


def test_a_clean_apply_seals_its_journal_with_the_moves_rollback_would_read(
    tmp_path: Path,
) -> None:
    planned = distinct(tmp_path)
    assert planned.apply() == Counter(done=len(NAMES))
    journal = move_journal(planned)
    entries = read_journal(journal)

    assert entries[-1]["phase"] == "sealed"
    assert entries[-1]["rows"] == len(NAMES)
    assert os.path.exists(journal_moves.moves_path(journal))
    # The file's undo items are the journal's, in the same order (newest first).
    assert rollback.sealed_undo(journal) == rollback.undo_items(journal)
    assert len(rollback.undo_items(journal)) == len(NAMES)


def test_rollback_from_the_moves_file_gives_the_tree_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    planned = distinct(tmp_path)
    before = snapshot(planned.root)
    planned.apply()
    parsed: list[str] = []
    real = rollback.undo_items
    monkeypatch.setattr(rollback, "undo_items", lambda j: parsed.append("x") or real(j))

    assert planned.rollback() == Counter(done=len(NAMES))

    assert parsed == []  # the journal's moves were not parsed: the sealed file was read
    after = snapshot(planned.root)
    assert differences(before, after) == []
    assert temp_names(after) == []
    assert planned.rollback() == Counter(done=len(NAMES))  # again: nothing redone


def test_a_journal_with_a_skipped_item_is_not_sealed(tmp_path: Path) -> None:
    planned = distinct(tmp_path)
    os.unlink(os.fsencode(planned.root) + b"/inbox/b.pdf")  # vanished since the scan

    applied = planned.apply()

    assert applied["vanished"] == 1
    journal = move_journal(planned)
    assert read_journal(journal)[-1]["phase"] != "sealed"
    assert not os.path.exists(journal_moves.moves_path(journal))
    assert rollback.sealed_undo(journal) is None


def _flip_a_destination(journal: str) -> None:
    """A well-formed moves file that says something else than the journal: one row's dst."""
    rows = journal_moves.sealed_moves(journal)
    assert rows is not None
    seq, src, dst, *rest = rows[0]
    rows[0] = (seq, src, dst + b".elsewhere", *rest)
    with open(journal_moves.moves_path(journal), "wb") as fh:
        fh.write(marshal.dumps(("fileorg-moves-1", rows)))


def _remove_the_seal(journal: str) -> None:
    """As a kill between the moves file and the seal's write leaves it."""
    lines = read_lines(journal)
    with open(journal, "wb") as fh:
        fh.write(b"".join(line + b"\n" for line in lines[:-2]))


def _append_a_line(journal: str) -> None:
    with open(journal, "ab") as fh:
        fh.write(b'{"seq": "dir:x", "phase": "dirmeta", "path": "x", ')
        fh.write(b'"atime_ns": 1, "mtime_ns": 1}\n')  # a folder gone since: left alone


def _tear_the_file(journal: str) -> None:
    path = journal_moves.moves_path(journal)
    os.truncate(path, os.stat(path).st_size // 2)


def _remove_the_file(journal: str) -> None:
    os.unlink(journal_moves.moves_path(journal))


def _lengthen_the_journal(journal: str) -> None:
    """Its first line written twice (the same meaning): not the length the seal names."""
    lines = [line for line in read_lines(journal) if line]
    with open(journal, "wb") as fh:
        fh.write(b"".join(line + b"\n" for line in [lines[0], *lines]))


BROKEN: dict[str, Callable[[str], None]] = {
    "a moves file that says otherwise": _flip_a_destination,
    "no seal (killed before it)": _remove_the_seal,
    "a line after the seal": _append_a_line,
    "a torn moves file": _tear_the_file,
    "no moves file": _remove_the_file,
    "a journal of another length": _lengthen_the_journal,
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_rollback_reads_the_journal_when_the_moves_file_does_not_match(
    tmp_path: Path, case: str
) -> None:
    planned = distinct(tmp_path)
    before = snapshot(planned.root)
    planned.apply()
    journal = move_journal(planned)
    BROKEN[case](journal)

    assert rollback.sealed_undo(journal) is None
    undone = planned.rollback()

    assert undone == Counter(done=len(NAMES))
    after = snapshot(planned.root)
    assert differences(before, after) == []
    assert temp_names(after) == []


def killed_before_the_rename(planned: Operation) -> str:
    """The files as a kill -9 between the moves file's write and its rename leaves them: the
    temporary written, no `.moves`, no seal. Returns the temporary's path."""
    journal = move_journal(planned)
    moves = journal_moves.moves_path(journal)
    with open(journal, "rb") as fh:
        lines = fh.read().splitlines(keepends=True)
    assert b'"sealed"' in lines[-1]
    with open(journal, "wb") as fh:
        fh.writelines(lines[:-1])
    tmp = moves + journal_moves.TMP
    os.rename(moves, tmp)
    return tmp


def killed_after_the_rename(planned: Operation) -> str:
    """As a kill -9 between the moves file's rename and the seal's write leaves them: the
    `.moves` in place, no seal. Returns its path."""
    journal = move_journal(planned)
    with open(journal, "rb") as fh:
        lines = fh.read().splitlines(keepends=True)
    assert b'"sealed"' in lines[-1]
    with open(journal, "wb") as fh:
        fh.writelines(lines[:-1])
    return journal_moves.moves_path(journal)


KILLED = {"before the rename": killed_before_the_rename, "after it": killed_after_the_rename}


@pytest.mark.parametrize("killed", list(KILLED))
@pytest.mark.parametrize("then", ["apply", "rollback"])
def test_what_a_killed_seal_left_is_removed_by_the_next_apply_or_rollback(
    tmp_path: Path, then: str, killed: str
) -> None:
    """The temporary, or a `.moves` no seal vouches for (its journal, resumed, is never
    sealed again: it stayed for good)."""
    planned = distinct(tmp_path)
    before = snapshot(planned.root)
    planned.apply()
    applied = snapshot(planned.root)
    left = KILLED[killed](planned)
    assert os.path.exists(left)

    if then == "apply":
        assert planned.apply() == Counter(done=len(NAMES))  # as journaled: nothing redone
        assert snapshot(planned.root) == applied
    else:
        assert planned.rollback() == Counter(done=len(NAMES))
        assert differences(before, snapshot(planned.root)) == []

    assert not os.path.exists(left)
    assert not os.path.exists(journal_moves.moves_path(move_journal(planned)))


def test_a_sealed_moves_file_stays_through_another_apply_and_a_rollback(tmp_path: Path) -> None:
    planned = distinct(tmp_path)
    planned.apply()
    journal = move_journal(planned)
    rows = journal_moves.sealed_moves(journal)

    assert planned.apply() == Counter(done=len(NAMES))
    journal_moves.discard_leftover(journal)
    assert rows is not None and journal_moves.sealed_moves(journal) == rows
    assert planned.rollback() == Counter(done=len(NAMES))
    assert journal_moves.sealed_moves(journal) == rows  # a second rollback reads it again


def test_the_folders_a_sealed_apply_emptied_are_found_without_parsing_its_moves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """remove_emptied reads a sealed journal's moves from its moves file (a 200,000-move
    journal took seconds to parse for its sources), and only its folders' lines."""
    planned = distinct(tmp_path)
    read: list[object] = []
    real = apply.read_journal
    monkeypatch.setattr(apply, "read_journal", lambda j, p=None: read.append(p) or real(j, p))

    assert planned.apply() == Counter(done=len(NAMES))

    assert read and None not in read  # never the whole journal
    assert read_journal(move_journal(planned))[-1]["phase"] == "sealed"
    assert not {b"inbox", b"old", b"old/sub"} & set(snapshot(planned.root))  # emptied: removed
