"""Which entries of a scan the plan leaves alone, and the folder (unit) each belongs to.

The scan already marks what it left alone (`left_alone`: a file by its name, a folder it did
not enter); this index also applies the name rules to every path and finds units by their
markers among the entries, so that the planner's guarantee holds whatever its input: an object
listing (which cannot skip a prefix before seeing its marker), or any list of facts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from storage.leave_alone import LeftAlone, by_name, units_by_markers
from tasks.plan.names import key
from tasks.plan.reasons import shown


class Entry(Protocol):
    @property
    def path(self) -> bytes: ...
    @property
    def kind(self) -> str: ...
    @property
    def left_alone(self) -> str | None: ...
    @property
    def rule(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Found:
    unit: bytes | None  # the folder left alone that holds the entry (None: the entry itself)
    rule: LeftAlone

    def reason(self, path: bytes) -> str:
        if self.unit is None or self.unit == path:
            return self.rule.reason()
        if not self.unit:
            return f"{self.rule.reason()}: the root itself"
        return f"{self.rule.reason()}: inside {shown(self.unit)}"


class UnitIndex:
    def __init__(
        self, entries: Sequence[Entry], include_hidden: bool, exclude: tuple[str, ...] = ()
    ) -> None:
        self.include_hidden = include_hidden
        self.exclude = exclude
        self.units = units_by_markers(e.path for e in entries)
        for e in entries:
            if e.kind == "dir" and e.left_alone is not None:
                self.units[e.path] = LeftAlone(e.left_alone, e.rule or "")
        self._folders: dict[bytes, Found | None] = {}
        self._keys: dict[str, bytes] | None = None

    def holding(self, dst: bytes) -> bytes | None:
        """The unit (a folder left alone, by its markers or as the scan's row) that holds the
        folder of a destination, the same but for case too; None if none does."""
        if self._keys is None:
            self._keys = {key(folder): folder for folder in self.units if folder}
        if not self._keys:  # the common case: no unit at all, nothing to look up per file
            return None
        parts = key(dst).split("/")[:-1]
        found = (self._keys.get("/".join(parts[: i + 1])) for i in range(len(parts)))
        return next((unit for unit in found if unit is not None), None)

    def find(self, e: Entry) -> Found | None:
        """Why `e` is left alone, or None when it is organized (or moved whole)."""
        directory, _, name = e.path.rpartition(b"/")
        outer = self.folder(directory)
        if outer is not None:
            return outer
        if e.left_alone is not None:
            unit = e.path if e.kind == "dir" else None
            return Found(unit, LeftAlone(e.left_alone, e.rule or ""))
        is_dir = e.kind == "dir"
        rule = by_name(name, is_dir, self.include_hidden, self.exclude)
        if rule is None and is_dir:
            rule = self.units.get(e.path)
        return Found(e.path if is_dir else None, rule) if rule is not None else None

    def folder(self, directory: bytes) -> Found | None:
        """The outermost folder left alone among `directory` and the folders above it."""
        if directory in self._folders:
            return self._folders[directory]
        chain = [directory]  # this folder and its parents not looked at yet, innermost first
        while chain[-1] and chain[-1].rpartition(b"/")[0] not in self._folders:
            chain.append(chain[-1].rpartition(b"/")[0])
        found: Found | None = None
        if chain[-1]:  # stopped at a parent already known
            found = self._folders[chain[-1].rpartition(b"/")[0]]
        for folder in reversed(chain):
            if found is None:
                found = self._own(folder)
            self._folders[folder] = found
        return found

    def _own(self, folder: bytes) -> Found | None:
        """The rule of this folder itself: its name first (the scan would not enter it), then
        the markers found in it."""
        if folder:
            rule = by_name(folder.rpartition(b"/")[2], True, self.include_hidden, self.exclude)
            if rule is not None:
                return Found(folder, rule)
        marked = self.units.get(folder)
        return Found(folder, marked) if marked is not None else None
