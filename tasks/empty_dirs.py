"""Folders apply emptied: removed after the moves, and re-created by rollback.

Only a folder this apply emptied is removed: an ancestor of a file or folder it moved away
(never the root), that is empty now (os.rmdir refuses one that still holds anything, a hidden
file left alone included). A folder that was empty before apply is never a candidate: it held
nothing that moved. Each removal is journaled, fsynced, before it happens (`rmdir`, with the
folder's mode and times, and first the times of its parent, which the removal changes), and
confirmed after (`removed`); the journal is `journal/apply/rmdir-00000.jsonl` beside the move
journals. After a kill -9 the same command finishes the work, and rollback re-creates every
folder announced for removal that is missing, shallowest first, with its mode; the times are
then given back with every other folder's (tasks.rollback.restore_dir_times).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable

from storage.journal import Entry, Journal, decode_path, encode_path, last_phase, read_journal
from tasks.fsops import UnsafePath, lstat_at, open_root, parent_of

RMDIR = "rmdir"


def ancestors(paths: Iterable[bytes]) -> set[bytes]:
    """Every folder above `paths`, up to (not including) the root."""
    found: set[bytes] = set()
    for path in paths:
        parent = path.rpartition(b"/")[0]
        while parent and parent not in found:
            found.add(parent)
            parent = parent.rpartition(b"/")[0]
    return found


def moved_sources(entries: list[Entry]) -> list[bytes]:
    """The original paths of the items an apply journal confirms done (files and folders)."""
    latest = last_phase(entries)
    sources = []
    for entry in entries:
        if entry["phase"] != "intent" or entry["action"] == "hardlink":
            continue
        if latest.get(entry["seq"], {}).get("phase") == "done":
            src = decode_path(entry.get("src"))
            if src is not None:
                sources.append(src)
    return sources


def _times_of(st: os.stat_result) -> Entry:
    return {"atime_ns": st.st_atime_ns, "mtime_ns": st.st_mtime_ns}


def remove_emptied(
    root: bytes, candidates: Iterable[bytes], journal_path: str, known: set[str]
) -> int:
    """Remove the candidates that are empty, deepest first; journaled. `known` holds the folders
    whose times the apply journals already recorded. Returns how many were removed."""
    latest = last_phase(read_journal(journal_path))
    removed = 0
    with Journal(journal_path) as journal, open_root(root) as root_fd:
        for rel in sorted(set(candidates), key=lambda p: (-p.count(b"/"), p)):
            key = encode_path(rel)
            assert key is not None
            if latest.get(f"{RMDIR}:{key}", {}).get("phase") == "removed":
                removed += 1
                continue
            with (
                contextlib.suppress(FileNotFoundError, NotADirectoryError, UnsafePath),
                parent_of(root_fd, rel) as (fd, name),
            ):
                removed += _remove_one(fd, name, rel, journal, known)
    return removed


def _remove_one(fd: int, name: bytes, rel: bytes, journal: Journal, known: set[str]) -> int:
    key = encode_path(rel)
    seq = f"{RMDIR}:{key}"
    st = lstat_at(fd, name)
    if st is None:
        # Announced by a run a crash cut short, and gone: that run removed it.
        journal.add({"seq": seq, "phase": "removed", "recovered": True})
        return 1
    if not stat.S_ISDIR(st.st_mode) or _has_entries(fd, name):
        return 0
    owner = {"uid": st.st_uid, "gid": st.st_gid}
    parent = encode_path(rel.rpartition(b"/")[0])
    assert parent is not None
    if parent not in known:  # the removal changes its parent's times: recorded first
        known.add(parent)
        times = _times_of(os.fstat(fd))
        journal.add({"seq": f"dir:{parent}", "phase": "dirmeta", "path": parent, **times})
    entry = {"seq": seq, "phase": RMDIR, "path": key, "mode": st.st_mode, **owner}
    journal.add({**entry, **_times_of(st)})
    journal.sync()
    try:
        os.rmdir(name, dir_fd=fd)
    except OSError as exc:
        # Filled meanwhile (ENOTEMPTY), a mount point (EBUSY), not ours to remove (EACCES):
        # the folder stays, and the rest of the apply goes on.
        journal.add({"seq": seq, "phase": "kept", "reason": exc.strerror or str(exc)})
        return 0
    os.fsync(fd)
    journal.add({"seq": seq, "phase": "removed"})
    journal.sync()
    return 1


_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _has_entries(fd: int, name: bytes) -> bool:
    """True unless the folder is readable and empty (one that cannot be read stays)."""
    try:
        child = os.open(name, _DIR, dir_fd=fd)
    except OSError:
        return True
    try:
        with os.scandir(child) as entries:
            return any(True for _ in entries)
    except OSError:
        return True
    finally:
        os.close(child)


def _as_it_was(fd: int, name: bytes, entry: Entry) -> None:
    """The owner and mode the folder had, whatever the umask (an owner only where this
    process may give it: root's, for a service organizing other users' folders)."""
    child = os.open(name, _DIR, dir_fd=fd)
    try:
        if "uid" in entry:
            with contextlib.suppress(PermissionError):
                os.fchown(child, int(entry["uid"]), int(entry["gid"]))
        os.fchmod(child, stat.S_IMODE(int(entry["mode"])))
    finally:
        os.close(child)


def recreate(root: bytes, journal_path: str) -> tuple[int, list[bytes]]:
    """Rollback: re-create every folder announced for removal that is missing, shallowest
    first, with its mode. Returns (how many were made, the paths that are taken by something
    that is not a folder)."""
    entries = read_journal(journal_path)
    latest = last_phase(entries)
    announced: dict[bytes, Entry] = {}
    for e in entries:
        path = decode_path(e.get("path")) if e["phase"] == RMDIR else None
        if path is not None and latest[e["seq"]]["phase"] != "kept":
            announced.setdefault(path, e)  # as it was first seen
    made, taken = 0, []
    with open_root(root) as root_fd:
        for rel, entry in sorted(announced.items(), key=lambda i: (i[0].count(b"/"), i[0])):
            try:
                with parent_of(root_fd, rel, create=True) as (fd, name):
                    st = lstat_at(fd, name)
                    if st is not None:
                        if not stat.S_ISDIR(st.st_mode):
                            taken.append(rel)
                        continue
                    os.mkdir(name, 0o700, dir_fd=fd)
                    _as_it_was(fd, name, entry)
                    os.fsync(fd)
                    made += 1
            except (NotADirectoryError, UnsafePath):
                taken.append(rel)
    return made, taken
