"""The plan: a pure function from what the scan, hash and classify stages found to moves.

Guarantees (the property tests hold them): no two files share a destination, no destination
is a path that existed at scan time, every destination stays inside the root, and the same
input gives the same plan. Duplicate copies follow the policy; the kept copy is organized.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from tasks.layout import Layout

QUARANTINE_DIR = b".duplicates"
DEFAULT_EXCLUDES = (".git", ".hg", ".svn", ".duplicates", ".fileorg")
SIDECAR_EXTS = frozenset({"xmp", "aae", "srt", "json", "thm"})
NAME_MAX = 255


@dataclass(frozen=True, slots=True)
class FileFacts:
    path: bytes
    kind: str  # file | symlink | other | error
    size: int = 0
    mtime_ns: int = 0
    dev: int = 0
    ino: int = 0
    category: str = "other"
    ext: str = ""
    date: datetime | None = None
    digest: bytes | None = None  # full content digest, when the file had to be compared
    error: str | None = None


@dataclass(frozen=True, slots=True)
class PlannedMove:
    src: bytes
    dst: bytes | None
    action: str  # move | keep | skip | quarantine | hardlink
    reason: str
    size: int
    mtime_ns: int
    dev: int
    ino: int
    category: str | None
    year: int | None
    digest: bytes | None
    link_to: bytes | None = None


@dataclass(frozen=True)
class PlanPolicy:
    layout: Layout
    duplicates: str = "report"  # report | quarantine | hardlink
    keep: str = "oldest"  # oldest | newest | shortest-path
    include_empty: bool = False
    exclude: tuple[str, ...] = DEFAULT_EXCLUDES


def key(path: bytes) -> str:
    """Destinations collide when they differ only in case (case-insensitive filesystems)."""
    # Same as os.fsdecode(path).casefold() on Linux, without its per-call checks: the plan
    # computes this a few times for each of a million files.
    return path.decode("utf-8", "surrogateescape").casefold()


@functools.lru_cache(maxsize=32)
def _exclude_matcher(patterns: tuple[str, ...]) -> Callable[[str], re.Match[str] | None]:
    # One regex for all patterns: fnmatchcase(name, pat) is re.match(translate(pat), name),
    # and a pattern-by-pattern fnmatchcase per path part was 40% of planning 230k files.
    return re.compile("|".join(fnmatch.translate(pat) for pat in patterns)).match


def _excluded(path: bytes, patterns: Sequence[str]) -> bool:
    if not patterns:
        return False
    match = _exclude_matcher(tuple(patterns))
    return any(match(part) for part in os.fsdecode(path).split("/"))


def _keep_order(policy: str, f: FileFacts) -> tuple[object, ...]:
    if policy == "newest":
        return (-f.mtime_ns, f.path)
    if policy == "shortest-path":
        return (len(f.path), f.path)
    return (f.mtime_ns, f.path)


def duplicate_groups(files: Iterable[FileFacts], include_empty: bool) -> list[list[FileFacts]]:
    """Files with equal content, grouped; a group spans two or more distinct inodes."""
    by_content: dict[tuple[int, bytes], list[FileFacts]] = defaultdict(list)
    for f in files:
        if f.kind == "file" and f.digest is not None and (f.size > 0 or include_empty):
            by_content[(f.size, f.digest)].append(f)
    return [
        sorted(group, key=lambda f: f.path)
        for _, group in sorted(by_content.items())
        if len({(f.dev, f.ino) for f in group}) > 1
    ]


class _Names:
    """Every path taken: at scan time, or by a planned destination. Case-insensitive."""

    def __init__(self, existing: Iterable[FileFacts]) -> None:
        # Sorted, so that of two scanned paths differing only in case the same one is seen.
        self.taken: dict[str, FileFacts] = {
            key(f.path): f for f in sorted(existing, key=lambda f: f.path)
        }
        # Folders that exist or will: a file may not take a folder's name, nor the reverse.
        self.dirs: set[str] = set()
        for k in self.taken:
            self._add_parents(k)
        # Per (directory, name): every "name (n)" variant below this n was found taken, and
        # names are never released, so the next search starts here rather than at 1 (k
        # conflicts on one name, e.g. thousands of __init__.py, would cost k*k/2 probes).
        self._first_unknown: dict[tuple[bytes, bytes], int] = {}

    def _add_parents(self, k: str) -> None:
        parts = k.split("/")[:-1]
        for i in range(len(parts), 0, -1):
            folder = "/".join(parts[:i])
            if folder in self.dirs:
                break
            self.dirs.add(folder)

    def claim(self, dst: bytes, who: FileFacts) -> None:
        k = key(dst)
        self.taken[k] = who
        self._add_parents(k)

    def occupant(self, dst: bytes) -> FileFacts | None:
        return self.taken.get(key(dst))

    def is_free(self, dst: bytes) -> bool:
        k = key(dst)
        return k not in self.taken and k not in self.dirs

    def folder_blocked(self, dst: bytes) -> bool:
        """A file stands where one of the destination's folders would have to be."""
        parts = key(dst).split("/")[:-1]
        return any("/".join(parts[: i + 1]) in self.taken for i in range(len(parts)))

    def free_variant(self, directory: bytes, name: bytes) -> bytes:
        stem, dot, ext = name.rpartition(b".")
        if not dot or not stem:  # no extension, or a dot-file such as .bashrc
            stem, ext = name, b""
        if len(ext) + 1 > NAME_MAX // 2:  # an "extension" too long to keep whole
            stem, ext = name, b""
        suffix_ext = b"." + ext if ext else b""
        n = self._first_unknown.get((directory, name), 1)
        while True:
            marker = f" ({n})".encode()
            room = NAME_MAX - len(marker) - len(suffix_ext)
            candidate = _truncate(stem, room) + marker + suffix_ext
            dst = directory + b"/" + candidate if directory else candidate
            if self.is_free(dst):
                self._first_unknown[(directory, name)] = n
                return dst
            n += 1


def _truncate(stem: bytes, room: int) -> bytes:
    if len(stem) <= room:
        return stem
    cut = stem[:room]
    # Do not leave half of a UTF-8 sequence behind when the name was valid UTF-8.
    try:
        stem.decode("utf-8")
    except UnicodeDecodeError:
        return cut
    return cut.decode("utf-8", "ignore").encode("utf-8")


def _fit(dst: bytes) -> bytes:
    """Cut components a template or a sidecar made longer than NAME_MAX, keeping extensions."""
    parts = dst.split(b"/")
    if all(len(p) <= NAME_MAX for p in parts):
        return dst
    *dirs, name = parts
    stem, dot, ext = name.rpartition(b".")
    if not dot or not stem or len(ext) + 1 > NAME_MAX // 2:
        stem, dot, ext = name, b"", b""
    name = _truncate(stem, NAME_MAX - len(dot) - len(ext)) + dot + ext
    return b"/".join([*(_truncate(d, NAME_MAX) for d in dirs), name])


def _move(
    f: FileFacts, dst: bytes | None, action: str, reason: str, **extra: object
) -> PlannedMove:
    move = PlannedMove(
        src=f.path,
        dst=dst,
        action=action,
        reason=reason,
        size=f.size,
        mtime_ns=f.mtime_ns,
        dev=f.dev,
        ino=f.ino,
        category=f.category if f.kind == "file" else None,
        year=f.date.year if f.date else None,
        digest=f.digest,
    )
    return replace(move, **extra) if extra else move  # type: ignore[arg-type]


def _sidecar_of(
    f: FileFacts,
    by_stem: dict[tuple[bytes, str], FileFacts],
    by_name: dict[tuple[bytes, str], FileFacts],
) -> FileFacts | None:
    if f.ext not in SIDECAR_EXTS:
        return None
    directory, _, name = f.path.rpartition(b"/")
    stem = key(name.rpartition(b".")[0])
    # IMG_1.jpg.xmp (the whole name of its main file) first, then IMG_1.xmp (its stem).
    main = by_name.get((directory, stem)) or by_stem.get((directory, stem))
    return main if main is not f else None


def _sidecar_name(sidecar: FileFacts, main: FileFacts, main_final: bytes) -> bytes:
    """The sidecar's new name: the main file's new name (or stem) and its own extension."""
    own = os.path.basename(sidecar.path)
    own_ext = own.rpartition(b".")[2]
    if key(own) == key(os.path.basename(main.path) + b"." + own_ext):
        return main_final + b"." + own_ext
    final_stem, dot, final_ext = main_final.rpartition(b".")
    if main.ext and dot and final_stem and key(final_ext) == main.ext.casefold():
        return final_stem + b"." + own_ext
    return main_final + b"." + own_ext


def plan_moves(files: Sequence[FileFacts], policy: PlanPolicy) -> list[PlannedMove]:
    """Decide, for every entry of the scan, what apply will do with it."""
    names = _Names(files)
    plan: dict[bytes, PlannedMove] = {}
    candidates: list[FileFacts] = []
    for f in sorted(files, key=lambda f: f.path):
        if f.kind == "symlink":
            plan[f.path] = _move(f, None, "skip", "symlink: never followed")
        elif f.kind != "file":
            plan[f.path] = _move(f, None, "skip", f.error or "not a regular file")
        elif _excluded(f.path, policy.exclude):
            plan[f.path] = _move(f, None, "skip", "excluded")
        else:
            candidates.append(f)

    # Main files by (directory, name) and (directory, stem), so sidecars can follow them.
    by_stem: dict[tuple[bytes, str], FileFacts] = {}
    by_name: dict[tuple[bytes, str], FileFacts] = {}
    for f in candidates:
        if f.ext not in SIDECAR_EXTS:
            directory, _, name = f.path.rpartition(b"/")
            text = os.fsdecode(name)
            stem = text[: -len(f.ext) - 1] if f.ext else text
            by_stem.setdefault((directory, stem.casefold()), f)
            by_name[(directory, key(name))] = f

    sidecars = {f.path: m for f in candidates if (m := _sidecar_of(f, by_stem, by_name))}

    def destination(f: FileFacts) -> bytes:
        parts = policy.layout.destination(f.category, f.date, os.path.basename(f.path), f.ext)
        return _fit(b"/".join(parts))

    kept_of: dict[bytes, FileFacts] = {}  # path of a duplicate copy -> the copy that stays
    for group in duplicate_groups(
        [f for f in candidates if f.path not in sidecars], policy.include_empty
    ):
        kept = min(group, key=lambda f: _keep_order(policy.keep, f))
        for f in group:
            if (f.dev, f.ino) != (kept.dev, kept.ino):
                kept_of[f.path] = kept

    final_dst: dict[bytes, bytes] = {}

    def organize(f: FileFacts) -> None:
        _place(f, destination(f), "organize")

    def _place(f: FileFacts, dst: bytes, why: str) -> None:
        dst = _fit(dst)
        if key(dst) == key(f.path):  # in place, or at a case variant of it: nothing to do
            plan[f.path] = _move(f, None, "keep", "already in place")
            final_dst[f.path] = f.path
            return
        if names.folder_blocked(dst):
            plan[f.path] = _move(f, None, "skip", "conflict: a file stands where its folder would")
            final_dst[f.path] = f.path
            return
        occupant = names.occupant(dst)
        if occupant is not None or not names.is_free(dst):
            if (
                occupant is not None
                # Only a copy that stays there makes this one redundant; one that the policy
                # moves away (quarantine) or replaces (hardlink) does not.
                and (occupant.path not in kept_of or policy.duplicates == "report")
                and occupant.digest is not None
                and occupant.digest == f.digest
                and occupant.size == f.size
            ):
                plan[f.path] = _move(
                    f, None, "skip", f"duplicate of {os.fsdecode(occupant.path)} at destination"
                )
                final_dst[f.path] = f.path
                return
            directory = dst.rpartition(b"/")[0]
            dst = names.free_variant(directory, dst.rpartition(b"/")[2])
            why = "conflict: renamed"
        names.claim(dst, f)
        plan[f.path] = _move(f, dst, "move", why)
        final_dst[f.path] = dst

    # Kept copies and ordinary files first, so duplicates and sidecars know where they went.
    for f in candidates:
        if f.path in sidecars:
            continue
        keeper = kept_of.get(f.path)
        if keeper is None or policy.duplicates == "report":
            organize(f)
        elif policy.duplicates == "quarantine":
            dst = QUARANTINE_DIR + b"/" + f.path
            if names.folder_blocked(dst):
                plan[f.path] = _move(f, None, "skip", "conflict: a file blocks .duplicates/")
                continue
            if not names.is_free(dst):
                dst = names.free_variant(dst.rpartition(b"/")[0], dst.rpartition(b"/")[2])
            names.claim(dst, f)
            plan[f.path] = _move(f, dst, "quarantine", f"duplicate of {os.fsdecode(keeper.path)}")
    for f in candidates:
        keeper = kept_of.get(f.path)
        if keeper is not None and policy.duplicates == "hardlink" and f.path not in sidecars:
            if f.dev != keeper.dev:
                organize(f)  # a hard link cannot cross devices: organize it like any file
                continue
            plan[f.path] = _move(
                f,
                f.path,
                "hardlink",
                f"duplicate of {os.fsdecode(keeper.path)}",
                link_to=final_dst[keeper.path],
            )
    for f in candidates:
        main = sidecars.get(f.path)
        if main is None:
            continue
        main_dst = final_dst.get(main.path)
        if main_dst is None or plan[main.path].action not in ("move", "keep"):
            # The main file stays where it is (a duplicate copy): its sidecar stays beside it.
            plan[f.path] = _move(f, None, "keep", "sidecar of a file that stays")
            continue
        directory, _, main_name = main_dst.rpartition(b"/")
        name = _sidecar_name(f, main, main_name)
        dst = (directory + b"/" if directory else b"") + name
        _place(f, dst, "sidecar of " + os.fsdecode(main.path))
    return [plan[p] for p in sorted(plan)]
