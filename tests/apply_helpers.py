"""Helpers for the apply and rollback tests: plan a tree without Prefect, apply and roll it
back shard by shard, and compare trees the way a round trip is judged.

A round trip must give back every path of a file or symlink with its bytes, mode and mtime
(and a symlink its target). Directories are compared as a set of paths: their mtimes move
whenever a name is added or removed in them.

Contents are compared as a multiset over distinct inodes (hard links are one file), so that
"no content lost, none duplicated as a separate copy" is one equality.
"""

from __future__ import annotations

import hashlib
import os
import random
import stat
import uuid
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

from storage import manifests
from storage.journal import PHASES, applied_journals
from storage.leave_alone import ScanRules
from storage.locations import DataStore
from storage.operations import PlanOptions
from storage.roots import home_folder, home_state
from tasks.apply import stage as apply
from tasks.backends import backend_for
from tasks.classify import stage as classify
from tasks.hashes import stage as hashes
from tasks.plan import stage as plan
from tasks.scan import stage as scan
from tests.trees import Entry

SHARD_ROWS = 20_000
BASE_MTIME_NS = 1_555_083_000 * 10**9  # 2019-04-12 15:30:00 UTC
TEMP_PREFIX = b".fileorg-"  # apply's own temporary names (copies set aside, restores)


def plan_tree(
    store: DataStore,
    op_id: str,
    root: str | Path,
    options: PlanOptions,
    shard_rows: int = SHARD_ROWS,
) -> dict[str, int]:
    """The organize stages as plain functions, in the order of flows.organize._run_stages:
    scan, classify, prefix hash, full hash, plan. One process, no Prefect."""
    op_dir = store.operation_dir(op_id)
    backend = backend_for(str(root))  # as the flow: chosen once, from the root's URL
    home = tuple(home_state(str(root), home_folder()))  # a whole home's program folders
    rules = ScanRules(options.include_hidden, tuple(options.exclude), home)
    scanned = scan.scan_root(store, op_dir, backend, shard_rows, rules)
    for index in range(scanned["shards"]):
        classify.classify_shard(store, op_dir, index, backend, 1)
    prefix_shards = hashes.plan_prefix_inputs(store, op_dir, None, shard_rows, backend)
    for index in range(prefix_shards):
        hashes.hash_shard(store, op_dir, hashes.PREFIX, index, backend, 1)
    full_shards = hashes.plan_full_inputs(store, op_dir, None, shard_rows, 1 << 40, backend)
    for index in range(full_shards):
        hashes.hash_shard(store, op_dir, hashes.FULL, index, backend, 1)
    return plan.plan_operation(store, op_dir, options, shard_rows, backend)


def linked_across_modes(rows: Iterable[dict[str, Any]], before: dict[bytes, Entry]) -> set[bytes]:
    """The copies the plan would link to a kept copy of another mode (in `before`): apply
    leaves each where it is, a conflict (a link has one mode)."""
    rows = list(rows)
    scanned = {r["dst"] if r["action"] == "move" else r["src"]: r["src"] for r in rows}
    return {
        r["src"]
        for r in rows
        if r["action"] == "hardlink"
        and stat.S_IMODE(before[r["src"]].mode) != stat.S_IMODE(before[scanned[r["link_to"]]].mode)
    }


def plan_rows(store: DataStore, op_dir: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in manifests.shard_paths(store, op_dir, "plan"):
        rows += manifests.read_table(store, path).to_pylist()
    return rows


def apply_all(
    store: DataStore, op_dir: str, root: str | Path, keep_empty_folders: bool = False
) -> Counter[str]:
    """Every shard of both phases, then the folders they emptied, as the apply flow runs them."""
    totals: Counter[str] = Counter()
    where = backend_for(str(root)).apply()
    for phase in PHASES:
        for shard in range(apply.plan_shards(store, op_dir)):
            totals.update(apply.apply_shard(store, op_dir, where, phase, shard))
    if not keep_empty_folders:
        apply.remove_emptied(store, op_dir, where)
    return totals


def rollback_all(store: DataStore, op_dir: str, root: str | Path) -> Counter[str]:
    """The folders apply removed, every apply journal, newest first, then the folders apply
    made, as the rollback flow."""
    totals: Counter[str] = Counter()
    where = backend_for(str(root)).apply()
    apply.recreate_folders(store, op_dir, where)
    for journal in reversed(applied_journals(store, op_dir)):
        totals.update(apply.rollback_one(store, op_dir, where, journal))
    apply.tidy_dirs(store, op_dir, where)
    return totals


class Operation:
    """One operation on `base/root`, its data folder at `base/data`, run without Prefect."""

    def __init__(self, base: Path, options: PlanOptions | None = None) -> None:
        self.root = base / "root"
        self.store = DataStore(str(base / "data"))
        self.op_id = str(uuid.uuid4())
        self.op_dir = self.store.operation_dir(self.op_id)
        self.options = options or PlanOptions()

    def plan(self) -> dict[str, int]:
        return plan_tree(self.store, self.op_id, self.root, self.options)

    def apply(self) -> Counter[str]:
        return apply_all(self.store, self.op_dir, self.root, self.options.keep_empty_folders)

    def rollback(self) -> Counter[str]:
        return rollback_all(self.store, self.op_dir, self.root)

    def rows(self) -> dict[bytes, dict[str, Any]]:
        return {row["src"]: row for row in plan_rows(self.store, self.op_dir)}

    def journals(self) -> list[str]:
        return applied_journals(self.store, self.op_dir)


class Fact(NamedTuple):
    kind: str
    digest: str | None
    mode: int
    mtime_ns: int
    target: bytes | None


def facts(snap: dict[bytes, Entry]) -> tuple[dict[bytes, Fact], set[bytes]]:
    """(files and symlinks with what a round trip keeps, the set of directories)."""
    entries = {
        path: Fact(e.kind, e.digest, e.mode, e.mtime_ns, e.target)
        for path, e in snap.items()
        if e.kind != "dir"
    }
    return entries, {path for path, e in snap.items() if e.kind == "dir"}


def differences(before: dict[bytes, Entry], after: dict[bytes, Entry]) -> list[str]:
    """What a round trip failed to give back, one line per path (empty when nothing)."""
    old, old_dirs = facts(before)
    new, new_dirs = facts(after)
    lines = []
    for path in sorted(old.keys() | new.keys()):
        if old.get(path) != new.get(path):
            lines.append(f"{path!r}: before {old.get(path)}, after {new.get(path)}")
    for path in sorted(old_dirs ^ new_dirs):
        lines.append(f"{path!r}: directory {'gone' if path in old_dirs else 'added'}")
    return lines


def contents(snap: dict[bytes, Entry]) -> Counter[str]:
    """Content digests over distinct inodes (each hard-linked file counts once) that a user
    can see: an inode whose only name is one of apply's temporary names is left out."""
    by_inode: dict[int, str | None] = {}
    for path, e in snap.items():
        if e.kind == "file" and not os.path.basename(path).startswith(TEMP_PREFIX):
            by_inode[e.ino] = e.digest
    return Counter(d for d in by_inode.values() if d is not None)


def temp_names(snap: dict[bytes, Entry]) -> list[bytes]:
    return [p for p in snap if os.path.basename(p).startswith(TEMP_PREFIX)]


def digest_at(root: Path, rel: bytes) -> str | None:
    """The content digest of the regular file at `rel`, or None (missing, or not a file)."""
    path = os.fsencode(root) + b"/" + rel
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


# Small trees for generated and randomized tests ---------------------------------------------

DIRS = (b"", b"inbox", b"inbox/sub dir", b"caf\xe9", b"Photos", b"a/b/c", b"docs")
STEMS = (b"report", b"IMG_0001", b"notes", b"r\xe9sum\xe9", b"Holiday Photo", b"L" * 200, b"x")
EXTS = (b".txt", b".jpg", b".pdf", b".md", b".bin", b"", b".JPG")
MODES = (0o644, 0o600, 0o755, 0o640, 0o444)
JPEG_MAGIC = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"


class SmallTree(NamedTuple):
    root: Path
    outside: Path
    files: int


def build_small_tree(base: Path, rng: random.Random, n_files: int) -> SmallTree:
    """A tree of `n_files` regular files with duplicates, hard links, empty files, odd modes,
    a sidecar pair, symlinks (one leading outside the root) and nasty names."""
    root, outside = base / "root", base / "outside"
    root.mkdir(parents=True)
    outside.mkdir()
    (outside / "target.txt").write_bytes(b"outside the root\n")
    root_b = os.fsencode(root)
    made: list[tuple[bytes, bytes]] = []  # (rel, content)
    taken: set[bytes] = set()
    for i in range(n_files):
        rel = _fresh_name(rng, taken, i)
        roll = rng.random()
        if made and roll < 0.3:
            content = rng.choice(made)[1]  # a duplicate copy somewhere else
        elif roll < 0.35:
            content = b""
        else:
            head = JPEG_MAGIC if rel.lower().endswith(b".jpg") else b""
            content = head + rng.randbytes(rng.randint(1, 2000))
        if made and rng.random() < 0.08:
            os.makedirs(os.path.dirname(root_b + b"/" + rel), exist_ok=True)
            os.link(root_b + b"/" + rng.choice(made)[0], root_b + b"/" + rel)
            continue
        _write(root_b, rel, content, rng.choice(MODES), BASE_MTIME_NS + i * 3_600 * 10**9)
        made.append((rel, content))
    _write(root_b, b"Photos/IMG_7777.jpg", JPEG_MAGIC + rng.randbytes(64), 0o644, BASE_MTIME_NS)
    _write(root_b, b"Photos/IMG_7777.xmp", b"<x:xmpmeta/>\n", 0o644, BASE_MTIME_NS)
    os.makedirs(root_b + b"/docs", exist_ok=True)
    os.symlink(b"../Photos/IMG_7777.jpg", root_b + b"/docs/inside-link")
    os.symlink(os.fsencode(outside / "target.txt"), root_b + b"/docs/outside-link")
    return SmallTree(root, outside, n_files + 2)


def _fresh_name(rng: random.Random, taken: set[bytes], i: int) -> bytes:
    while True:
        directory = rng.choice(DIRS)
        name = rng.choice(STEMS) + (b" %d" % i if rng.random() < 0.7 else b"") + rng.choice(EXTS)
        rel = directory + b"/" + name if directory else name
        if rel not in taken and not rel.startswith(b"Photos/IMG_7777"):
            taken.add(rel)  # case-only differences are welcome
            return rel


def _write(root: bytes, rel: bytes, content: bytes, mode: int, mtime_ns: int) -> None:
    path = root + b"/" + rel
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, content)
        os.fchmod(fd, mode)
        os.utime(fd, ns=(mtime_ns, mtime_ns))
    finally:
        os.close(fd)


class FinalPaths(dict[bytes, bytes]):
    """Where each path ends up after a complete apply: a planned file where its row says, a
    file inside a folder moved whole under that folder's new path, anything else in place."""

    def __init__(self, final: dict[bytes, bytes], folders: dict[bytes, bytes]) -> None:
        super().__init__(final)
        self.folders = folders

    def __missing__(self, path: bytes) -> bytes:
        for src, dst in self.folders.items():
            if path.startswith(src + b"/"):
                return dst + path[len(src) :]
        return path


def moved_paths(rows: Iterable[dict[str, Any]]) -> FinalPaths:
    """Where each planned file of the plan ends up after a complete apply."""
    final: dict[bytes, bytes] = {}
    folders: dict[bytes, bytes] = {}
    for row in rows:
        src = row["src"]
        assert isinstance(src, bytes)
        if row["action"] in ("move", "quarantine"):
            dst = row["dst"]
            assert isinstance(dst, bytes)
            final[src] = dst
            if row.get("kind") == "dir":
                folders[src] = dst
        else:
            final[src] = src
    return FinalPaths(final, folders)
