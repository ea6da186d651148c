"""The scan of a local root: an lstat walk. Never follows symlinks.

The walk does not enter what is left alone whole (tasks.leave_alone): a folder whose name or
contents say so (node_modules, a project, a Prefect home...) becomes one `dir` row with its
reason code, however many files it holds; files left alone by their name (.bashrc, .DS_Store)
are rows of their own, marked, which later stages neither classify nor hash. When the root
itself is a unit (a project), every entry at its top is such a row and nothing is entered.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

from tasks.leave_alone import LeftAlone, ScanRules, by_contents, by_name
from tasks.scan.entry import ScanEntry


def walk(root: bytes, rules: ScanRules = ScanRules()) -> Iterator[ScanEntry]:
    """Every entry under `root` except directories, in a deterministic order; a directory
    left alone whole is one `dir` row instead of its contents. An unreadable directory is
    one `error` entry, not the end of the walk."""
    prefix_len = len(root.rstrip(b"/")) + 1
    stack: list[tuple[bytes, os.stat_result | None]] = [(root, None)]
    while stack:
        directory, dir_st = stack.pop()
        rel_dir = directory[prefix_len:]
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            if directory == root:
                raise
            yield ScanEntry(rel_dir, "error", error=_reason(exc))
            continue
        unit = by_contents([e.name for e in entries])
        if unit is not None and dir_st is not None:
            yield _dir_row(rel_dir, dir_st, unit)
            continue
        subdirs = []
        for entry in entries:
            rel = entry.path[prefix_len:]
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                yield ScanEntry(rel, "error", error=_reason(exc))
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            # The root itself is a unit (a project): its top entries are all left alone.
            rule = (unit or rules.sealed_rule(entry.path)) if is_dir else unit
            rule = rule or by_name(entry.name, is_dir, rules.include_hidden, rules.exclude)
            if is_dir and rule is not None:
                yield _dir_row(rel, st, rule)
            elif is_dir:
                subdirs.append((entry.path, st))
            else:
                yield _entry(rel, entry.path, st).leave(rule)
        stack.extend(reversed(subdirs))


def _dir_row(rel: bytes, st: os.stat_result, rule: LeftAlone) -> ScanEntry:
    """A folder left alone whole: its own identity (a project may move by one rename)."""
    entry = ScanEntry(rel, "dir", 0, st.st_mtime_ns, st.st_dev, st.st_ino, st.st_nlink, st.st_mode)
    return entry.leave(rule)


def _entry(rel: bytes, full: bytes, st: os.stat_result) -> ScanEntry:
    mode = st.st_mode
    kind = "file" if stat.S_ISREG(mode) else "symlink" if stat.S_ISLNK(mode) else "other"
    target = None
    if kind == "symlink":
        try:
            target = os.readlink(full)
        except OSError:
            target = None
    return ScanEntry(
        rel, kind, st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino, st.st_nlink, mode, target
    )


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__
