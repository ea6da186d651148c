"""The plan: a pure function from what the scan, hash and classify stages found to moves.

Guarantees (the property tests hold them): no two files share a destination, no destination
is a path that existed at scan time, every destination stays inside the root, and the same
input gives the same plan. Duplicate copies follow the policy; the kept copy is organized.
"""

from __future__ import annotations

import fnmatch
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
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
    return os.fsdecode(path).casefold()


def _excluded(path: bytes, patterns: Sequence[str]) -> bool:
    parts = os.fsdecode(path).split("/")
    return any(fnmatch.fnmatchcase(part, pat) for part in parts for pat in patterns)


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
        self.taken: dict[str, FileFacts] = {key(f.path): f for f in existing}

    def claim(self, dst: bytes, who: FileFacts) -> None:
        self.taken[key(dst)] = who

    def occupant(self, dst: bytes) -> FileFacts | None:
        return self.taken.get(key(dst))

    def free_variant(self, directory: bytes, name: bytes) -> bytes:
        stem, dot, ext = name.rpartition(b".")
        if not dot or not stem:  # no extension, or a dot-file such as .bashrc
            stem, ext = name, b""
        suffix_ext = b"." + ext if ext else b""
        n = 1
        while True:
            marker = f" ({n})".encode()
            room = NAME_MAX - len(marker) - len(suffix_ext)
            candidate = _truncate(stem, room) + marker + suffix_ext
            dst = directory + b"/" + candidate if directory else candidate
            if key(dst) not in self.taken:
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


def _sidecar_of(f: FileFacts, mains: dict[tuple[bytes, str], FileFacts]) -> FileFacts | None:
    if f.ext not in SIDECAR_EXTS:
        return None
    directory, _, name = f.path.rpartition(b"/")
    stem = os.fsdecode(name)[: -len(f.ext) - 1].casefold()
    main = mains.get((directory, stem))
    if main is None:
        # IMG_1.jpg.xmp style: the sidecar's stem is the whole name of its main file.
        main = mains.get((directory, stem.rpartition(".")[0])) if "." in stem else None
        if main is not None and key(main.path.rpartition(b"/")[2]) != stem:
            main = None
    return main if main is not f else None


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

    # Main files by (directory, lower-cased stem) so sidecars can follow them.
    mains: dict[tuple[bytes, str], FileFacts] = {}
    for f in candidates:
        if f.ext not in SIDECAR_EXTS:
            directory, _, name = f.path.rpartition(b"/")
            text = os.fsdecode(name)
            stem = text[: -len(f.ext) - 1] if f.ext else text
            mains.setdefault((directory, stem.casefold()), f)

    sidecars = {f.path: main for f in candidates if (main := _sidecar_of(f, mains))}
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
        parts = policy.layout.destination(f.category, f.date, os.path.basename(f.path), f.ext)
        dst = b"/".join(parts)
        _place(f, dst, "organize")

    def _place(f: FileFacts, dst: bytes, why: str) -> None:
        if dst == f.path:
            plan[f.path] = _move(f, None, "keep", "already in place")
            final_dst[f.path] = f.path
            return
        occupant = names.occupant(dst)
        if occupant is not None:
            if (
                occupant.digest is not None
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
            if names.occupant(dst) is not None:
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
        main_stem = os.fsencode(
            os.fsdecode(main_name)[: -len(main.ext) - 1] if main.ext else os.fsdecode(main_name)
        )
        own_name = os.path.basename(f.path)
        follows_full_name = key(own_name).startswith(key(os.path.basename(main.path)) + ".")
        tail = (
            own_name[len(os.path.basename(main.path)) :]
            if follows_full_name
            else b"." + own_name.rpartition(b".")[2]
        )
        base = main_name if follows_full_name else main_stem
        dst = (directory + b"/" if directory else b"") + base + tail
        _place(f, dst, "sidecar of " + os.fsdecode(main.path))
    return [plan[p] for p in sorted(plan)]
