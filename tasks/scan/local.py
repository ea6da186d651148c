"""The scan of a local root: an lstat walk, never following symlinks, into Arrow batches.

The walk does not enter what is left alone whole (storage.leave_alone): a folder whose name or
contents say so (node_modules, a project, a Prefect home...) becomes one `dir` row with its
reason code, however many files it holds; files left alone by their name (.bashrc, .DS_Store)
are rows of their own, marked, which later stages neither classify nor hash; so is a file the
scanning user may not read by its permission bits (`unreadable`, storage.leave_alone.readable:
from the lstat the walk has, no syscall of its own), and a file in a folder that user may not
change (`read-only-folder`: apply could not move it out; one access() a folder). When the root
itself is a unit (a project), every entry at its top is such a row and nothing is entered.

The order is one and deterministic: a folder's entries in name order, then each of its
subfolders' in name order, depth first. The walk is cut into jobs (`walk_job`): a job walks
its folders depth first until it has listed `budget` entries, and hands back its rows as one
record batch (tasks.scan.columns, no object per entry) and the folders it did not reach, in
walk order. The rest of its walk is those folders' walks, one after the other, so they are
new jobs that run at the same time in the process pool (tasks.pool: no GIL between lstat
calls, and several requests in flight on a cold disk) while the batches are still yielded in
the walk's order. The first job runs here: a small root never starts the pool.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from operator import attrgetter
from stat import S_ISDIR, S_ISREG

import pyarrow as pa

from storage.leave_alone import (
    UNREADABLE,
    LeftAlone,
    Reader,
    ScanRules,
    by_contents,
    by_name,
    can_change,
    plain_file_name,
    read_only_folder,
    readable,
)
from tasks import pool
from tasks.scan.columns import ScanColumns

# Entries a job lists before it hands the rest back: a few ms of work warm, so the pool's
# cost per job (a few hundred µs) stays small, and enough jobs to share out.
BUDGET = 4096
_NAME = attrgetter("name")

# A folder to walk: its absolute path and what its parent's lstat said of it (mtime_ns, dev,
# ino, nlink, mode, uid, gid: the row it becomes if it is a unit), None for the root.
Said = tuple[int, int, int, int, int, int, int]
Folder = tuple[bytes, Said | None]
Job = tuple[pa.RecordBatch, list[Folder]]


def batches(
    root: bytes, rules: ScanRules = ScanRules(), processes: int = 1, budget: int = BUDGET
) -> Iterator[pa.RecordBatch]:
    """Every entry under `root` except directories, in the walk's order (module docstring),
    as SCAN record batches; a directory left alone whole is one `dir` row instead of its
    contents. An unreadable directory is one `error` row, not the end of the walk; an
    unreadable root raises. `processes` > 1 walks in the process pool, `processes` jobs at
    a time at most, the next ones in walk order."""
    jobs = _Jobs(root, rules, budget, processes)
    try:
        yield from jobs.run()
    except BrokenProcessPool:
        pool.shutdown()  # a worker died: the task's retry walks again with a fresh pool
        raise


class _Jobs:
    """The walk's jobs as a stack in walk order (the next on top); the ones nearest the top
    are running in the pool, up to `processes` of them. A job on top that is not running
    runs here, as the first one does: a small root never starts the pool."""

    def __init__(self, root: bytes, rules: ScanRules, budget: int, processes: int) -> None:
        self.root, self.rules, self.budget, self.processes = root, rules, budget, processes
        self.stack: list[list[Folder] | Future[Job]] = [[(root, None)]]
        self.running = 0

    def run(self) -> Iterator[pa.RecordBatch]:
        while self.stack:
            top = self.stack.pop()
            if isinstance(top, Future):
                self.running -= 1
                batch, frontier = top.result()
            else:
                batch, frontier = walk_job(self.root, top, self.rules, self.budget)
            if batch.num_rows:
                yield batch
            self.stack.extend(reversed(_parts(frontier, self.processes)))
            self._start()

    def _start(self) -> None:
        """Start the jobs nearest the top until `processes` run."""
        if self.processes <= 1:
            return
        for i in range(len(self.stack) - 1, -1, -1):
            if self.running >= self.processes:
                return
            job = self.stack[i]
            if not isinstance(job, Future):
                args = (self.root, job, self.rules, self.budget)
                self.stack[i] = pool.executor(self.processes).submit(walk_job, *args)
                self.running += 1


def _parts(frontier: list[Folder], parts: int) -> list[list[Folder]]:
    """The frontier cut into at most `parts` runs of consecutive folders (walk order kept)."""
    if not frontier:
        return []
    step = -(-len(frontier) // max(1, parts))
    return [frontier[i : i + step] for i in range(0, len(frontier), step)]


def walk_job(root: bytes, folders: list[Folder], rules: ScanRules, budget: int) -> Job:
    """Walk `folders` (consecutive in walk order) depth first until `budget` entries are
    listed: their rows, and the folders not reached, in walk order (module docstring)."""
    rows = ScanColumns()
    prefix_len = len(root.rstrip(b"/")) + 1
    stack = folders[::-1]
    listed = 0
    reader = Reader.current()
    while stack and listed < budget:
        directory, parent_says = stack.pop()
        listed += _folder(directory, parent_says, prefix_len, rules, reader, rows, stack)
    return rows.batch(), stack[::-1]


def _folder(
    directory: bytes,
    parent_says: Said | None,
    prefix_len: int,
    rules: ScanRules,
    reader: Reader,
    rows: ScanColumns,
    stack: list[Folder],
) -> int:
    """List one folder into `rows`, push its subfolders to walk; the entries listed."""
    rel_dir = directory[prefix_len:]
    try:
        with os.scandir(directory) as it:
            entries = sorted(it, key=_NAME)
    except OSError as exc:
        if parent_says is None:
            raise
        rows.add(rel_dir, "error", error=_reason(exc))
        return 1
    unit = by_contents([e.name for e in entries])
    if unit is not None and parent_says is not None:
        rows.add(rel_dir, "dir", 0, *parent_says, left=unit)
        return len(entries)
    # The root itself is a unit (a project): its top entries are all left alone.
    base = rel_dir + b"/" if rel_dir else b""
    hidden, exclude, sealed = rules.include_hidden, rules.exclude, rules.sealed_rule
    plain = None if (unit or exclude) else plain_file_name  # by name, without by_name
    add, subdirs = rows.add, []
    fixed = None if can_change(directory) else read_only_folder(directory)  # nor could apply
    file_row = rows.file_appender()
    for entry in entries:
        name = entry.name
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as exc:
            add(base + name, "error", error=_reason(exc))
            continue
        mode = st.st_mode
        if S_ISREG(mode) and plain is not None and plain(name):
            # The common case, in one call: a regular file no rule of its name leaves alone.
            left = fixed if readable(mode, st.st_uid, st.st_gid, reader) else UNREADABLE
            file_row(base + name, st, left)
        elif S_ISDIR(mode):
            said = (st.st_mtime_ns, st.st_dev, st.st_ino, st.st_nlink, mode, st.st_uid, st.st_gid)
            rule = unit or sealed(entry.path) or by_name(name, True, hidden, exclude)
            if rule is None:
                subdirs.append((entry.path, said))
            else:
                add(base + name, "dir", 0, *said, left=rule)
        else:
            _other(base + name, entry, st, unit or by_name(name, False, hidden, exclude),
                   fixed, reader, add)  # fmt: skip
    stack.extend(reversed(subdirs))
    return len(entries)


def _other(
    rel: bytes,
    entry: os.DirEntry[bytes],
    st: os.stat_result,
    left: LeftAlone | None,
    fixed: LeftAlone | None,
    reader: Reader,
    add: Callable[..., None],
) -> None:
    """The row of an entry that is not a folder, nor a regular file of a plain name."""
    mode = st.st_mode
    kind = "file" if S_ISREG(mode) else "symlink" if stat.S_ISLNK(mode) else "other"
    target = _readlink(entry.path) if kind == "symlink" else None
    if left is None and kind == "file":
        # Unreadable: it cannot be hashed or classified, so it is not planned.
        left = fixed if readable(mode, st.st_uid, st.st_gid, reader) else UNREADABLE
    add(rel, kind, st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino, st.st_nlink, mode,
        st.st_uid, st.st_gid, link_target=target, left=left)  # fmt: skip


def _readlink(path: bytes) -> bytes | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__
