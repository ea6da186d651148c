"""What the scan promises on every backend, written once and run on a temp folder and on a
moto bucket (the `root` fixture): every file with its size and mtime, shards of the asked
size with their checkpoint, nothing left alone offered to later stages, symlinks never
followed, the data folder never entered."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from storage import manifests
from storage.leave_alone import ScanRules
from storage.locations import DataStore
from tasks.backends import DATA_FOLDER, backend_for
from tasks.scan.stage import scan_root
from tests.roots import TreeRoot
from tests.tasks.pipeline import new_op, scan_op, stage_rows

NAMES = {
    "a.txt": b"hello",
    "dir one/été 2019.jpg": b"\xff\xd8\xff photo",
    "b/deep/c.bin": b"x" * 1000,
    "b/empty.txt": b"",
}


def _files(rows: list[dict[str, Any]]) -> dict[bytes, dict[str, Any]]:
    """The rows later stages organize: files not left alone, by path."""
    return {r["path"]: r for r in rows if r["kind"] == "file" and r["left_alone"] is None}


def test_every_file_is_listed_with_its_size_and_mtime(root: TreeRoot, store: DataStore) -> None:
    for name, body in NAMES.items():
        root.write(name, body)

    op_dir, info = scan_op(store, root.url)

    rows = stage_rows(store, op_dir, "scan")
    files = _files(rows)
    assert sorted(files) == root.files() == sorted(n.encode() for n in NAMES)
    for path, row in files.items():
        expected = root.stat(path)
        assert (row["size"], row["mtime_ns"]) == (expected.size, expected.mtime_ns)
        assert row["path_text"] == path.decode()
        assert row["error"] is None
    assert info == {
        "shards": 1,
        "entries": len(NAMES),
        "files": len(NAMES),
        "bytes": sum(len(b) for b in NAMES.values()),
        "errors": 0,
        "left_alone": 0,
        "root_dev": root.dev,
    }


def test_a_file_has_its_owner_and_an_object_none(root: TreeRoot, store: DataStore) -> None:
    # A hard link has one owner: the planner reads it (tasks.plan.reasons.not_linked).
    root.write("a.txt", b"hello")

    op_dir, _ = scan_op(store, root.url)

    (row,) = stage_rows(store, op_dir, "scan")
    if root.is_object:
        assert (row["uid"], row["gid"]) == (None, None)
    else:
        st = os.lstat(root.full("a.txt"))  # type: ignore[attr-defined]
        assert (row["uid"], row["gid"]) == (st.st_uid, st.st_gid)


def test_a_scan_is_the_same_twice(root: TreeRoot, store: DataStore) -> None:
    for name, body in NAMES.items():
        root.write(name, body)

    first, _ = scan_op(store, root.url)
    second, _ = scan_op(store, root.url)

    assert stage_rows(store, first, "scan") == stage_rows(store, second, "scan")


@pytest.mark.parametrize(
    ("files", "shard_rows", "expected_rows"),
    [(5, 2, [2, 2, 1]), (4, 2, [2, 2]), (3, 10, [3]), (0, 10, [0])],
)
def test_scan_root_writes_shards_of_shard_rows(
    root: TreeRoot, store: DataStore, files: int, shard_rows: int, expected_rows: list[int]
) -> None:
    for i in range(files):
        root.write(f"f{i:02d}.txt", b"x" * i)
    flushed: list[tuple[int, int]] = []
    op_dir = new_op(store)

    info = scan_root(
        store,
        op_dir,
        backend_for(root.url),
        shard_rows,
        on_flush=lambda n, b: flushed.append((n, b)),
    )

    shards = manifests.shard_paths(store, op_dir, "scan")
    tables = [manifests.read_table(store, s) for s in shards]
    assert [t.num_rows for t in tables] == expected_rows
    assert all(t.schema == manifests.SCAN for t in tables)
    paths = [p for t in tables for p in t.column("path").to_pylist()]
    assert paths == [f"f{i:02d}.txt".encode() for i in range(files)]
    expected_bytes = sum(range(files))
    assert info == {
        "shards": len(expected_rows),
        "entries": files,
        "files": files,
        "bytes": expected_bytes,
        "errors": 0,
        "left_alone": 0,
        "root_dev": root.dev,
    }
    assert [n for n, _ in flushed] == expected_rows
    assert sum(b for _, b in flushed) == expected_bytes
    success = store.read_bytes(f"{op_dir}/scan/{manifests.SUCCESS}")
    assert json.loads(success) == info


def test_scan_root_after_success_does_nothing(
    root: TreeRoot, store: DataStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(3):
        root.write(f"f{i:02d}.txt", b"x" * i)
    backend = backend_for(root.url)
    op_dir = new_op(store)
    first = scan_root(store, op_dir, backend, 2)
    shards = manifests.shard_paths(store, op_dir, "scan")
    before = {s: store.read_bytes(s) for s in shards}

    def no_entries(*args: object, **kwargs: object) -> Iterator[object]:
        raise AssertionError("a finished scan was walked again")

    monkeypatch.setattr(type(backend), "entries", no_entries)
    root.write("new.txt", b"new")

    again = scan_root(store, op_dir, backend, 2)

    assert again == first
    assert {s: store.read_bytes(s) for s in manifests.shard_paths(store, op_dir, "scan")} == (
        before
    )


def test_an_interrupted_scan_is_redone_whole(root: TreeRoot, store: DataStore) -> None:
    for i in range(3):
        root.write(f"f{i:02d}.txt", b"x" * i)
    op_dir = new_op(store)
    for index in range(5):  # stale shards from an earlier, longer attempt; no _SUCCESS
        manifests.write_table(
            store,
            manifests.shard_path(op_dir, "scan", index),
            manifests.SCAN.empty_table(),
        )

    info = scan_root(store, op_dir, backend_for(root.url), 2)

    shards = manifests.shard_paths(store, op_dir, "scan")
    assert [s.rsplit("/", 1)[1] for s in shards] == ["part-00000.parquet", "part-00001.parquet"]
    paths = [p for s in shards for p in manifests.read_table(store, s).column("path").to_pylist()]
    assert paths == [b"f00.txt", b"f01.txt", b"f02.txt"]
    assert info["shards"] == 2
    assert manifests.done_info(store, op_dir, "scan") == info


def test_what_is_left_alone_is_never_a_file_to_organize(root: TreeRoot, store: DataStore) -> None:
    for name in (".bashrc", "node_modules/left-pad/index.js", "Photos/.DS_Store", "Photos/a.jpg"):
        root.write(name, b"body of " + name.encode())

    op_dir, info = scan_op(store, root.url)

    rows = stage_rows(store, op_dir, "scan")
    assert set(_files(rows)) == {b"Photos/a.jpg"}
    codes = {r["path"]: r["left_alone"] for r in rows if r["left_alone"] is not None}
    assert (codes[b".bashrc"], codes[b"Photos/.DS_Store"]) == ("hidden", "junk")
    # A folder walk leaves node_modules as one row; a flat listing marks each of its keys.
    module_rows = {path: code for path, code in codes.items() if path.startswith(b"node_modules")}
    assert set(module_rows.values()) == {"tool-folder"}
    assert info["files"] == 1
    assert info["left_alone"] == len(codes)


def test_the_data_folder_inside_the_root_is_one_row_never_entered(root: TreeRoot) -> None:
    root.write("kept.txt", b"k")
    root.write("fileorg/operations/x/scan/part-00000.parquet", b"manifest")
    inside = DataStore(f"{root.url}/fileorg")
    backend = backend_for(root.url)
    rules = ScanRules(sealed=tuple(backend.sealed(inside, [])))

    listed = [row for batch in backend.entries(rules, 1) for row in batch.to_pylist()]

    assert [(e["path"], e["kind"], e["left_alone"], e["rule"]) for e in listed] == [
        (b"fileorg", "dir", "data-folder", DATA_FOLDER),  # listed once, as one folder left alone
        (b"kept.txt", "file", None, None),
    ]


def test_symlinks_are_rows_never_followed(root: TreeRoot, store: DataStore) -> None:
    root.write("real/a.txt", b"content")
    root.symlink("to-dir", "real")
    root.symlink("to-file.txt", "real/a.txt")
    root.symlink("dangling", "nowhere")

    op_dir, info = scan_op(store, root.url)

    rows = {r["path"]: r for r in stage_rows(store, op_dir, "scan")}
    assert set(rows) == {b"real/a.txt", b"to-dir", b"to-file.txt", b"dangling"}
    links = {p: (r["kind"], r["link_target"]) for p, r in rows.items() if p != b"real/a.txt"}
    assert links == {
        b"to-dir": ("symlink", b"real"),
        b"to-file.txt": ("symlink", b"real/a.txt"),
        b"dangling": ("symlink", b"nowhere"),
    }
    assert info["files"] == 1
