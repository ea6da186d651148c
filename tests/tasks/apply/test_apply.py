"""Apply as plain functions: re-checks against the scan, the journal, and resuming."""

from __future__ import annotations

import os
import shutil
import stat
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from storage.journal import Journal, apply_journal, last_phase, read_journal
from storage.operations import PlanOptions
from tasks.apply import engine, local
from tasks.apply import stage as apply
from tasks.apply.fsops import Identity, temp_name
from tasks.apply.items import items_from_plan
from tasks.apply.local import LocalMover
from tasks.apply.stage import LocalApply
from tests.apply_helpers import Operation, differences
from tests.trees import snapshot

STAMP = 1_555_083_000 * 10**9
TEXT = b"alpha, the only copy of this text"


def documents(base: Path, policy: str = "report") -> Operation:
    """Five documents with distinct contents (and, for duplicates, two copies of a.txt),
    planned to Documents/{name}."""
    op = Operation(base, PlanOptions(mode="category", duplicates=policy))
    files = {
        "inbox/a.txt": b"alpha",
        "inbox/b.txt": b"bravo",
        "inbox/c.txt": b"charlie",
        "inbox/sub/d.txt": b"delta",
        "e.txt": b"echo",
    }
    if policy != "report":
        files["inbox/sub/copy of a.txt"] = b"alpha"
    for i, (rel, content) in enumerate(files.items()):
        path = op.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        os.utime(path, ns=(STAMP + i, STAMP + i))
    return op


def change(root: Path, how: str) -> Path:
    """Change inbox/b.txt (or its folder) the way a user might between plan and apply."""
    path = root / "inbox" / "b.txt"
    st = os.lstat(path)
    if how == "rewritten, same size":
        path.write_bytes(b"BRAVO")
    elif how == "rewritten, same size and mtime":
        path.write_bytes(b"BRAVO")
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    elif how == "replaced, same size and mtime":
        (root / "new").write_bytes(b"bravo")
        os.utime(root / "new", ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(root / "new", path)
    elif how == "grown":
        with open(path, "ab") as fh:
            fh.write(b"!")
    elif how == "touched":
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    elif how == "deleted":
        path.unlink()
    elif how == "a symlink now":
        path.unlink()
        path.symlink_to("c.txt")
    elif how == "its folder deleted":
        shutil.rmtree(root / "inbox")
    elif how == "its folder a symlink now":
        os.rename(root / "inbox", root / "elsewhere")
        (root / "inbox").symlink_to("elsewhere")
    return path


@pytest.mark.parametrize(
    ("how", "expected_key", "expected_skipped"),
    [
        ("rewritten, same size", "changed", 1),
        # Same size, same mtime, same inode: the one change the scan's identity cannot see.
        ("rewritten, same size and mtime", None, 0),
        ("replaced, same size and mtime", "changed", 1),
        ("grown", "changed", 1),
        ("touched", "changed", 1),
        ("deleted", "vanished", 1),
        ("a symlink now", "changed", 1),
        ("its folder deleted", "vanished", 4),
        ("its folder a symlink now", "unsafe", 4),
    ],
)
def test_a_file_changed_since_the_scan_is_skipped_and_reported(
    tmp_path: Path, how: str, expected_key: str | None, expected_skipped: int
) -> None:
    op = documents(tmp_path)
    op.plan()
    path = change(op.root, how)
    changed = snapshot(op.root)

    counts = op.apply()

    expected = Counter(done=5 - expected_skipped)
    if expected_key:
        expected[expected_key] = expected_skipped
    assert counts == expected
    after = snapshot(op.root)
    if expected_skipped:
        # Left exactly as the user made it: not moved, not touched.
        rel = os.fsencode(path.relative_to(op.root))
        assert after.get(rel) == changed.get(rel)
        assert not (op.root / "Documents" / "b.txt").exists()
    else:
        assert (op.root / "Documents" / "b.txt").read_bytes() == b"BRAVO"
    assert (op.root / "Documents" / "e.txt").read_bytes() == b"echo"


def test_skips_are_journaled_with_their_reason(tmp_path: Path) -> None:
    op = documents(tmp_path)
    op.plan()
    change(op.root, "touched")
    (op.root / "inbox" / "c.txt").unlink()

    op.apply()

    (journal,) = op.journals()
    reasons = sorted(e["reason"] for e in read_journal(journal) if e["phase"] == "skipped")
    assert reasons == ["changed since scan", "vanished since scan"]


def planned_then_changed(base: Path, policy: str, how: str) -> tuple[Operation, Path]:
    """documents() with two copies of a.txt, planned under `policy`, then one copy changed
    `how` (its kept copy edited or deleted, the duplicate edited, or nothing): the operation
    and the duplicate's path."""
    op = documents(base, policy)
    op.plan()
    kept, copy = op.root / "inbox" / "a.txt", op.root / "inbox" / "sub" / "copy of a.txt"
    if how == "kept copy edited":
        kept.write_bytes(b"ALPHA")
    elif how == "kept copy deleted":
        kept.unlink()
    elif how == "duplicate edited":
        copy.write_bytes(b"ALPHA")
    return op, copy


@pytest.mark.parametrize(
    ("how", "expected_counts"),
    [
        ("kept copy edited", Counter(done=4, changed=2)),
        ("kept copy deleted", Counter(done=4, vanished=1, changed=1)),
        ("duplicate edited", Counter(done=5, changed=1)),
    ],
)
def test_hardlink_needs_both_copies_unchanged(
    tmp_path: Path, how: str, expected_counts: Counter[str]
) -> None:
    op, copy = planned_then_changed(tmp_path, "hardlink", how)

    counts = op.apply()

    assert counts == expected_counts
    assert os.lstat(copy).st_nlink == 1  # never linked to anything
    assert copy.read_bytes() == (b"ALPHA" if how == "duplicate edited" else b"alpha")


@pytest.mark.parametrize(
    ("how", "expected_counts"),
    [
        ("kept copy edited", Counter(done=4, changed=2)),
        ("kept copy deleted", Counter(done=4, vanished=1, changed=1)),
        ("kept copy untouched", Counter(done=6)),
    ],
)
def test_quarantine_needs_the_kept_copy_unchanged(
    tmp_path: Path, how: str, expected_counts: Counter[str]
) -> None:
    # With the kept copy gone (or another file now) since the plan, quarantining the other
    # copy left the only copy of the text hidden in .duplicates/: it stays where it is.
    op, copy = planned_then_changed(tmp_path, "quarantine", how)

    counts = op.apply()

    assert counts == expected_counts
    quarantined = op.root / ".duplicates" / "inbox" / "sub" / "copy of a.txt"
    if how == "kept copy untouched":
        assert quarantined.read_bytes() == b"alpha"
        assert (op.root / "Documents" / "a.txt").read_bytes() == b"alpha"
    else:
        assert copy.read_bytes() == b"alpha"
        assert not quarantined.exists()
        (journal,) = op.journals()
        reasons = [e["reason"] for e in read_journal(journal) if e["phase"] == "skipped"]
        assert "the kept copy changed or vanished since scan: not quarantined" in reasons


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_hardlink_leaves_a_copy_of_another_owner(tmp_path: Path) -> None:
    # One inode has one owner: linking nobody's copy to root's file would give nobody's path
    # to root (and root's mode), so nobody could no longer write their own file. A chown
    # after the plan changes no mtime, so apply checks the owners itself.
    op = documents(tmp_path, "hardlink")
    copy = op.root / "inbox" / "sub" / "copy of a.txt"
    op.plan()
    os.chown(copy, 65534, 65534)

    counts = op.apply()

    assert counts == Counter(done=5, conflicts=1)
    st = os.lstat(copy)
    assert (st.st_nlink, st.st_uid, st.st_gid) == (1, 65534, 65534)
    assert copy.read_bytes() == b"alpha"
    entries = [e for journal in op.journals() for e in read_journal(journal)]
    reasons = [e["reason"] for e in entries if e["phase"] == "skipped"]
    assert reasons == [
        "conflict: owned by 65534:65534, the kept copy by 0:0: not linked (a link has one owner)"
    ]


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_hardlink_is_not_planned_for_a_copy_of_another_owner(tmp_path: Path) -> None:
    # The plan says what apply will do: the scan records each file's owner, so the plan
    # leaves nobody's copy of root's file where it is and says why; apply refuses nothing.
    op = documents(tmp_path, "hardlink")
    copy = op.root / "inbox" / "sub" / "copy of a.txt"
    os.chown(copy, 65534, 65534)
    op.plan()
    row = op.rows()[b"inbox/sub/copy of a.txt"]

    counts = op.apply()

    assert (row["action"], row["reason_code"], row["link_to"]) == ("skip", "not-linked", None)
    assert row["reason"].endswith(
        ": not linked: owned by 65534:65534, the kept copy by 0:0 (a link has one owner)"
    )
    assert counts == Counter(done=5)
    assert [e for j in op.journals() for e in read_journal(j) if e["phase"] == "skipped"] == []
    st = os.lstat(copy)
    assert (st.st_nlink, st.st_uid, st.st_gid) == (1, 65534, 65534)
    assert copy.read_bytes() == b"alpha"


def test_hardlink_is_not_planned_for_a_copy_of_another_mode(tmp_path: Path) -> None:
    # The plan says what apply will do: apply would refuse this link (below), so the plan
    # leaves the copy where it is and says why, and apply has nothing to refuse.
    op = documents(tmp_path, "hardlink")
    copy = op.root / "inbox" / "sub" / "copy of a.txt"
    os.chmod(op.root / "inbox" / "a.txt", 0o644)
    os.chmod(copy, 0o600)
    op.plan()
    row = op.rows()[b"inbox/sub/copy of a.txt"]

    counts = op.apply()

    assert (row["action"], row["reason_code"], row["link_to"]) == ("skip", "not-linked", None)
    assert row["reason"].endswith(
        ": not linked: mode 0600, the kept copy's 0644 (a link has one mode)"
    )
    assert counts == Counter(done=5)
    st = os.lstat(copy)
    assert (st.st_nlink, stat.S_IMODE(st.st_mode)) == (1, 0o600)


def test_hardlink_leaves_a_copy_of_another_mode(tmp_path: Path) -> None:
    # One inode has one mode: linking a private 0600 copy to the kept 0644 file would make
    # that copy's path readable by everyone (and the kept one private, were it the other way).
    # A chmod after the plan changes no mtime, so apply checks the modes itself.
    op = documents(tmp_path, "hardlink")
    copy = op.root / "inbox" / "sub" / "copy of a.txt"
    os.chmod(op.root / "inbox" / "a.txt", 0o644)
    os.chmod(copy, 0o644)
    op.plan()
    os.chmod(copy, 0o600)

    counts = op.apply()

    assert counts == Counter(done=5, conflicts=1)
    st = os.lstat(copy)
    assert (st.st_nlink, stat.S_IMODE(st.st_mode)) == (1, 0o600)
    assert stat.S_IMODE(os.lstat(op.root / "Documents" / "a.txt").st_mode) == 0o644
    entries = [e for journal in op.journals() for e in read_journal(journal)]
    reasons = [e["reason"] for e in entries if e["phase"] == "skipped"]
    assert reasons == [
        "conflict: mode 0600, the kept copy's 0644: not linked (a link has one mode)"
    ]


def test_apply_twice_does_nothing_the_second_time(tmp_path: Path) -> None:
    op = documents(tmp_path, "hardlink")
    op.plan()
    first = op.apply()
    after_first = snapshot(op.root)

    second = op.apply()

    assert second == first == Counter(done=6)
    assert snapshot(op.root) == after_first


def test_the_intents_are_durable_before_anything_moves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    op = documents(tmp_path)
    op.plan()
    journal = apply_journal(op.store, op.op_dir, "move", 0)
    announced: list[set[str]] = []
    real = local.rename_noreplace

    def spy(*args: Any) -> None:
        latest = last_phase(read_journal(journal))
        announced.append({seq for seq, e in latest.items() if e["phase"] == "intent"})
        real(*args)

    monkeypatch.setattr(local, "rename_noreplace", spy)
    op.apply()

    expected_intents = {f"move-0-{i}" for i, row in enumerate(op.rows().values())}
    assert announced[0] == expected_intents
    phases = [(e["seq"], e["phase"]) for e in read_journal(journal) if e["seq"].startswith("m")]
    for seq in expected_intents:
        assert phases.index((seq, "intent")) < phases.index((seq, "done"))


def test_a_failing_move_is_reported_and_the_rest_applied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    op = documents(tmp_path)
    op.plan()
    real = local.rename_noreplace

    def refusing(src_fd: int, src: bytes, dst_fd: int, dst: bytes) -> None:
        if src == b"c.txt":
            raise PermissionError(13, "Permission denied")
        real(src_fd, src, dst_fd, dst)

    monkeypatch.setattr(local, "rename_noreplace", refusing)
    counts = op.apply()

    assert counts == Counter(done=4, errors=1)
    assert (op.root / "inbox" / "c.txt").read_bytes() == b"charlie"


def test_a_line_torn_by_a_crash_does_not_swallow_the_next_one(tmp_path: Path) -> None:
    path = str(tmp_path / "journal.jsonl")
    with Journal(path) as journal:
        journal.add({"seq": "1", "phase": "intent"})
    with open(path, "ab") as fh:
        fh.write(b'{"seq": "2", "pha')  # a write cut short

    with Journal(path) as journal:
        journal.add({"seq": "3", "phase": "intent"})

    assert [e["seq"] for e in read_journal(path)] == ["1", "3"]


def test_an_apply_resumed_after_a_torn_line_rolls_back_whole(tmp_path: Path) -> None:
    op = Operation(tmp_path, PlanOptions(mode="category"))
    (op.root / "inbox").mkdir(parents=True)
    for name in "abcde":
        (op.root / "inbox" / f"{name}.txt").write_bytes(name.encode())
    before = snapshot(op.root)
    op.plan()
    items = items_from_plan(list(op.rows().values()), "move", 0, {})
    journal = apply_journal(op.store, op.op_dir, "move", 0)
    engine.carry_out(LocalMover(os.fsencode(op.root)), items[:2], journal)  # a first batch
    with open(journal, "ab") as fh:
        fh.write(b'{"seq": "move-0-2", "phase": "inte')  # the next one was cut short

    resumed = op.apply()
    undone = op.rollback()

    assert resumed == undone == Counter(done=5)
    assert differences(before, snapshot(op.root)) == []


def test_resume_skips_an_announced_hardlink_whose_folder_is_gone(tmp_path: Path) -> None:
    """A crash right after the intents, then the user deletes the copy's folder: the resume
    reports the copy as vanished instead of failing the whole shard."""
    op = documents(tmp_path, "hardlink")
    op.plan()
    apply.apply_shard(op.store, op.op_dir, LocalApply(str(op.root)), "move", 0)
    kept = apply.kept_identities(op.store, op.op_dir)
    (item,) = items_from_plan(list(op.rows().values()), "link", 0, kept)
    with Journal(apply_journal(op.store, op.op_dir, "link", 0)) as journal:
        journal.add(item.intent())
    shutil.rmtree(op.root / "inbox" / "sub")

    counts = apply.apply_shard(op.store, op.op_dir, LocalApply(str(op.root)), "link", 0)

    assert counts == Counter(vanished=1)


def _edit_one_byte_in_place(path: Path) -> None:
    """The change a size, mtime and inode check cannot see: one byte rewritten in place,
    the size kept and the mtime put back."""
    st = os.lstat(path)
    with open(path, "r+b") as fh:
        first = fh.read(1)
        fh.seek(0)
        fh.write(bytes([first[0] ^ 0x20]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = os.lstat(path)
    assert Identity.of(after) == Identity.of(st)


@pytest.mark.parametrize(
    ("edited", "reason"),
    [
        ("copy", "content changed since scan: not linked"),
        ("kept copy", "the kept copy's content changed since scan: not linked"),
    ],
)
def test_hardlink_compares_the_bytes_of_both_copies_at_apply_time(
    tmp_path: Path, edited: str, reason: str
) -> None:
    """Issue 12 point 5: an edit that keeps the size and the mtime is never replaced by a link,
    and an edited kept copy never replaces the content of its copies."""
    op = Operation(tmp_path, PlanOptions(mode="category", duplicates="hardlink"))
    copies = [f"old/copy {i}.txt" for i in range(4)]
    for i, rel in enumerate(["inbox/a.txt", *copies]):
        path = op.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(TEXT if i == 0 else b"")
        if i:
            shutil.copyfile(op.root / "inbox/a.txt", path)
        os.utime(path, ns=(STAMP + i, STAMP + i))
    op.plan()
    rows = op.rows()
    assert [rows[os.fsencode(c)]["action"] for c in copies] == ["hardlink"] * 4
    victim = op.root / ("old/copy 0.txt" if edited == "copy" else "inbox/a.txt")
    _edit_one_byte_in_place(victim)
    edited_bytes = victim.read_bytes()

    counts = op.apply()

    linked = 3 if edited == "copy" else 0
    assert counts == Counter(done=1 + linked, changed=4 - linked)
    kept = op.root / os.fsdecode(rows[b"inbox/a.txt"]["dst"])
    assert kept.read_bytes() == (edited_bytes if edited == "kept copy" else TEXT)
    if edited == "copy":
        assert (op.root / copies[0]).read_bytes() == edited_bytes
        assert os.lstat(op.root / copies[0]).st_nlink == 1
    for rel in copies[1:] if edited == "copy" else copies:
        assert (op.root / rel).read_bytes() == TEXT
    journal = next(j for j in op.journals() if "/link-" in j)
    reasons = [e["reason"] for e in read_journal(journal) if e["phase"] == "skipped"]
    assert reasons == [reason] * (4 - linked)
    assert not [p for p in snapshot(op.root) if p.rpartition(b"/")[2].startswith(b".fileorg-")]


def test_a_resumed_hardlink_puts_back_a_copy_edited_while_set_aside(tmp_path: Path) -> None:
    """A crash between the link and the removal of the copy set aside, the copy's bytes
    changed meanwhile (same size and mtime): the resume puts the copy back, never drops it."""
    op = documents(tmp_path, "hardlink")
    op.plan()
    apply.apply_shard(op.store, op.op_dir, LocalApply(str(op.root)), "move", 0)
    kept = apply.kept_identities(op.store, op.op_dir)
    (item,) = items_from_plan(list(op.rows().values()), "link", 0, kept)
    assert item.digest is not None
    with Journal(apply_journal(op.store, op.op_dir, "link", 0)) as journal:
        journal.add(item.intent())
    copy = op.root / os.fsdecode(item.src)
    aside = copy.parent / os.fsdecode(temp_name(item.seq, "aside"))
    os.rename(copy, aside)
    _edit_one_byte_in_place(aside)
    os.link(op.root / os.fsdecode(item.link_to or b""), copy)  # the crash came here

    counts = apply.apply_shard(op.store, op.op_dir, LocalApply(str(op.root)), "link", 0)

    assert counts == Counter(changed=1)
    assert copy.read_bytes() == b"Alpha" and os.lstat(copy).st_nlink == 1
    assert not aside.exists()
