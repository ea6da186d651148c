"""The columnar, parallel walk gives the rows the plain serial walk gave, in the same order.

`reference_walk` is the walk as it was before it became columnar and parallel (one lstat
walk, one Python object per entry): kept here, as the definition the new walk must equal, on
the nasty tree and on generated trees of hidden files, junk, projects, tool folders,
symlinks, unreadable folders, names that are not UTF-8 and roots that are projects.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage import manifests
from storage.leave_alone import LeftAlone, ScanRules, by_contents, by_name
from tasks.scan.columns import display, text_of
from tasks.scan.local import BUDGET, _parts, batches
from tests.trees import make_nasty_tree, make_unreadable

Row = dict[str, Any]


def reference_walk(root: bytes, rules: ScanRules = ScanRules()) -> Iterator[Row]:
    """The serial walk (tasks/scan/local.py before issue 14), rows as the SCAN columns."""
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
            yield _row(rel_dir, "error", error=exc.strerror or type(exc).__name__)
            continue
        unit = by_contents([e.name for e in entries])
        if unit is not None and dir_st is not None:
            yield _row(rel_dir, "dir", dir_st, rule=unit)
            continue
        subdirs = []
        for entry in entries:
            rel = entry.path[prefix_len:]
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                yield _row(rel, "error", error=exc.strerror or type(exc).__name__)
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            rule = (unit or rules.sealed_rule(entry.path)) if is_dir else unit
            rule = rule or by_name(entry.name, is_dir, rules.include_hidden, rules.exclude)
            if is_dir and rule is not None:
                yield _row(rel, "dir", st, rule=rule)
            elif is_dir:
                subdirs.append((entry.path, st))
            else:
                yield _entry(rel, entry.path, st, rule)
        stack.extend(reversed(subdirs))


def _entry(rel: bytes, full: bytes, st: os.stat_result, rule: LeftAlone | None) -> Row:
    mode = st.st_mode
    kind = "file" if stat.S_ISREG(mode) else "symlink" if stat.S_ISLNK(mode) else "other"
    target = None
    if kind == "symlink":
        try:
            target = os.readlink(full)
        except OSError:
            target = None
    return _row(rel, kind, st, target=target, rule=rule, size=st.st_size)


def _row(
    rel: bytes,
    kind: str,
    st: os.stat_result | None = None,
    *,
    size: int = 0,
    target: bytes | None = None,
    error: str | None = None,
    rule: LeftAlone | None = None,
) -> Row:
    facts = (st.st_mtime_ns, st.st_dev, st.st_ino, st.st_nlink, st.st_mode) if st else (0,) * 5
    owner = (st.st_uid, st.st_gid) if st else (None, None)  # an error row has none
    return {
        "path": rel,
        "path_text": rel.decode("utf-8", "backslashreplace"),
        "kind": kind,
        "size": size,
        **dict(zip(("mtime_ns", "dev", "ino", "nlink", "mode"), facts, strict=True)),
        **dict(zip(("uid", "gid"), owner, strict=True)),
        "link_target": target,
        "error": error,
        "etag": None,
        "version_id": None,
        "left_alone": rule.code if rule else None,
        "rule": rule.detail if rule else None,
    }


def new_walk(
    root: bytes, rules: ScanRules = ScanRules(), processes: int = 1, budget: int = BUDGET
) -> list[Row]:
    out = []
    for batch in batches(root, rules, processes, budget):
        assert batch.schema == manifests.SCAN
        out += batch.to_pylist()
    return out


@pytest.fixture
def refusing(monkeypatch: pytest.MonkeyPatch) -> set[bytes]:
    """os.scandir refusing the folders put in the set, for both walks (we run as root)."""
    refused: set[bytes] = set()
    real = os.scandir

    def fake(path: Any = ".") -> Any:
        if not isinstance(path, int) and os.fsencode(path) in refused:
            raise PermissionError(13, "Permission denied", path)
        return real(path)

    monkeypatch.setattr(os, "scandir", fake)
    return refused


def _nasty(tmp_path: Path) -> bytes:
    root = tmp_path / "nasty"
    make_nasty_tree(root)
    make_unreadable(root)  # deeper than PATH_MAX: unreadable in any process
    for name in (".bashrc", "Photos/.DS_Store", "node_modules/x/index.js", "proj/Makefile"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")
    return bytes(root)


RULES = [
    ScanRules(),
    ScanRules(include_hidden=True, exclude=("*.log", "sub")),
]


@pytest.mark.parametrize("rules", RULES)
@pytest.mark.parametrize("budget", [1, 3, BUDGET])
def test_the_nasty_tree_gives_the_same_rows(tmp_path: Path, rules: ScanRules, budget: int) -> None:
    root = _nasty(tmp_path)
    sealed = ScanRules(rules.include_hidden, rules.exclude, ((root + b"/photos", "sealed"),))

    for r in (rules, sealed):
        expected = list(reference_walk(root, r))
        assert any(row["kind"] == "error" for row in expected)
        assert new_walk(root, r, 1, budget) == expected


def test_the_nasty_tree_in_the_process_pool_gives_the_same_rows(tmp_path: Path) -> None:
    root = _nasty(tmp_path)
    for i in range(30):  # more folders than one job's budget, to share out
        (tmp_path / "nasty" / f"many/m{i:02d}/n").mkdir(parents=True)
        (tmp_path / "nasty" / f"many/m{i:02d}/n/f.txt").write_bytes(b"f" * i)

    assert new_walk(root, ScanRules(), processes=2, budget=5) == list(reference_walk(root))


def test_the_frontier_is_cut_in_walk_order() -> None:
    folders = [(bytes([c]), None) for c in b"abcdefg"]

    assert _parts(folders, 3) == [folders[0:3], folders[3:6], folders[6:]]
    assert _parts(folders, 1) == [folders]
    assert _parts(folders[:2], 8) == [folders[:1], folders[1:2]]
    assert _parts([], 4) == []


# --- generated trees ---------------------------------------------------------------------

NAMES = [
    b"a", b"b.txt", b"Photo.JPG", b".hidden", b".DS_Store", b"Thumbs.db", b"._a", b"node_modules",
    b"__pycache__", b".git", b"pyproject.toml", b"Makefile", b"x.sln", b"pyvenv.cfg",
    b"prefect.db", b".ssh", b"caf\xe9", b"\xff\xfe", "日本".encode(), b"notes.log", b"sub",
]  # fmt: skip

Tree = dict[bytes, Any]  # name -> bytes (a file), "link:<target>" (a symlink) or a Tree
trees: st.SearchStrategy[Tree] = st.recursive(
    st.one_of(st.binary(max_size=8), st.sampled_from(["link:..", "link:a", "link:nowhere"])),
    lambda children: st.dictionaries(st.sampled_from(NAMES), children, max_size=6),
    max_leaves=25,
).filter(lambda t: isinstance(t, dict))


def _write(base: bytes, tree: Tree, folders: list[bytes]) -> None:
    for name, node in tree.items():
        path = base + b"/" + name
        if isinstance(node, dict):
            os.mkdir(path)
            folders.append(path)
            _write(path, node, folders)
        elif isinstance(node, str):
            os.symlink(node.removeprefix("link:"), path)
        else:
            with open(path, "wb") as fh:
                fh.write(node)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    tree=trees,
    hidden=st.booleans(),
    exclude=st.sampled_from([(), ("*.log",), ("sub", "b*")]),
    budget=st.sampled_from([1, 2, 7, BUDGET]),
    choices=st.lists(st.integers(0, 10_000), max_size=3),
)
def test_generated_trees_give_the_same_rows(
    refusing: set[bytes],
    tree: Tree,
    hidden: bool,
    exclude: tuple[str, ...],
    budget: int,
    choices: list[int],
) -> None:
    top = tempfile.mkdtemp(prefix="walk-eq-")
    try:
        root, folders = os.fsencode(top) + b"/root", []
        os.mkdir(root)
        _write(root, tree, folders)
        # Some folders unreadable, and one sealed (the data folder in the root).
        picked = [folders[i % len(folders)] for i in choices] if folders else []
        refusing.clear()
        refusing.update(picked[1:])
        sealed = ((picked[0], "fileorg data folder"),) if picked else ()
        rules = ScanRules(hidden, exclude, sealed)

        assert new_walk(root, rules, 1, budget) == list(reference_walk(root, rules))
    finally:
        shutil.rmtree(top)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=12), max_size=8))
def test_path_text_is_display_of_each_path(paths: list[bytes]) -> None:
    text = text_of(pa.array(paths, pa.binary())).to_pylist()

    assert text == [display(p) for p in paths]
