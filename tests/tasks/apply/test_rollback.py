"""Rollback: apply then roll back gives the tree back, and a rollback never overwrites.

The stages run as plain functions (tests/apply_helpers.plan_tree), without Prefect.
"""

from __future__ import annotations

import itertools
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage.journal import applied_journals, read_journal
from storage.operations import PlanOptions
from tasks.apply import local_links, rollback
from tests.apply_helpers import (
    Operation,
    contents,
    differences,
    linked_across_modes,
    temp_names,
)
from tests.trees import make_nasty_tree, make_unreadable, outside_dir, snapshot

POLICIES = ["report", "quarantine", "hardlink"]
# Copies that are not the oldest of their group get odd modes: a copy moved or quarantined
# keeps its mode, and a copy of another mode than its kept copy's is never hard-linked (a
# link has one mode), so the round trip gives every mode back.
ODD_MODES = {
    b"x/dup copy.txt": 0o600,
    b"x/y/z/dup.txt": 0o755,
    b"big/video copy.mp4": 0o640,
    b"links/separate copy.dat": 0o444,
    b"x/y/notes (1).md": 0o700,
    b"caf\xe9.txt": 0o751,
}


def nasty(base: Path, policy: str) -> Operation:
    planned = Operation(base, PlanOptions(duplicates=policy))
    make_nasty_tree(planned.root)
    make_unreadable(planned.root)
    for rel, mode in ODD_MODES.items():
        os.chmod(os.fsencode(planned.root) + b"/" + rel, mode)
    return planned


@pytest.mark.parametrize("policy", POLICIES)
def test_round_trip_gives_the_nasty_tree_back(tmp_path: Path, policy: str) -> None:
    planned = nasty(tmp_path, policy)
    before, outside_before = snapshot(planned.root), snapshot(outside_dir(planned.root))
    counts = planned.plan()
    expected_items = sum(counts.get(a, 0) for a in ("move", "quarantine", "hardlink"))
    rows = planned.rows().values()
    unlinked = [r for r in rows if r["reason_code"] == "not-linked"]

    applied = planned.apply()
    during = snapshot(planned.root)
    undone = planned.rollback()
    after = snapshot(planned.root)

    assert linked_across_modes(rows, before) == set()  # the plan never promises such a link
    assert applied == Counter(done=expected_items)
    assert bool(unlinked) == (policy == "hardlink")
    assert len(differences(before, during)) > expected_items  # it did move things
    assert undone == Counter(done=expected_items)
    assert differences(before, after) == []
    assert temp_names(after) == []
    assert snapshot(outside_dir(planned.root)) == outside_before
    if policy != "hardlink":
        assert contents(during) == contents(before)
    assert contents(after) == contents(before)


def test_hardlink_policy_links_copies_to_the_kept_file(tmp_path: Path) -> None:
    planned = nasty(tmp_path, "hardlink")
    before = snapshot(planned.root)
    planned.plan()
    rows = planned.rows()

    planned.apply()
    during = snapshot(planned.root)

    across = [r["src"] for r in rows.values() if r["reason_code"] == "not-linked"]
    linked = [r for r in rows.values() if r["action"] == "hardlink"]
    assert len(linked) >= 2 and len(across) >= 2
    assert linked_across_modes(rows.values(), before) == set()
    for row in linked:
        src, link_to = row["src"], row["link_to"]
        assert isinstance(src, bytes) and isinstance(link_to, bytes)
        assert during[src].ino == during[link_to].ino
        assert during[src].digest == before[src].digest
    for src in across:  # another mode: left as it was, its own file
        assert (during[src].ino, during[src].mode) == (before[src].ino, before[src].mode)
    # Every content is still there; the copies that were linked are not separate any more.
    assert set(contents(during)) == set(contents(before))
    assert sum(contents(during).values()) == sum(contents(before).values()) - len(
        {before[r["src"]].ino for r in linked}
    )


def test_quarantine_keeps_every_copy_under_duplicates(tmp_path: Path) -> None:
    planned = nasty(tmp_path, "quarantine")
    before = snapshot(planned.root)
    planned.plan()
    rows = planned.rows()

    planned.apply()
    during = snapshot(planned.root)

    quarantined = [row for row in rows.values() if row["action"] == "quarantine"]
    assert len(quarantined) >= 4
    for row in quarantined:
        src, dst = row["src"], row["dst"]
        assert isinstance(src, bytes) and isinstance(dst, bytes)
        assert dst.startswith(b".duplicates/")
        assert src not in during
        assert during[dst].digest == before[src].digest
        assert during[dst].ino == before[src].ino


def test_rollback_twice_changes_nothing_the_second_time(tmp_path: Path) -> None:
    planned = nasty(tmp_path, "hardlink")
    planned.plan()
    planned.apply()
    first = planned.rollback()
    after_first = snapshot(planned.root)

    second = planned.rollback()

    assert second == first
    assert snapshot(planned.root) == after_first  # mtimes and inodes included


def small(tmp_path: Path, policy: str = "report") -> Operation:
    """Three documents, two of them copies of each other, in an existing folder."""
    planned = Operation(tmp_path, PlanOptions(duplicates=policy, mode="category"))
    inbox = planned.root / "inbox"
    inbox.mkdir(parents=True)
    for i, (name, content) in enumerate(
        [("a.txt", b"alpha"), ("b.txt", b"beta"), ("c.txt", b"alpha")]
    ):
        (inbox / name).write_bytes(content)
        os.utime(inbox / name, ns=(10**18 + i, 10**18 + i))
    os.chmod(inbox / "c.txt", 0o600)
    return planned


def test_rollback_never_overwrites_a_file_at_the_original_path(tmp_path: Path) -> None:
    planned = small(tmp_path)
    before = snapshot(planned.root)
    planned.plan()
    planned.apply()
    blocker = planned.root / "inbox" / "b.txt"
    blocker.parent.mkdir(exist_ok=True)  # apply removed the folder it emptied
    blocker.write_bytes(b"a new file where b.txt was")

    refused = planned.rollback()

    assert refused == Counter(done=2, conflicts=1)
    assert blocker.read_bytes() == b"a new file where b.txt was"
    assert (planned.root / "Documents" / "b.txt").read_bytes() == b"beta"

    blocker.unlink()  # the user moves the newcomer away: the rollback can finish
    finished = planned.rollback()

    assert finished == Counter(done=3)
    assert differences(before, snapshot(planned.root)) == []


def test_rollback_leaves_a_file_changed_since_apply_where_it_is(tmp_path: Path) -> None:
    planned = small(tmp_path)
    planned.plan()
    planned.apply()
    moved = planned.root / "Documents" / "a.txt"
    moved.write_bytes(b"edited after the apply")

    refused = planned.rollback()

    assert refused == Counter(done=2, changed=1)
    assert moved.read_bytes() == b"edited after the apply"
    assert not (planned.root / "inbox" / "a.txt").exists()
    assert (planned.root / "Documents").is_dir()  # still holds a.txt: not removed


@pytest.mark.parametrize("folder_too", [False, True])
def test_rollback_counts_a_file_moved_back_by_hand_as_restored(
    tmp_path: Path, folder_too: bool
) -> None:
    # The user put a.txt back where it was before rolling back (and, folder_too, removed the
    # folder apply had put it in): the tree is as before, so the rollback is complete; one
    # that said "vanished since apply" stayed rollback_incomplete for good, and blocked
    # every older operation's rollback (newest first).
    planned = small(tmp_path)
    before = snapshot(planned.root)
    planned.plan()
    planned.apply()
    (planned.root / "inbox").mkdir(exist_ok=True)  # apply removed the folder it emptied
    os.rename(planned.root / "Documents" / "a.txt", planned.root / "inbox" / "a.txt")
    if folder_too:
        for name in ("b.txt", "c.txt"):
            os.rename(planned.root / "Documents" / name, planned.root / "inbox" / name)
        os.rmdir(planned.root / "Documents")

    undone = planned.rollback()

    assert undone == Counter(done=3)
    assert differences(before, snapshot(planned.root)) == []


def test_rollback_refuses_a_file_moved_back_by_hand_and_edited(tmp_path: Path) -> None:
    planned = small(tmp_path)
    planned.plan()
    planned.apply()
    (planned.root / "inbox").mkdir(exist_ok=True)
    back = planned.root / "inbox" / "a.txt"
    os.rename(planned.root / "Documents" / "a.txt", back)
    back.write_bytes(b"edited after it came back")

    refused = planned.rollback()

    assert refused == Counter(done=2, vanished=1)
    assert back.read_bytes() == b"edited after it came back"


def test_rollback_restores_an_independent_copy_of_a_linked_duplicate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """c.txt (0600) linked to a.txt (0644), as apply did before it refused links across
    modes: journals of such applies still roll back to the copy with its own mode."""
    planned = small(tmp_path, "hardlink")
    os.chmod(planned.root / "inbox" / "c.txt", 0o644)  # the plan links it, and then
    planned.plan()
    os.chmod(planned.root / "inbox" / "c.txt", 0o600)  # it is private (a chmod keeps mtime)
    before = snapshot(planned.root)
    with monkeypatch.context() as before_the_rule:
        before_the_rule.setattr(local_links, "mode_conflict", lambda copy, kept: None)
        planned.apply()
    kept = planned.root / "Documents" / "a.txt"
    assert os.lstat(kept).st_ino == os.lstat(planned.root / "inbox" / "c.txt").st_ino

    planned.rollback()

    assert differences(before, snapshot(planned.root)) == []
    copy = planned.root / "inbox" / "c.txt"
    copy.write_bytes(b"changed copy")
    assert (planned.root / "inbox" / "a.txt").read_bytes() == b"alpha"


def test_rollback_keeps_the_names_of_a_linked_copy_together(tmp_path: Path) -> None:
    op = Operation(tmp_path, PlanOptions(duplicates="hardlink", mode="category"))
    op.root.mkdir()
    (op.root / "kept.txt").write_bytes(b"same")
    (op.root / "copy.txt").write_bytes(b"same")
    os.utime(op.root / "kept.txt", ns=(10**18, 10**18))  # the oldest: the one kept
    os.utime(op.root / "copy.txt", ns=(10**18 + 1, 10**18 + 1))
    os.link(op.root / "copy.txt", op.root / "copy link.txt")
    before = snapshot(op.root)
    op.plan()
    op.apply()

    op.rollback()

    after = snapshot(op.root)
    assert differences(before, after) == []
    assert after[b"copy.txt"].ino == after[b"copy link.txt"].ino
    assert contents(after) == contents(before)


def test_rollback_refuses_to_unlink_when_the_kept_copy_changed(tmp_path: Path) -> None:
    planned = small(tmp_path, "hardlink")
    os.chmod(planned.root / "inbox" / "c.txt", 0o644)  # the kept copy's: they are linked
    planned.plan()
    planned.apply()
    kept = planned.root / "Documents" / "a.txt"
    kept.write_bytes(b"ALPHA")  # through the link: both names see it

    refused = planned.rollback()

    # Neither the restore of the copy nor the move back of the kept file happen.
    assert refused == Counter(done=1, changed=2)
    assert (planned.root / "inbox" / "c.txt").read_bytes() == b"ALPHA"
    assert os.lstat(planned.root / "inbox" / "c.txt").st_ino == os.lstat(kept).st_ino


def test_undo_items_are_the_done_moves_newest_first(tmp_path: Path) -> None:
    planned = small(tmp_path)
    planned.plan()
    (planned.root / "Documents").mkdir()
    (planned.root / "Documents" / "b.txt").write_bytes(b"in the way")
    planned.apply()
    (journal,) = applied_journals(planned.store, planned.op_dir)
    done_order = [e["seq"] for e in read_journal(journal) if e["phase"] == "done"]  # apply order

    items = rollback.undo_items(journal)

    assert [item.seq for item in items] == done_order[::-1]
    assert len(items) == 2  # the conflict was not moved: nothing to undo
    assert all(item.action == "move" for item in items)
    assert {item.dst for item in items} == {b"inbox/a.txt", b"inbox/c.txt"}


@pytest.mark.parametrize("policy", POLICIES)
def test_undo_items_are_undo_of_each_done_entry(tmp_path: Path, policy: str) -> None:
    """undo_items' own making of a plain move's undo (tasks.apply.rollback._undo_move) gives
    the items undo_of gives, on the nasty tree (non-UTF-8 names, folders, hard links)."""
    planned = nasty(tmp_path, policy)
    planned.plan()
    planned.apply()
    for journal in applied_journals(planned.store, planned.op_dir):
        entries = read_journal(journal)
        intents = {e["seq"]: e for e in entries if e["phase"] == "intent"}
        ended = {e["seq"]: e for e in entries if e["phase"] in ("done", "skipped", "failed")}
        expected_items = [
            rollback.undo_of(intents[seq], ended[seq])
            for seq in reversed(intents)
            if seq in ended and ended[seq]["phase"] == "done"
        ]
        assert expected_items

        assert rollback.undo_items(entries) == expected_items


def test_rollback_removes_only_the_empty_folders_apply_made(tmp_path: Path) -> None:
    planned = Operation(tmp_path, PlanOptions(template="new/deeper/{name}"))
    (planned.root / "old" / "empty").mkdir(parents=True)
    (planned.root / "old" / "f.txt").write_bytes(b"f")
    (planned.root / "old" / "g.txt").write_bytes(b"g")
    before = snapshot(planned.root)
    planned.plan()
    planned.apply()
    (planned.root / "new" / "user file").write_bytes(b"made after the apply")

    planned.rollback()

    after = snapshot(planned.root)
    assert set(before) - set(after) == set()
    assert set(after) - set(before) == {b"new", b"new/user file"}  # new/deeper is gone
    assert (
        differences(before, {p: e for p, e in after.items() if p not in (b"new", b"new/user file")})
        == []
    )


# Generated trees ---------------------------------------------------------------------------

DIRS = [b"", b"d", b"D", b"d/e", b"caf\xe9", b"sp ace", b"y" * 200]
NAMES = [
    b"a.txt",
    b"A.TXT",
    b"caf\xe9.txt",
    b"caf\xc3\xa9.txt",
    b"z" * 250 + b".txt",
    b"sp ace.jpg",
    b"IMG_0001.jpg",
    b"IMG_0001.xmp",
    b"2020-01-15 invoice.pdf",
    b".hidden",
    b"noext",
]
CONTENTS = [b"", b"one", b"two", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00jpeg", b"x" * 5000]
MODES = [0o644, 0o600, 0o755, 0o444]

file_specs = st.lists(
    st.tuples(
        st.sampled_from(DIRS),
        st.sampled_from(NAMES),
        st.sampled_from(CONTENTS),
        st.sampled_from(MODES),
        st.integers(0, 5),
    ),
    min_size=1,
    max_size=20,
)
link_specs = st.lists(
    st.tuples(st.integers(0, 19), st.sampled_from(DIRS), st.sampled_from(NAMES)), max_size=3
)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("generated")


_examples = itertools.count()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=file_specs, links=link_specs, policy=st.sampled_from(POLICIES))
def test_round_trip_gives_generated_trees_back(
    workspace: Path,
    files: list[tuple[bytes, bytes, bytes, int, int]],
    links: list[tuple[int, bytes, bytes]],
    policy: str,
) -> None:
    planned = Operation(workspace / str(next(_examples)), PlanOptions(duplicates=policy))
    root = os.fsencode(planned.root)
    os.makedirs(root)
    made: list[bytes] = []
    for directory, name, content, mode, hours in files:
        rel = directory + b"/" + name if directory else name
        if rel in made:
            continue
        os.makedirs(os.path.dirname(root + b"/" + rel) or root, exist_ok=True)
        with open(root + b"/" + rel, "wb") as fh:
            fh.write(content)
        os.chmod(root + b"/" + rel, mode)
        stamp = 1_555_083_000 * 10**9 + hours * 3_600 * 10**9
        os.utime(root + b"/" + rel, ns=(stamp, stamp))
        made.append(rel)
    for index, directory, name in links:
        rel = directory + b"/" + name if directory else name
        if index < len(made) and not os.path.lexists(root + b"/" + rel):
            os.makedirs(os.path.dirname(root + b"/" + rel) or root, exist_ok=True)
            os.link(root + b"/" + made[index], root + b"/" + rel)
    os.symlink(b"../a.txt", root + b"/link-inside")
    os.symlink(os.fsencode(workspace), root + b"/link-outside")
    before = snapshot(planned.root)

    counts = planned.plan()
    across = linked_across_modes(planned.rows().values(), before)
    applied = planned.apply()
    undone = planned.rollback()

    expected_items = sum(counts.get(a, 0) for a in ("move", "quarantine", "hardlink"))
    assert across == set()  # a copy of another mode is left, not-linked, by the plan
    assert applied == +Counter(done=expected_items)
    assert undone == +Counter(done=expected_items)
    assert differences(before, snapshot(planned.root)) == []
