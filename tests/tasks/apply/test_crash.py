"""Apply and rollback killed with SIGKILL, then run again: nothing lost, all undone.

Each iteration builds a fresh small tree (a plan is bound to inodes), plans it with the plain
stage functions, and runs the apply (or the rollback) in tests/crash_worker.py, a process that
never imports Prefect. The worker is killed either after a random delay, uniform over the
measured duration of an uninterrupted run, or just before a random one of its changes to the
disk (a rename, link, unlink, mkdir, write, fsync...), which reaches the short windows a timer
rarely hits. Then the same job runs again in this process and must finish the work. A last
test kills a tiny operation before each of its changes in turn, every one of them.

Invariants, checked after every kill:
* nothing outside the root changes;
* the contents under the root, counted once per inode and leaving out a copy in flight under
  one of apply's temporary names, are exactly the original ones: none lost, none duplicated as
  a separate copy. Two exceptions are checked more loosely: the hardlink policy merges copies
  on purpose (no content may be lost, nor gain a copy during apply), and a move across devices
  copies each name of a hard-linked file on its own (no copy may be lost). In every case a
  content never has more separate copies than it had names, but for one copy in flight.
After a resumed apply every planned item is done and every original path's content is at its
planned place; after a resumed rollback the tree is what it was (tests/apply_helpers.py).

In some iterations every move between two folders fails with EXDEV as across devices
(tests/crash_worker.cross_device), so the copy-verify-link path is killed too; in some, the
worker renames by link() + unlink(), as on filesystems without RENAME_NOREPLACE.

The seed is fixed so that a failure can be replayed; FILEORG_CRASH_SEED picks another.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

from storage import journal_moves
from storage.locations import DataStore
from storage.operations import PlanOptions
from tasks.apply import local
from tests import crash_worker
from tests.apply_helpers import (
    Operation,
    apply_all,
    build_small_tree,
    contents,
    differences,
    digest_at,
    linked_across_modes,
    moved_paths,
    plan_rows,
    plan_tree,
    rollback_all,
    temp_names,
)
from tests.crash_worker import cross_device
from tests.trees import Entry, snapshot

WORKER = Path(__file__).resolve().parents[2] / "crash_worker.py"
SEED = int(os.environ.get("FILEORG_CRASH_SEED", "20240611"))
POLICIES = ("report", "quarantine", "hardlink")
APPLY_KILLS = 45
ROLLBACK_KILLS = 35
ROLLBACK_AFTER_KILL = 20
MAX_ITERATIONS = 120
PROTOCOL = {"ready": 1, "started": 2, "done": 3, "exited": 3}  # the words of each line


@dataclass
class Run:
    interrupted: bool
    seconds: float | None
    changes: int


class Worker:
    """tests/crash_worker.py: forks one child per job; the test kills the child."""

    def __init__(self, stderr: IO[bytes]) -> None:
        self.stderr = stderr
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.out, self.inp = self.proc.stdout, self.proc.stdin
        assert self._line() == ["ready"], self.errors()

    def _line(self) -> list[str]:
        """The next protocol line as its words (tests/crash_worker.py writes each one whole)."""
        line = self.out.readline()
        assert line, f"the worker died: {self.errors()}"
        words = line.decode().split()
        assert line.endswith(b"\n") and words, f"a torn line {line!r}: {self.errors()}"
        assert len(words) == PROTOCOL.get(words[0]), f"not a protocol line: {line!r}"
        return words

    def errors(self) -> str:
        self.stderr.flush()
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def run(self, job: dict[str, Any], kill_after: float | None = None) -> Run:
        """Run `job` in a child; SIGKILL it after `kill_after` seconds unless it is done."""
        self.inp.write(json.dumps(job).encode() + b"\n")
        self.inp.flush()
        lines = [self._line()]
        while lines[-1][0] != "started":
            lines.append(self._line())
        pid = int(lines[-1][1])
        if kill_after is not None:
            time.sleep(kill_after)
            os.kill(pid, signal.SIGKILL)  # not reaped yet: the pid is still this child's
        self.inp.write(b"reap\n")
        self.inp.flush()
        while lines[-1][0] != "exited":
            lines.append(self._line())
        status = int(lines[-1][2])
        done = [line for line in lines if line[0] == "done"]
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        assert killed or os.waitstatus_to_exitcode(status) == 0, self.errors()
        if done:
            return Run(False, float(done[0][1]), int(done[0][2]))
        assert killed, lines
        return Run(True, None, 0)

    def close(self) -> None:
        self.inp.close()
        self.proc.wait(timeout=30)
        self.out.close()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where the trees live: a tmpfs when there is one. A SIGKILL loses no page cache, so
    fsync cannot matter to these tests, and on a tmpfs it costs nothing."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path_factory.mktemp("crash")
        return
    path = Path(tempfile.mkdtemp(prefix="fileorg-crash-", dir=shm))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    with open(tmp_path_factory.mktemp("worker") / "stderr", "w+b") as stderr:
        w = Worker(stderr)
        try:
            yield w
        finally:
            w.close()


@dataclass
class Case:
    """One planned tree, its original state, and the jobs that apply or roll it back."""

    where: str
    policy: str
    root: Path
    outside: Path
    store: DataStore
    op_dir: str
    before: dict[bytes, Entry]
    outside_before: dict[bytes, Entry]
    rows: list[dict[str, Any]]
    items: int = 0
    exdev: bool = False
    across: int = 0  # hardlink rows whose copy has another mode: conflicts, never linked
    kills: list[str] = field(default_factory=list)

    def job(self, kind: str, fallback: bool = False, kill_at: int | None = None) -> dict[str, Any]:
        return {
            "kind": kind,
            "data_url": self.store.url,
            "op_dir": self.op_dir,
            "root": str(self.root),
            "fallback": fallback,
            "exdev": self.exdev,
            "kill_at": kill_at,
        }

    def context(self) -> str:
        return f"{self.where} policy={self.policy} exdev={self.exdev} kills={self.kills}"

    @contextmanager
    def devices(self) -> Iterator[None]:
        """In this process, moves cross devices when the worker's did: a resumed run meets
        the same filesystems as the killed one."""
        with pytest.MonkeyPatch.context() as mp:
            if self.exdev:
                mp.setattr(local, "rename_noreplace", cross_device(local.rename_noreplace))
            yield

    def apply(self) -> Counter[str]:
        with self.devices():
            return apply_all(self.store, self.op_dir, self.root)

    def rollback(self) -> Counter[str]:
        with self.devices():
            return rollback_all(self.store, self.op_dir, self.root)

    def check_contents(self, during: str) -> None:
        """Nothing lost, nothing copied, nothing outside touched: after any kill."""
        now = snapshot(self.root)
        assert snapshot(self.outside) == self.outside_before, self.context()
        original, current = contents(self.before), contents(now)
        assert set(current) == set(original), f"{during}: a content is lost; {self.context()}"
        # Never more copies of a content than it had names, but for one copy in flight.
        names = names_of(self.before)
        extra = sum(max(0, n - names[d]) for d, n in current.items())
        assert extra <= 1, f"{during}: contents copied; {self.context()}"
        if self.policy == "hardlink":
            if during == "apply":
                gained = {d: n for d, n in current.items() if n > original[d]}
                assert not gained, f"apply copied a content; {self.context()}"
        elif self.exdev:
            # Across devices each name of a hard-linked file is copied on its own.
            lost = {d: n for d, n in current.items() if n < original[d]}
            assert not lost, f"{during}: a copy is lost; {self.context()}"
        else:
            assert current == original, f"{during}: contents changed; {self.context()}"

    def check_applied(self, counts: Counter[str]) -> None:
        """A resumed apply finished every item; each original path's bytes are in place."""
        expected = +Counter(done=self.items - self.across, conflicts=self.across)
        assert counts == expected, f"{counts}; {self.context()}"
        final = moved_paths(self.rows)
        now = snapshot(self.root)
        assert temp_names(now) == [], self.context()
        for path, entry in self.before.items():
            if entry.kind == "file":
                assert digest_at(self.root, final[path]) == entry.digest, (
                    f"{path!r} -> {final[path]!r}; {self.context()}"
                )
        if self.policy != "hardlink" and not self.exdev:
            assert contents(now) == contents(self.before), self.context()

    def check_restored(self) -> None:
        after = snapshot(self.root)
        assert differences(self.before, after) == [], self.context()
        assert snapshot(self.outside) == self.outside_before, self.context()


def names_of(snap: dict[bytes, Entry]) -> Counter[str]:
    """Content digests over names: a hard-linked file counts once per name."""
    return Counter(e.digest for e in snap.values() if e.kind == "file" and e.digest)


def new_case(base: Path, rng: random.Random, where: str, policy: str | None = None) -> Case:
    policy = policy or rng.choice(POLICIES)
    # Across devices the kept copy of a duplicate could not be linked to at all.
    exdev = policy != "hardlink" and rng.random() < 0.3
    tree = build_small_tree(base, rng, rng.randint(30, 60))
    store = DataStore(str(base / "data"))
    op_id = str(uuid.uuid4())
    op_dir = store.operation_dir(op_id)
    before, outside_before = snapshot(tree.root), snapshot(tree.outside)
    shard_rows = rng.choice((16, 20_000))  # several plan shards, or one
    plan_tree(store, op_id, tree.root, PlanOptions(duplicates=policy), shard_rows)
    rows = plan_rows(store, op_dir)
    items = sum(1 for r in rows if r["action"] in ("move", "quarantine", "hardlink"))
    where = f"{where} seed={SEED}"
    return Case(
        where,
        policy,
        tree.root,
        tree.outside,
        store,
        op_dir,
        before,
        outside_before,
        rows,
        items,
        exdev,
        len(linked_across_modes(rows, before)),
    )


@dataclass
class Pace:
    """Per planned item, the duration and the disk changes of an uninterrupted run."""

    seconds: dict[str, float]
    changes: dict[str, float]

    def kill(
        self, case: Case, kind: str, rng: random.Random
    ) -> tuple[dict[str, Any], float | None]:
        """A job and when to kill it: after a random delay, or at a random change."""
        fallback = rng.random() < 0.25
        if rng.random() < 0.5:
            delay = rng.uniform(0, self.seconds[kind] * case.items)
            case.kills.append(f"{kind} after {delay * 1000:.2f} ms fallback={fallback}")
            return case.job(kind, fallback), delay
        kill_at = rng.randint(1, max(1, round(self.changes[kind] * case.items)))
        case.kills.append(f"{kind} at change {kill_at} fallback={fallback}")
        return case.job(kind, fallback, kill_at), None


@pytest.fixture(scope="module")
def pace(worker: Worker, scratch: Path) -> Pace:
    """Measured on uninterrupted runs in the worker, which must round-trip each tree too."""
    seconds = {"apply": 0.0, "rollback": 0.0}
    changes = {"apply": 0.0, "rollback": 0.0}
    rng = random.Random(SEED - 1)
    for policy in POLICIES:
        case = new_case(scratch / f"pace-{policy}", rng, "pace", policy)
        for kind in ("apply", "rollback"):
            run = worker.run(case.job(kind, kill_at=10**9))  # counts changes, never kills
            assert run.seconds is not None, case.context()
            seconds[kind] = max(seconds[kind], run.seconds / case.items)
            changes[kind] = max(changes[kind], run.changes / case.items)
            if kind == "apply":
                case.check_applied(case.apply())
        case.check_restored()
    return Pace(seconds, changes)


def kill_until(
    worker: Worker, pace: Pace, case: Case, kind: str, rng: random.Random, times: int
) -> int:
    """Run `kind` killed `times` times (a kill that came too late does not count, but is run
    and checked too); check the invariants after each. Returns the kills that interrupted."""
    interrupted = 0
    for _ in range(times):
        job, delay = pace.kill(case, kind, rng)
        run = worker.run(job, kill_after=delay)
        interrupted += run.interrupted
        if not run.interrupted:
            case.kills[-1] += " (too late)"
        case.check_contents(kind)
    return interrupted


def test_each_protocol_line_is_one_whole_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """Worker and child share the pipe: a line written in two parts could be split by the
    other's line (print() under PYTHONUNBUFFERED wrote "started 16058" and "\\n" apart)."""
    writes: list[tuple[int, bytes]] = []
    monkeypatch.setattr(
        crash_worker, "_write", lambda fd, data: writes.append((fd, data)) or len(data)
    )

    crash_worker.say("started 16058")
    crash_worker.say("done 0.000100 7")

    assert writes == [(1, b"started 16058\n"), (1, b"done 0.000100 7\n")]


def test_killed_apply_and_rollback_finish_when_run_again(
    worker: Worker, pace: Pace, scratch: Path
) -> None:
    rng = random.Random(SEED)
    kills: Counter[str] = Counter()
    for iteration in range(MAX_ITERATIONS):
        if kills["apply"] >= APPLY_KILLS and kills["rollback"] >= ROLLBACK_KILLS:
            break
        base = scratch / f"resume-{iteration}"
        case = new_case(base, rng, f"iteration={iteration}")
        kills["apply"] += kill_until(worker, pace, case, "apply", rng, rng.randint(1, 2))
        case.check_applied(case.apply())
        kills["rollback"] += kill_until(worker, pace, case, "rollback", rng, rng.randint(1, 2))
        case.rollback()
        case.check_restored()
        shutil.rmtree(base)
    assert kills["apply"] >= APPLY_KILLS, f"{kills} (seed={SEED})"
    assert kills["rollback"] >= ROLLBACK_KILLS, f"{kills} (seed={SEED})"


def test_rollback_of_a_killed_apply_restores_the_tree(
    worker: Worker, pace: Pace, scratch: Path
) -> None:
    """An organize killed in its apply stage may be rolled back without being finished: the
    moves its journal announced but never confirmed are undone too."""
    rng = random.Random(SEED + 1)
    kills = 0
    for iteration in range(MAX_ITERATIONS):
        if kills >= ROLLBACK_AFTER_KILL:
            break
        base = scratch / f"undo-{iteration}"
        case = new_case(base, rng, f"iteration={iteration}")
        kills += kill_until(worker, pace, case, "apply", rng, rng.randint(1, 2))
        case.rollback()
        case.check_restored()
        shutil.rmtree(base)
    assert kills >= ROLLBACK_AFTER_KILL, f"only {kills} kills interrupted an apply (seed={SEED})"


# Every crash point of a tiny operation -------------------------------------------------------

EVERY = {
    "hardlink": ("hardlink", False, False, False),
    "hardlink, renames as link+unlink": ("hardlink", True, False, False),
    "quarantine, moves across devices": ("quarantine", False, True, False),
    "report, a project moved whole": ("report", False, False, True),
}
PROJECT = [
    ("code/app/Makefile", b"all:\n", 0o644),
    ("code/app/src/main.c", b"int main(void) { return 0; }\n", 0o644),
]


def tiny_case(base: Path, policy: str, exdev: bool, project: bool = False) -> Case:
    """A kept file and its copy (both of an odd mode: a link has one), a hard-linked pair, an
    empty file, a symlink; with `project`, a project planned to move whole (one folder
    rename)."""
    root, outside = base / "root", base / "outside"
    for rel, content, mode in [
        ("inbox/a.txt", b"alpha", 0o600),
        ("inbox/sub/copy of a.txt", b"alpha", 0o600),
        ("inbox/b.jpg", b"\xff\xd8\xff\xe0 bravo", 0o755),
        ("c.txt", b"charlie", 0o644),
        ("empty.txt", b"", 0o644),
        *(PROJECT if project else []),
    ]:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode)
    for i, path in enumerate(sorted(p for p in root.rglob("*") if p.is_file())):
        os.utime(path, ns=(10**18 + i, 10**18 + i))
    os.link(root / "c.txt", root / "inbox" / "c-link.txt")
    outside.mkdir()
    (root / "to-outside").symlink_to(outside)
    store = DataStore(str(base / "data"))
    op_id = str(uuid.uuid4())
    options = PlanOptions(duplicates=policy, projects="move" if project else "leave")
    plan_tree(store, op_id, root, options)
    op_dir = store.operation_dir(op_id)
    rows = plan_rows(store, op_dir)
    items = sum(1 for r in rows if r["action"] in ("move", "quarantine", "hardlink"))
    where = "tiny tree"
    return Case(where, policy, root, outside, store, op_dir, {}, {}, rows, items, exdev)


@pytest.mark.parametrize("variant", list(EVERY))
def test_every_crash_point_of_a_tiny_apply_and_rollback(
    worker: Worker, scratch: Path, variant: str
) -> None:
    """Killed before each of its changes to the disk in turn, from the first to the last."""
    policy, fallback, exdev, project = EVERY[variant]
    base = scratch / f"every-{list(EVERY).index(variant)}"
    case = tiny_case(base, policy, exdev, project)
    if project:
        assert any(r["kind"] == "dir" and r["action"] == "move" for r in case.rows)
    backup = base / "backup"  # the same inodes, so that the plan holds for every run
    shutil.copytree(case.root, backup, symlinks=True, copy_function=os.link)

    def fresh() -> None:
        shutil.rmtree(case.root)
        shutil.copytree(backup, case.root, symlinks=True, copy_function=os.link)
        shutil.rmtree(Path(case.op_dir) / "journal", ignore_errors=True)
        if project:  # a copied folder is a new inode: plan it again (the same plan otherwise)
            shutil.rmtree(case.op_dir)
            options = PlanOptions(duplicates=policy, projects="move")
            plan_tree(case.store, os.path.basename(case.op_dir), case.root, options)
            case.rows = plan_rows(case.store, case.op_dir)
        case.before, case.outside_before = snapshot(case.root), snapshot(case.outside)
        case.kills = []

    for kind in ("apply", "rollback"):
        fresh()
        if kind == "rollback":
            case.apply()
        changes = worker.run(case.job(kind, fallback, kill_at=10**9)).changes
        assert changes > 10, variant
        for kill_at in range(1, changes + 1):
            fresh()
            if kind == "rollback":
                case.check_applied(case.apply())
            case.kills.append(f"{kind} at change {kill_at} of {changes} fallback={fallback}")
            assert worker.run(case.job(kind, fallback, kill_at)).interrupted, case.context()
            case.check_contents(kind)
            if kind == "apply":
                case.check_applied(case.apply())
            case.rollback()
            case.check_restored()


def _unsealed(op_dir: str) -> list[str]:
    """What a killed seal can leave in the operation's journal folder and nothing reads: a
    moves file's temporary, or a moves file its journal does not seal."""
    folder = Path(op_dir) / "journal"
    if not folder.exists():  # killed before its first journal
        return []
    return sorted(
        path.name
        for path in folder.rglob("*")
        if path.name.endswith(journal_moves.SUFFIX + journal_moves.TMP)
        or (
            path.name.endswith(journal_moves.SUFFIX)
            and journal_moves.sealed_moves(str(path)[: -len(journal_moves.SUFFIX)]) is None
        )
    )


def test_an_apply_killed_at_each_change_of_its_seal_leaves_no_moves_file_behind(
    worker: Worker, scratch: Path
) -> None:
    """Five plain renames: the journal is sealed last (the moves file written, renamed into
    place, then the seal journaled). Killed before each of the apply's changes in turn, the
    next apply finishes and leaves no moves file its journal does not seal, nor a temporary;
    the kills between the rename and the seal's write did leave one (the window is reached)."""
    base = scratch / "sealed"
    planned = Operation(base, PlanOptions(mode="category"))
    for i in range(5):
        path = planned.root / ("inbox" if i % 2 else "old") / f"note {i}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"note %d" % i)
    planned.plan()
    backup = base / "backup"  # the same inodes, so that the plan holds for every run
    shutil.copytree(planned.root, backup, copy_function=os.link)
    before = snapshot(planned.root)

    def fresh() -> None:
        shutil.rmtree(planned.root)
        shutil.copytree(backup, planned.root, copy_function=os.link)
        shutil.rmtree(Path(planned.op_dir) / "journal", ignore_errors=True)

    def job(kill_at: int) -> dict[str, Any]:
        root, url = str(planned.root), planned.store.url
        return {
            "kind": "apply",
            "data_url": url,
            "op_dir": planned.op_dir,
            "root": root,
            "kill_at": kill_at,
        }

    fresh()
    changes = worker.run(job(10**9)).changes
    (journal,) = planned.journals()
    assert journal_moves.sealed_moves(journal) is not None, "the uninterrupted apply seals"
    left_by_kills = []
    for kill_at in range(1, changes + 1):
        fresh()
        assert worker.run(job(kill_at)).interrupted, kill_at
        left_by_kills += _unsealed(planned.op_dir)
        assert planned.apply() == Counter(done=5), kill_at
        assert _unsealed(planned.op_dir) == [], kill_at
        planned.rollback()
        assert _unsealed(planned.op_dir) == [], kill_at
        assert differences(before, snapshot(planned.root)) == [], kill_at
    assert any(name.endswith(journal_moves.SUFFIX) for name in left_by_kills)
