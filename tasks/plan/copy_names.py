"""Which of identical files looks like the copy: the name a second download or a pasted copy
gets. The pure planner (tasks.plan.planner) and the DuckDB fast path (tasks.plan.copies) rank
copies by these same two patterns."""

from __future__ import annotations

import re

# Names the way browsers, file managers and sync tools name a second copy, at the end of the
# name before its extensions: "x (1).pdf", "x(1).pdf" (Firefox), "x - Copy.pdf" and "x - Copy
# (2).pdf" (Windows), "x copy.pdf" and "x copy 2.pdf" (macOS), "x (copy).pdf", "x (another
# copy).pdf" and "x (3rd copy).pdf" (GNOME); or at its start: "Copy of x.pdf" and "Copy (2)
# of x.pdf" (Windows XP, Google Drive, Office; the tryout kept "Copy of report.pdf" and
# quarantined "report.pdf"); weaker, since originals end so too ("scan-2", "hard_copy"):
# "x-1.pdf", "x_1.pdf", "x-copy.jpg", "x_copy2.jpg" (the tryout kept "IMG_0001-copy.jpg" and
# quarantined "IMG_0001.jpg"). Among copies of one file that --keep ranks equal (the same mtime),
# a plain name is kept before a weak one, and a weak one before a strong one, then by path:
# the tryout's download folder kept "name (1).pdf" and quarantined "name.pdf". The patterns
# are ASCII and read the same in Python's re (on bytes) and DuckDB's RE2 (tasks.plan.copies).
_EXTS = r"(\.[a-z0-9]*[a-z][a-z0-9]*){0,2}$"
COPY_NAME_STRONG = (
    r"(?i)(^copy( \([0-9]{1,3}\))? of .+"
    r"| ?\([0-9]{1,3}\)| - copy( \([0-9]{1,3}\))?| copy( [0-9]{1,3})?"
    r"| \((another |[0-9]{1,3}(st|nd|rd|th) )?copy\))" + _EXTS
)
COPY_NAME_WEAK = r"(?i)[-_]([0-9]{1,2}|copy([ _-]?[0-9]{1,3})?)" + _EXTS
_STRONG = re.compile(COPY_NAME_STRONG.encode())
_WEAK = re.compile(COPY_NAME_WEAK.encode())


def copy_rank(path: bytes) -> int:
    """0: a plain name; 1: one that may be a copy ("x-1.pdf"); 2: one that is ("x (1).pdf")."""
    name = path.rsplit(b"/", 1)[-1]
    for rank, pattern in ((2, _STRONG), (1, _WEAK)):
        found = pattern.search(name)
        if found and found.end() == len(name):  # Python's $ also matches before a last "\n"
            return rank
    return 0


def keep_order(policy: str, mtime_ns: int, path: bytes) -> tuple[object, ...]:
    """The order of --keep among identical files: the first is the kept copy."""
    if policy == "newest":
        return (-mtime_ns, copy_rank(path), path)
    if policy == "shortest-path":
        return (len(path), copy_rank(path), path)
    return (mtime_ns, copy_rank(path), path)
