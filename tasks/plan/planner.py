"""The plan: a pure function from what the scan, hash and classify stages found to moves.

Guarantees (the property tests hold them): no two files share a destination, no destination
is a path that existed at scan time, every destination stays inside the root, and the same
input gives the same plan. Nothing left alone moves: hidden entries (unless opted in), OS
junk, tool and state folders, credentials, data folders, projects, and anything inside one
of them; a project moves only whole, as one folder, when asked. Duplicate copies follow the
policy; the copy `keep` names is the kept one in every policy, and it is organized. Every
entry gets one row with a reason in words and a reason code (storage.manifests.REASON_CODES).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from storage.leave_alone import LeftAlone
from storage.templates import UNKNOWN
from tasks.plan import reasons
from tasks.plan.albums import Album, find_albums, folder_name
from tasks.plan.copy_names import keep_order
from tasks.plan.layout import UNDATED, Layout, Place
from tasks.plan.names import NAME_MAX, Names, fit, key
from tasks.plan.sidecars import SIDECAR_EXTS, sidecar_name, sidecars_of
from tasks.plan.units import Found, UnitIndex

__all__ = ["NAME_MAX", "SIDECAR_EXTS", "FileFacts", "PlanPolicy", "PlannedMove", "key"]

QUARANTINE_DIR = b".duplicates"
PROJECTS_DIR = b"Projects"
# A folder row the scan left whole without saying why (a scan that knew no rule for it).
_NOT_ENTERED = LeftAlone("tool-folder", "not entered by the scan")


@dataclass(frozen=True, slots=True)
class FileFacts:
    path: bytes
    kind: str  # file | dir (a folder the scan left alone whole) | symlink | other | error
    size: int = 0
    mtime_ns: int = 0
    dev: int = 0
    ino: int = 0
    category: str = "other"
    ext: str = ""
    date: datetime | None = None
    digest: bytes | None = None  # full content digest, when the file had to be compared
    error: str | None = None
    date_source: str = ""  # tasks.classify.dates.DATE_SOURCES; "" when not known
    artist: str | None = None  # audio tags (album artist first)
    album: str | None = None
    left_alone: str | None = None  # the scan's reason code, for what it left alone
    rule: str | None = None  # what the scan's rule saw ("node_modules", "pyproject.toml")
    mode: int = 0  # permission bits (stat.S_IMODE): a hard link has one mode
    owner: str | None = None  # "uid:gid" as scanned (None for an object): and one owner


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
    reason_code: str = "organized"
    kind: str = "file"  # "dir": a folder moved or left alone whole
    unit: bytes | None = None  # the folder left alone that holds this entry
    twin: bytes | None = None  # duplicates: the kept copy (or the one at the destination)
    date_source: str | None = None


@dataclass(frozen=True)
class PlanPolicy:
    layout: Layout
    duplicates: str = "report"  # report | quarantine | hardlink
    keep: str = "oldest"  # oldest | newest | shortest-path
    include_empty: bool = False
    exclude: tuple[str, ...] = ()
    include_hidden: bool = False
    projects: str = "leave"  # leave | move (whole, to Projects/<name>)
    albums: str = "tags"  # tags | folder | off
    keep_subfolders: bool = False  # sort only the files at the top of the root
    undated: str = "mtime"  # mtime | folder (files dated by mtime alone go to Undated/)
    folders_move: bool = True  # False on object stores: a folder cannot be renamed at once


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


def _move(
    f: FileFacts, dst: bytes | None, action: str, reason: str, code: str, **extra: object
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
        reason_code=code,
        kind=f.kind,
        date_source=f.date_source or None if f.kind == "file" else None,
    )
    return replace(move, **extra) if extra else move  # type: ignore[arg-type]


def plan_moves(
    files: Sequence[FileFacts], policy: PlanPolicy, root_dev: int | None = None
) -> list[PlannedMove]:
    """Decide, for every entry of the scan, what apply will do with it. `root_dev` is the
    root's device: a project on another one (a mount point) cannot be renamed whole."""
    return _Planner(files, policy, root_dev).run()


class _Planner:
    """`names` and `units`, when given, stand for every entry of the scan while `files` are
    only some of them (tasks.plan.partition plans a tree in parts that way)."""

    def __init__(
        self,
        files: Sequence[FileFacts],
        policy: PlanPolicy,
        root_dev: int | None,
        names: Names[FileFacts] | None = None,
        units: UnitIndex | None = None,
    ):
        self.files = sorted(files, key=lambda f: f.path)
        self.policy = policy
        self.root_dev = root_dev
        self.names: Names[FileFacts] = Names(self.files) if names is None else names
        self.units = units
        self.plan: dict[bytes, PlannedMove] = {}
        self.final_dst: dict[bytes, bytes] = {}
        self.kept_of: dict[bytes, FileFacts] = {}  # path of a duplicate copy -> the kept copy
        self.copies: dict[bytes, int] = {}  # path of a kept copy -> copies in its group
        self.albums: dict[bytes, tuple[bytes, Album]] = {}  # folder -> destination, album
        self.wants: dict[bytes, bytes] = {}  # path -> its destination before any clash

    def run(self) -> list[PlannedMove]:
        candidates, projects = self._sort_out()
        for project, found in projects:
            self._move_project(project, found)
        self._organize(candidates)
        return [self.plan[p] for p in sorted(self.plan)]

    def _skip(self, f: FileFacts, reason: str, code: str, **extra: object) -> None:
        self.plan[f.path] = _move(f, None, "skip", reason, code, **extra)

    def _sort_out(self) -> tuple[list[FileFacts], list[tuple[FileFacts, Found]]]:
        """Rows for every entry that is not organized as a file; the rest, and the projects
        to move whole."""
        if self.units is None:  # kept: a destination must not be inside a unit (_blocker)
            self.units = UnitIndex(self.files, self.policy.include_hidden, self.policy.exclude)
        units = self.units
        candidates: list[FileFacts] = []
        projects: list[tuple[FileFacts, Found]] = []
        for f in self.files:
            if f.kind == "symlink":
                self._skip(f, "left alone: symlink, never followed", "symlink")
                continue
            if f.kind not in ("file", "dir"):
                code = "unreadable" if f.kind == "error" else "special"
                self._skip(f, f"left alone: {f.error or 'not a regular file'}", code)
                continue
            found = units.find(f)
            if found is None and f.kind == "dir":
                found = Found(f.path, units.units.get(f.path) or _NOT_ENTERED)
            if found is None:
                self._keep_or_organize(f, candidates)
            elif f.kind == "dir" and found.unit == f.path and self._moves_whole(found):
                projects.append((f, found))
            else:
                self._skip(f, found.reason(f.path), found.rule.code, unit=found.unit)
        return candidates, projects

    def _keep_or_organize(self, f: FileFacts, candidates: list[FileFacts]) -> None:
        if self.policy.keep_subfolders and b"/" in f.path:
            reason = "left in place: inside a subfolder (--keep-subfolders sorts the top level)"
            self.plan[f.path] = _move(f, None, "keep", reason, "subfolder")
        else:
            candidates.append(f)

    def _moves_whole(self, found: Found) -> bool:
        return found.rule.code == "project" and self.policy.projects == "move"

    def _move_project(self, f: FileFacts, found: Found) -> None:
        """A project, moved whole to Projects/<its name> by one rename, or left with why."""
        why = f"project ({found.rule.detail})"
        if key(f.path.split(b"/")[0]) == key(PROJECTS_DIR):
            self._skip(f, f"left alone: {why}, already under Projects/", "project")
        elif not self.policy.folders_move:
            self._skip(f, f"left alone: {why}: a folder cannot move whole here", "project")
        elif self.root_dev is not None and f.dev != self.root_dev:
            reason = f"left alone: {why} on another device (a mount point): no rename can move it"
            self._skip(f, reason, "project")
        else:
            dst = PROJECTS_DIR + b"/" + os.path.basename(f.path)
            self._place(f, dst, "project-moved", f"{why}, moved whole")

    def _organize(self, candidates: list[FileFacts]) -> None:
        sidecars = sidecars_of(candidates)
        mains = [f for f in candidates if f.path not in sidecars]
        for group in duplicate_groups(mains, self.policy.include_empty):
            kept = min(group, key=lambda f: keep_order(self.policy.keep, f.mtime_ns, f.path))
            copies = [f for f in group if (f.dev, f.ino) != (kept.dev, kept.ino)]
            for f in copies:
                self.kept_of[f.path] = kept
            self.copies[kept.path] = len(copies) + 1
        if self.policy.albums != "off":
            self._find_albums(candidates)
        for f in mains:  # what each file organized wants, before any is renamed
            keeper = self.kept_of.get(f.path)
            if keeper is None or self._organized_copy(f, keeper):
                self.wants[f.path] = self._wanted(f)  # computed once: reserved, then placed
                self.names.reserve(fit(self.wants[f.path]))
        # Kept copies and ordinary files first, so duplicates and sidecars know where they went.
        for f in mains:
            keeper = self.kept_of.get(f.path)
            if keeper is None:
                self._organize_one(f)
            elif self.policy.duplicates == "quarantine":
                self._quarantine(f, keeper)
        for f in mains:
            keeper = self.kept_of.get(f.path)
            if keeper is None or self.policy.duplicates == "quarantine":
                continue
            if self._organized_copy(f, keeper):
                # Organized like any file (a hard link cannot cross devices); if its kept
                # twin takes its destination, it stays where it is, a duplicate.
                self._organize_one(f)
            else:
                self._hardlink(f, keeper)
        for f in candidates:
            main = sidecars.get(f.path)
            if main is not None:
                self._follow(f, main)

    def _organized_copy(self, f: FileFacts, keeper: FileFacts) -> bool:
        dup = self.policy.duplicates
        return dup == "report" or (dup == "hardlink" and f.dev != keeper.dev)

    def _find_albums(self, candidates: list[FileFacts]) -> None:
        """Where each album folder goes, whole: a folder of its own, never merged into
        another album's (a taken name gets a suffix)."""
        for album in find_albums(candidates):
            if self.policy.albums == "tags":
                parts = [b"Audio", folder_name(album.artist), folder_name(album.title)]
            else:  # the layout's folder for its first track, and the album folder's own name
                first = next(f for f in candidates if f.path == album.first_track)
                name = os.path.basename(album.directory) or folder_name(album.title)
                parts = [*self._layout(first)[:-1], name]
            folder = fit(b"/".join(parts) + b"/x").rpartition(b"/")[0]
            if key(folder) != key(album.directory) and not self.names.is_free(folder):
                folder = self.names.free_variant(*_split(folder), keep_ext=False)
            self.names.claim_folder(folder)
            self.albums[album.directory] = (folder, album)

    def _undated(self, f: FileFacts) -> bool:
        return self.policy.undated == "folder" and f.date_source in ("mtime", "none")

    def _layout(self, f: FileFacts) -> list[bytes]:
        undated = self._undated(f)
        place = Place(f.path.rpartition(b"/")[0], f.artist, f.album)
        return self.policy.layout.destination(
            f.category,
            None if undated else f.date,
            os.path.basename(f.path),
            f.ext,
            place,
            UNDATED if undated else UNKNOWN,
        )

    def _wanted(self, f: FileFacts) -> bytes:
        """Where a file is organized to, before any clash: its album's folder, or the layout's."""
        directory, _, name = f.path.rpartition(b"/")
        album = self.albums.get(directory)
        return album[0] + b"/" + name if album is not None else b"/".join(self._layout(f))

    def _organize_one(self, f: FileFacts) -> None:
        why = reasons.organized(f.category, f.ext, f.date, f.date_source, self._undated(f))
        code = "organized"
        dst = self.wants.pop(f.path, None) or self._wanted(f)
        album = self.albums.get(f.path.rpartition(b"/")[0])
        if album is not None:
            why, code = album[1].reason(), "album"
        if f.path in self.copies:
            why += reasons.kept_copy(self.policy.keep, self.copies[f.path])
            code = "duplicate-kept"
        why += reasons.stays_hidden(dst)
        self._place(f, dst, code, why)

    def _quarantine(self, f: FileFacts, keeper: FileFacts) -> None:
        dst = QUARANTINE_DIR + b"/" + f.path
        if self.names.blocker(dst) is not None:
            why = "conflict: a file blocks .duplicates/"
            return self._skip(f, why, "conflict", twin=keeper.path)
        if not self.names.is_free(dst):
            dst = self.names.free_variant(*_split(dst))
        self.names.claim(dst, f)
        why = f"duplicate of {reasons.shown(keeper.path)} (kept: {self.policy.keep})"
        code = "duplicate-quarantined"
        self.plan[f.path] = _move(f, dst, "quarantine", why, code, twin=keeper.path)

    def _hardlink(self, f: FileFacts, keeper: FileFacts) -> None:
        why = f"duplicate of {reasons.shown(keeper.path)} (kept: {self.policy.keep})"
        unlinked = reasons.not_linked(f.owner, f.mode, keeper.owner, keeper.mode)
        if unlinked is not None:  # apply never links these (tasks.apply.local_links)
            return self._skip(f, why + unlinked, "not-linked", twin=keeper.path)
        self.plan[f.path] = _move(
            f, f.path, "hardlink", why + ": linked", "duplicate-linked",
            link_to=self.final_dst[keeper.path], twin=keeper.path,
        )  # fmt: skip

    def _follow(self, f: FileFacts, main: FileFacts) -> None:
        main_dst = self.final_dst.get(main.path)
        if main_dst is None or self.plan[main.path].action not in ("move", "keep"):
            # The main file stays where it is (a duplicate copy): its sidecar stays beside it.
            self.plan[f.path] = _move(f, None, "keep", "sidecar of a file that stays", "sidecar")
            return
        directory, _, main_name = main_dst.rpartition(b"/")
        dst = (directory + b"/" if directory else b"") + sidecar_name(f, main, main_name)
        self._place(f, dst, "sidecar", "sidecar of " + reasons.shown(main.path))

    def _place(self, f: FileFacts, dst: bytes, code: str, why: str) -> None:
        dst = fit(dst)
        if key(dst) == key(f.path):  # in place, or at a case variant of it: nothing to do
            in_place = "duplicate-kept" if code == "duplicate-kept" else "already-in-place"
            self.plan[f.path] = _move(f, None, "keep", "already in place", in_place)
            self.final_dst[f.path] = f.path
            return
        blocker = self._blocker(dst)
        if blocker is not None:
            self._skip(f, reasons.blocked(dst, *blocker), "conflict")
            self.final_dst[f.path] = f.path
            return
        occupant = self.names.occupant(dst)
        if occupant is not None or not self.names.is_free(dst):
            if occupant is not None and self._redundant_at(f, occupant):
                existed = occupant.path == dst
                reason = reasons.duplicate_at(occupant.path, dst, existed)
                self._skip(f, reason, "duplicate", twin=occupant.path)
                self.final_dst[f.path] = f.path
                return
            wanted, holder = dst, self.names.holder(dst)
            dst = self.names.free_variant(*_split(dst), keep_ext=f.kind != "dir")
            why += reasons.renamed(wanted, holder)
            code = "renamed" if code == "organized" else code
        self.names.claim(dst, f)
        self.plan[f.path] = _move(f, dst, "move", why, code)
        self.final_dst[f.path] = dst

    def _blocker(self, dst: bytes) -> tuple[bytes, bool] | None:
        """What stands where a folder of `dst` would be (and whether it is a folder left
        alone): a scanned file or folder, or a unit that a listing showed by its markers."""
        found = self.names.blocker(dst)
        if found is not None:
            return found.path, found.kind == "dir"
        unit = self.units.holding(dst) if self.units is not None else None
        return None if unit is None else (unit, True)

    def _redundant_at(self, f: FileFacts, occupant: FileFacts) -> bool:
        """Only a copy that stays at the destination makes this one redundant; one that the
        policy moves away (quarantine) or replaces (hardlink) does not."""
        return (
            f.kind == "file"
            and occupant.kind == "file"
            and (occupant.path not in self.kept_of or self.policy.duplicates == "report")
            and occupant.digest is not None
            and occupant.digest == f.digest
            and occupant.size == f.size
        )


def _split(path: bytes) -> tuple[bytes, bytes]:
    directory, _, name = path.rpartition(b"/")
    return directory, name
