"""Local crash recovery: what an interrupted item became, decided from the files.

The journal says an item was announced (its intent) and maybe how far it got (a
cross-device copy's inode, `copied`); the files say the rest. Each case below either finishes
the item (and returns its `done` outcome, marked recovered) or puts the files back as they
were before it and returns None, so that the redo re-checks it from the start. Leftovers are
removed only when they are provably apply's own (a temporary name holding our inode).
"""

from __future__ import annotations

import os

from storage.journal import Entry, last_phase
from tasks.apply.folders import reconcile_folder
from tasks.apply.fsops import (
    Identity,
    UnsafePath,
    digest_at,
    lstat_at,
    open_root,
    parent_of,
    rename_noreplace,
    stat_rel,
    temp_name,
)
from tasks.apply.items import MOVE_DIR, MOVING, RESTORE, RESTORE_DIR, Item, Skip, decoded


def check_kept(root_fd: int, item: Item) -> None:
    """A duplicate is quarantined only while its kept copy (`item.meta`: its identity as
    scanned, and its paths before and after this apply) is still that file, where it was or
    where this apply put it: with it gone or edited, the copy moved to .duplicates/ would be
    the only one of its bytes left, hidden. Nothing to check for any other item."""
    if item.meta is None or item.action != "quarantine":
        return
    kept: Identity = item.meta["kept"]
    scanned, final = item.meta["paths"]
    st = stat_rel(root_fd, scanned)
    if st is not None and kept.matches(st):
        return
    st = stat_rel(root_fd, final)  # moved: to another filesystem, a copy with its mtime
    if st is not None and kept.matches(st, same_inode=False):
        return
    raise Skip("the kept copy changed or vanished since scan: not quarantined")


def moved_back(root_fd: int, item: Item) -> Entry:
    """The outcome of a move whose file is gone: for an undo whose very file (inode, size,
    mtime) is at its original path already, moved back by hand, done, so that a tree put back
    by hand rolls back complete (not refused for good, and blocking older rollbacks);
    otherwise skipped as vanished. Nothing is moved."""
    st = stat_rel(root_fd, item.dst) if item.undo else None
    if st is None or not item.identity.matches(st):
        raise Skip("vanished since scan")
    return {
        "seq": item.seq,
        "phase": "done",
        "method": "rename",
        "dev": st.st_dev,
        "ino": st.st_ino,
    }


def _reconcile_restore(root_fd: int, item: Item) -> Entry | None:
    assert item.link_to is not None
    aside, tmp = temp_name(item.seq, "aside"), temp_name(item.seq, "restore")
    kept_st = stat_rel(root_fd, item.link_to)
    with parent_of(root_fd, item.src) as (fd, name):
        st = lstat_at(fd, name)
        aside_st = lstat_at(fd, aside)
        if _half_renamed(fd, aside, aside_st, st):
            return None  # as before the rename of the link aside: redo
        independent = (
            st is not None
            and kept_st is not None
            and (st.st_dev, st.st_ino) != (kept_st.st_dev, kept_st.st_ino)
        )
        if independent:  # the copy is in place: drop the link set aside and the copy's name
            assert st is not None
            tmp_st = lstat_at(fd, tmp)
            if tmp_st is not None and (tmp_st.st_dev, tmp_st.st_ino) == (st.st_dev, st.st_ino):
                os.unlink(tmp, dir_fd=fd)  # its link()+unlink() rename into place, cut short
            if aside_st is not None:
                os.unlink(aside, dir_fd=fd)
            os.fsync(fd)
            return {"seq": item.seq, "phase": "done", "recovered": True}
        if aside_st is not None and st is None:
            rename_noreplace(fd, aside, fd, name)  # back to the linked state, then redo
            os.fsync(fd)
    return None


def _half_renamed(
    fd: int, aside: bytes, aside_st: os.stat_result | None, st: os.stat_result | None
) -> bool:
    """A rename between the name and the aside name done as link() + unlink() (filesystems
    without RENAME_NOREPLACE) and cut between the two: both names are one inode. Dropping
    the aside name gives back the state before that rename."""
    if aside_st is None or st is None:
        return False
    if (aside_st.st_dev, aside_st.st_ino) != (st.st_dev, st.st_ino):
        return False
    os.unlink(aside, dir_fd=fd)
    os.fsync(fd)
    return True


def reconcile(root_fd: int, item: Item, intent: Entry | None = None) -> Entry | None:
    """An intent without an outcome (a crash): what the files say happened, or None to redo."""
    try:
        return _reconcile(root_fd, item, intent)
    except (FileNotFoundError, NotADirectoryError, UnsafePath):
        return None  # its folder is gone or unsafe now: the redo skips it and says why


def _reconcile(root_fd: int, item: Item, intent: Entry | None) -> Entry | None:
    if item.action in (MOVE_DIR, RESTORE_DIR):
        return reconcile_folder(root_fd, item.seq, item.dst, item.identity)
    if item.action == "hardlink":
        return _reconcile_hardlink(root_fd, item, intent)
    if item.action == RESTORE:
        return _reconcile_restore(root_fd, item)
    src_st = stat_rel(root_fd, item.src)
    dst_st = stat_rel(root_fd, item.dst)
    copied = intent if intent is not None and intent["phase"] == "copied" else None
    if (
        dst_st is not None
        and copied is not None
        and (dst_st.st_dev, dst_st.st_ino) == (copied["dev"], copied["ino"])
    ):
        return _finish_copy(root_fd, item, src_st, dst_st)
    if dst_st is not None and item.identity.matches(dst_st):
        if src_st is not None and (src_st.st_dev, src_st.st_ino) == (dst_st.st_dev, dst_st.st_ino):
            # Interrupted between link() and unlink() of the fallback rename: finish it.
            with parent_of(root_fd, item.src) as (fd, name):
                os.unlink(name, dir_fd=fd)
                os.fsync(fd)
        return _recovered_move(item, "rename", dst_st)
    if (
        dst_st is not None
        and src_st is not None
        and item.identity.matches(src_st)
        and item.identity.matches(dst_st, same_inode=False)
    ):
        # Interrupted cross-device copy after the link into place: equal content finishes it.
        with (
            parent_of(root_fd, item.src) as (sfd, sname),
            parent_of(root_fd, item.dst) as (dfd, dname),
        ):
            if digest_at(sfd, sname) == digest_at(dfd, dname):
                os.unlink(sname, dir_fd=sfd)
                os.fsync(sfd)
                return _recovered_move(item, "copy", dst_st)
    if src_st is not None and item.identity.matches(src_st):
        # Not carried out, the source intact: a cross-device copy cut short is only debris.
        with parent_of(root_fd, item.dst) as (fd, _):
            if lstat_at(fd, temp_name(item.seq, "copy")) is not None:
                os.unlink(temp_name(item.seq, "copy"), dir_fd=fd)
    return None


def _recovered_move(item: Item, method: str, dst_st: os.stat_result) -> Entry:
    """The outcome a crash kept from the journal, as the files show it: the move is done."""
    return {
        "seq": item.seq,
        "phase": "done",
        "method": method,
        "dev": dst_st.st_dev,
        "ino": dst_st.st_ino,
        "recovered": True,
    }


def _finish_copy(
    root_fd: int, item: Item, src_st: os.stat_result | None, dst_st: os.stat_result
) -> Entry:
    """A cross-device copy is in place (its inode was journaled): drop our temporary name
    and the source, if they are still there."""
    with parent_of(root_fd, item.dst) as (fd, name):
        tmp = temp_name(item.seq, "copy")
        tmp_st = lstat_at(fd, tmp)
        if tmp_st is not None and (tmp_st.st_dev, tmp_st.st_ino) == (dst_st.st_dev, dst_st.st_ino):
            os.unlink(tmp, dir_fd=fd)
            os.fsync(fd)
    if src_st is not None and item.identity.matches(src_st):
        with parent_of(root_fd, item.src) as (fd, name):
            os.unlink(name, dir_fd=fd)
            os.fsync(fd)
    return _recovered_move(item, "copy", dst_st)


def _reconcile_hardlink(root_fd: int, item: Item, intent: Entry | None) -> Entry | None:
    assert item.link_to is not None and item.kept is not None
    aside = temp_name(item.seq, "aside")
    kept_st = stat_rel(root_fd, item.link_to)
    with parent_of(root_fd, item.src) as (fd, name):
        st = lstat_at(fd, name)
        aside_st = lstat_at(fd, aside)
        if _half_renamed(fd, aside, aside_st, st):
            return None  # as before the copy was set aside (or after it was put back): redo
        linked = (
            st is not None
            and kept_st is not None
            and (st.st_dev, st.st_ino) == (kept_st.st_dev, kept_st.st_ino)
        )
        if aside_st is not None and item.identity.matches(aside_st):
            if linked and not _unlinked_if_differs(fd, name, aside, kept_st, item.digest):
                os.unlink(aside, dir_fd=fd)
                os.fsync(fd)
                return _hardlink_done(item, aside_st, intent)
            if st is None:
                rename_noreplace(fd, aside, fd, name)  # put the copy back, then redo
                os.fsync(fd)
            return None
        if linked:
            return None if aside_st is not None else _hardlink_done(item, None, intent)
    return None


def _unlinked_if_differs(
    fd: int, name: bytes, aside: bytes, kept_st: os.stat_result | None, planned: bytes | None
) -> bool:
    """Cut short between the link and the removal of the copy set aside: the copy goes only if
    its bytes are the plan's. Otherwise the link is dropped and the copy put back under its
    name; the redo then skips it with its reason."""
    if planned is None:
        return False
    try:
        if digest_at(fd, aside) == planned:
            return False
    except OSError:
        return False
    st = lstat_at(fd, name)
    if st is None or kept_st is None or (st.st_dev, st.st_ino) != (kept_st.st_dev, kept_st.st_ino):
        return False
    os.unlink(name, dir_fd=fd)
    rename_noreplace(fd, aside, fd, name)
    os.fsync(fd)
    return True


def _hardlink_done(item: Item, st: os.stat_result | None, intent: Entry | None) -> Entry:
    entry: Entry = {"seq": item.seq, "phase": "done", "recovered": True}
    if st is not None:
        entry.update(
            mode=st.st_mode,
            uid=st.st_uid,
            gid=st.st_gid,
            atime_ns=st.st_atime_ns,
            mtime_ns=st.st_mtime_ns,
        )
    else:
        # The copy's inode is gone: its mode and atime as the intent recorded them, and the
        # scan's mtime (it matched at apply time) are what rollback gives back.
        copy = (intent or {}).get("copy") or {}
        entry.update(
            mode=int(copy.get("mode", 0o100644)),
            mtime_ns=item.identity.mtime_ns,
            atime_ns=int(copy.get("atime_ns", item.identity.mtime_ns)),
        )
    return entry


def sweep_copies(root: bytes, entries: list[Entry]) -> int:
    """Partial copies a move across devices left behind (a run cut short, or an older fileorg
    that did not clean up after a full disk), from an apply journal's entries: each is
    removed where the file it copies is still intact at its source. Returns how many are
    left, which keeps the rollback from being reported complete.

    Only an item whose rename failed with EXDEV was ever copied: one the journal says was
    renamed has its source and destination on one filesystem, and its undo too, so nothing
    is looked for beside it (at 200,000 moves, two lookups each took seconds)."""
    done = last_phase(entries)
    left = 0
    with open_root(root) as root_fd:
        for intent in entries:
            if intent["phase"] != "intent" or intent["action"] not in MOVING:
                continue
            outcome = done.get(intent["seq"], {})
            if outcome.get("phase") == "done" and outcome.get("method") == "rename":
                continue
            src, dst = decoded(intent, "src"), decoded(intent, "dst")
            scanned = Identity(*(int(intent[k]) for k in ("dev", "ino", "size", "mtime_ns")))
            left += _drop_copy(root_fd, dst, src, scanned, intent["seq"])
            if outcome.get("phase") == "done" and "dev" in outcome:  # its undo copied back
                moved = Identity(
                    int(outcome["dev"]), int(outcome["ino"]), scanned.size, scanned.mtime_ns
                )
                left += _drop_copy(root_fd, src, dst, moved, intent["seq"])
    return left


def _drop_copy(root_fd: int, beside: bytes, source: bytes, identity: Identity, seq: str) -> int:
    """Remove the copy of `source` left beside `beside` if `source` is intact; 1 if it stays."""
    tmp = temp_name(seq, "copy")
    try:
        with parent_of(root_fd, beside) as (fd, _):
            if lstat_at(fd, tmp) is None:
                return 0
            with parent_of(root_fd, source) as (src_fd, name):
                st = lstat_at(src_fd, name)
            if st is None or not identity.matches(st):
                return 1  # maybe the only copy left: a person decides
            os.unlink(tmp, dir_fd=fd)
            os.fsync(fd)
    except (FileNotFoundError, NotADirectoryError, UnsafePath):
        return 0
    return 0
