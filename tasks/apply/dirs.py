"""The folders around the moves: their times, the ones apply made, the ones it emptied.

A rename changes its folders' mtimes, so apply journals the times of every existing folder a
batch will change, once, before the batch (`dirmeta`), and every folder it makes (`mkdir`,
before it exists); rollback removes the folders apply made once they are empty again, and
gives every folder its times back.

Folders apply emptied: removed after the moves, and re-created by rollback.

Only a folder this apply emptied is removed: an ancestor of a file or folder it moved away
(never the root), that is empty now (os.rmdir refuses one that still holds anything, a hidden
file left alone included). A folder that was empty before apply is never a candidate: it held
nothing that moved. Each removal is journaled, fsynced, before it happens (`rmdir`, with the
folder's mode and times, and first the times of its parent, which the removal changes), and
confirmed after (`removed`); the journal is `journal/apply/rmdir-00000.jsonl` beside the move
journals. After a kill -9 the same command finishes the work, and rollback re-creates every
folder announced for removal that is missing, shallowest first, with its mode; the times are
then given back with every other folder's (restore_dir_times).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterable, Sequence

from storage.file_flags import described, flags_of
from storage.journal import Entry, Journal, decode_path, encode_path, last_phase, read_journal
from tasks.apply.fsops import UnsafePath, lstat_at, open_root, parent_of, stat_rel
from tasks.apply.items import Item

RMDIR = "rmdir"
# The entries created_dirs and restore_dir_times read.
FOLDER_PHASES = frozenset({"dirmeta", "mkdir", RMDIR})
Kept = tuple[bytes, str]  # a folder rollback leaves where it is, and why


def _dirmeta(key: str, st: os.stat_result) -> Entry:
    return {"seq": f"dir:{key}", "phase": "dirmeta", "path": key, **_times_of(st)}


def folder_times(
    root_fd: int, batch: Sequence[Item], known: set[str], seen: set[str]
) -> list[Entry]:
    """The times of every existing folder a batch will change that no entry has recorded yet
    (`known`), to journal before the batch, so that rollback can give them back."""
    entries = []
    looked_at: set[bytes] = set()  # a batch has a few folders and thousands of items
    for item in batch:
        for path in (item.src, item.dst):
            rel = path.rpartition(b"/")[0]
            if rel in looked_at:
                continue
            looked_at.add(rel)
            key = encode_path(rel)
            if key in known or key is None:
                continue
            known.add(key)
            st = os.fstat(root_fd) if not rel else stat_rel(root_fd, rel)
            if st is not None and stat.S_ISDIR(st.st_mode):
                seen.add(key)
                entries.append(_dirmeta(key, st))
    return entries


def parent_times(root_fd: int, rel_dir: bytes, made: set[str], seen: set[str]) -> list[Entry]:
    """A folder about to be made changes its parent's times (the root's, for a new top-level
    folder): journaled first, so that rollback gives them back."""
    parent = rel_dir.rpartition(b"/")[0]
    key = encode_path(parent)
    if key is None or key in made or key in seen:
        return []
    st = os.fstat(root_fd) if not parent else stat_rel(root_fd, parent)
    if st is None or not stat.S_ISDIR(st.st_mode):
        return []
    seen.add(key)
    return [_dirmeta(key, st)]


def created_dirs(entries: list[Entry]) -> list[bytes]:
    """The folders an apply journal (its entries) says apply made."""
    paths = [decode_path(e["path"]) for e in entries if e["phase"] == "mkdir"]
    return [p for p in paths if p is not None]


def _deepest_first(paths: Iterable[bytes]) -> list[bytes]:
    return sorted(set(paths), key=lambda p: (-p.count(b"/"), p))


def remove_empty_dirs(root: bytes, dirs: list[bytes]) -> tuple[int, list[Kept]]:
    """Remove directories apply created, deepest first, where they are empty again. Returns
    (how many were removed, the ones that stay, each with why: a rollback says so)."""
    removed, kept = 0, []
    with open_root(root) as root_fd:
        for rel in _deepest_first(dirs):
            try:
                with parent_of(root_fd, rel) as (fd, name):
                    try:
                        os.rmdir(name, dir_fd=fd)
                        removed += 1
                    except OSError as exc:
                        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                            kept.append((rel, what_it_holds(fd, name)))
                        elif exc.errno != errno.ENOENT:
                            kept.append((rel, not_removed(fd, name, exc)))
            except FileNotFoundError:
                continue  # gone already: nothing stays
            except (NotADirectoryError, UnsafePath):
                kept.append((rel, "not a folder any more (or reached through a symlink)"))
    return removed, kept


def not_removed(fd: int, name: bytes, exc: OSError) -> str:
    """Why rmdir refused: its own words, or for EPERM the flag of the folder or of the folder
    holding it that chmod cannot change (storage.file_flags)."""
    if exc.errno == errno.EPERM:
        for flagged, where in (
            (flags_of(fd, name), "it is"),
            (flags_of(fd, b"."), "its parent is"),
        ):
            what = described(flagged)
            if what is not None:
                return f"not permitted: {where} {what}"
    return exc.strerror or str(exc)


def what_it_holds(fd: int, name: bytes, shown: int = 3) -> str:
    """Why a folder is not empty, in its own words: the first few names it holds (whatever
    was added since apply, or a file the rollback could not take back)."""
    try:
        child = os.open(name, _DIR, dir_fd=fd)
    except OSError as exc:
        return f"not empty, and cannot be read: {exc.strerror}"
    try:
        names = sorted(os.listdir(child))
    except OSError as exc:
        return f"not empty, and cannot be read: {exc.strerror}"
    finally:
        os.close(child)
    first = ", ".join(names[:shown])  # str: os.listdir of a descriptor fsdecodes
    more = f" and {len(names) - shown:,} more" if len(names) > shown else ""
    return f"not empty: it holds {first}{more}"


def restore_dir_times(root: bytes, apply_journals: list[list[Entry]]) -> int:
    """Give directories the times they had before the apply (the earliest record wins), from
    the entries of the apply journals."""
    times: dict[bytes, tuple[int, int]] = {}
    for journal in apply_journals:
        for e in journal:
            # A folder apply removed has its times in its `rmdir` entry, the last resort.
            path = decode_path(e.get("path")) if e["phase"] in ("dirmeta", "rmdir") else None
            if path is not None and path not in times:
                times[path] = (int(e["atime_ns"]), int(e["mtime_ns"]))
    restored = 0
    with open_root(root) as root_fd:
        for rel, ns in times.items():
            if not rel:
                os.utime(root_fd, ns=ns)
                restored += 1
                continue
            with (
                contextlib.suppress(FileNotFoundError, UnsafePath, NotADirectoryError),
                parent_of(root_fd, rel) as (fd, name),
            ):
                os.utime(name, dir_fd=fd, ns=ns, follow_symlinks=False)
                restored += 1
    return restored


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
        for rel in _deepest_first(candidates):
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
        journal.add(_dirmeta(parent, os.fstat(fd)))
    entry = {"seq": seq, "phase": RMDIR, "path": key, "mode": st.st_mode, **owner}
    journal.add({**entry, **_times_of(st)})
    journal.sync()
    try:
        os.rmdir(name, dir_fd=fd)
    except OSError as exc:
        # Filled meanwhile (ENOTEMPTY), a mount point (EBUSY), not ours to remove (EACCES):
        # the folder stays, and the rest of the apply goes on.
        journal.add({"seq": seq, "phase": "kept", "reason": not_removed(fd, name, exc)})
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


def recreate(root: bytes, journal_path: str) -> tuple[int, list[Kept]]:
    """Rollback: re-create every folder announced for removal that is missing, shallowest
    first, with its mode. Returns (how many were made, the ones that could not be, with why:
    something that is not a folder has its name, or a folder's above it)."""
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
                            taken.append((rel, f"not made again: {_a_thing(st)} has its name"))
                        continue
                    os.mkdir(name, 0o700, dir_fd=fd)
                    _as_it_was(fd, name, entry)
                    os.fsync(fd)
                    made += 1
            except (NotADirectoryError, UnsafePath):
                above = "not made again: a folder above it is a file or a symlink now"
                taken.append((rel, above))
    return made, taken


def _a_thing(st: os.stat_result) -> str:
    return "a symlink" if stat.S_ISLNK(st.st_mode) else "a file"
