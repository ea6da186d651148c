"""The prefix digest classify records where it read a file's head (storage.manifests.CLASSIFY
`prefix`): the digest the prefix pass computes, only for a file still the scanned size, kept in
reused answers, null in shards written before the column."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.compute as pc

from storage import manifests
from storage.locations import DataStore
from tasks.hashes import local as hash_local
from tests.tasks.pipeline import classify_op, exif_jpeg, scan_op, stage_rows
from tests.trees import make_nasty_tree

PNG_HEAD = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


def test_the_prefix_is_what_the_prefix_pass_digests(tmp_path: Path, store: DataStore) -> None:
    root = tmp_path / "root"
    make_nasty_tree(root)
    (root / "big.jpg").write_bytes(exif_jpeg("2019:04:12 15:30:00") + os.urandom(200_000))
    (root / "blob").write_bytes(PNG_HEAD + os.urandom(9000))  # past the 8 KiB magic read
    (root / "tiny").write_bytes(b"%PDF")
    (root / "notes.txt").write_bytes(b"not read by classify")
    op_dir, _ = scan_op(store, str(root))

    classify_op(store, op_dir, str(root))

    rows = {r["path"]: r for r in stage_rows(store, op_dir, "classify")}
    sizes = {r["path"]: r["size"] for r in stage_rows(store, op_dir, "scan")}
    digested = [r for r in rows.values() if r["prefix"] is not None]
    base = os.fsencode(root) + b"/"
    expected = [hash_local.hash_prefix(base + r["path"], sizes[r["path"]]) for r in digested]
    assert [r["prefix"] for r in digested] == [digest for digest, _, _ in expected]
    assert {b"big.jpg", b"blob", b"tiny", b"photos/photo.jpg"} <= {r["path"] for r in digested}
    assert rows[b"notes.txt"]["prefix"] is None  # its name was enough: never opened


def test_a_file_no_longer_the_scanned_size_gets_no_prefix(tmp_path: Path, store: DataStore) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "grows").write_bytes(PNG_HEAD)
    (root / "same").write_bytes(PNG_HEAD)
    op_dir, _ = scan_op(store, str(root))
    with open(root / "grows", "ab") as fh:
        fh.write(b"more")

    classify_op(store, op_dir, str(root))

    rows = {r["path"]: r for r in stage_rows(store, op_dir, "classify")}
    assert rows[b"grows"]["category"] == "images"
    assert rows[b"grows"]["prefix"] is None
    assert rows[b"same"]["prefix"] is not None


def test_reused_answers_keep_their_prefix_and_old_shards_read_it_as_null(
    tmp_path: Path, store: DataStore
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.png").write_bytes(PNG_HEAD + b"a")
    (root / "b.png").write_bytes(PNG_HEAD + b"b")
    first, _ = scan_op(store, str(root))
    classify_op(store, first, str(root))
    second, _ = scan_op(store, str(root))

    counts = classify_op(store, second, str(root), prev_dir=first)

    assert counts["cached"] == 2
    assert stage_rows(store, second, "classify") == stage_rows(store, first, "classify")
    # The first operation's shard as it was written before the column existed.
    shard = manifests.shard_path(first, "classify", 0)
    old = manifests.read_table(store, shard).drop_columns(["prefix"])
    manifests.write_table(store, shard, old)
    third, _ = scan_op(store, str(root))

    counts = classify_op(store, third, str(root), prev_dir=first)

    assert counts["cached"] == 2
    table = manifests.read_table(store, manifests.shard_path(third, "classify", 0))
    assert table.schema == manifests.CLASSIFY
    assert pc.all(pc.is_null(table["prefix"])).as_py()
    assert table.drop_columns(["prefix"]).to_pylist() == old.to_pylist()
