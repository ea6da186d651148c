"""One scan row: an entry of the root, as both backends report it.

The conventions every later stage relies on: `path` is relative to the root (bytes, never
decoded); a local row carries lstat's fields, an object row dev = 0 and an ino made of its key
and ETag (tasks.scan.objects); `left_alone` names the rule that keeps later stages away.
"""

from __future__ import annotations

from dataclasses import dataclass

from tasks.leave_alone import LeftAlone


@dataclass
class ScanEntry:
    path: bytes  # relative to the root
    kind: str
    size: int = 0
    mtime_ns: int = 0
    dev: int = 0
    ino: int = 0
    nlink: int = 0
    mode: int = 0
    link_target: bytes | None = None
    error: str | None = None
    etag: str | None = None  # object roots only (tasks.scan.objects)
    version_id: str | None = None
    left_alone: str | None = None  # a reason code: what the scan left alone, and why
    rule: str | None = None

    def leave(self, rule: LeftAlone | None) -> ScanEntry:
        if rule is not None:
            self.left_alone, self.rule = rule.code, rule.detail
        return self


def display(path: bytes) -> str:
    return path.decode("utf-8", "backslashreplace")
