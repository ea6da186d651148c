"""What hashing promises on every backend, written once and run on a temp folder and on a
moto bucket (the `root` fixture): equal content is one group, different content never is
(same size, same first 4 KiB included), only files sharing a size are read, an unchanged root
is not read again, a file changed since the scan is an error and not a digest, a hard link is
not a duplicate."""

from __future__ import annotations

import blake3
import pyarrow as pa
import pytest

from storage import manifests
from storage.locations import DataStore
from tasks.backends import backend_for
from tasks.hashes import stage as hashes
from tasks.hashes import worklists
from tests.roots import TreeRoot
from tests.tasks.pipeline import duplicate_groups, hash_op, scan_op, stage_rows

BIG = 300 * 1024  # above a bucket's whole-read size: both passes read it
BODY = bytes(range(256)) * (BIG // 256)


def write_tree(root: TreeRoot) -> None:
    root.write("a/one.bin", BODY)
    root.write("b/two.bin", BODY)  # a duplicate in another folder
    root.write("same-prefix.bin", BODY[:-1] + b"\x00")  # same size and first 4 KiB
    root.write("same-size.bin", b"\x01" + BODY[1:])  # same size, another first byte
    root.write("s1.txt", b"tiny")
    root.write("été/s2.txt", b"tiny")
    root.write("alone.txt", b"no other file has this size")
    root.write("empty-1", b"")
    root.write("empty-2", b"")


def test_equal_content_is_one_group_and_different_content_never(
    root: TreeRoot, store: DataStore
) -> None:
    write_tree(root)
    op_dir, _ = scan_op(store, root.url)

    counts = hash_op(store, op_dir, root.url)

    assert duplicate_groups(store, op_dir) == {
        frozenset({b"a/one.bin", b"b/two.bin"}),
        frozenset({b"s1.txt", "été/s2.txt".encode()}),
    }
    assert counts["errors"] == 0
    full = {(r["dev"], r["ino"]): r["digest"] for r in stage_rows(store, op_dir, hashes.FULL)}
    digests = {r["path"]: full.get((r["dev"], r["ino"])) for r in stage_rows(store, op_dir, "scan")}
    assert digests[b"a/one.bin"] == blake3.blake3(BODY).digest()  # the content's own hash


def test_only_files_sharing_a_size_are_read(root: TreeRoot, store: DataStore) -> None:
    write_tree(root)
    op_dir, _ = scan_op(store, root.url)

    hash_op(store, op_dir, root.url)

    scanned = {(r["dev"], r["ino"]): r["path"] for r in stage_rows(store, op_dir, "scan")}
    prefixed = {scanned[(r["dev"], r["ino"])] for r in stage_rows(store, op_dir, hashes.PREFIX)}
    assert prefixed == {
        b"a/one.bin",
        b"b/two.bin",
        b"same-prefix.bin",
        b"same-size.bin",
        b"s1.txt",
        "été/s2.txt".encode(),
    }  # not the file of a size of its own, not the empty ones
    fully = {scanned[(r["dev"], r["ino"])] for r in stage_rows(store, op_dir, hashes.FULL)}
    assert fully == {
        b"a/one.bin",
        b"b/two.bin",
        b"same-prefix.bin",
        b"s1.txt",
        "été/s2.txt".encode(),
    }


def test_an_unchanged_root_is_not_read_again(root: TreeRoot, store: DataStore) -> None:
    write_tree(root)
    first, _ = scan_op(store, root.url)
    hash_op(store, first, root.url)

    second, _ = scan_op(store, root.url)
    counts = hash_op(store, second, root.url, prev_dir=first)

    assert counts["bytes_read"] == 0
    assert duplicate_groups(store, second) == duplicate_groups(store, first)
    for stage in (hashes.PREFIX, hashes.FULL):
        rows = stage_rows(store, second, stage)
        assert rows and all(r["cached"] for r in rows)
        assert {(r["ino"], r["digest"]) for r in rows} == {
            (r["ino"], r["digest"]) for r in stage_rows(store, first, stage)
        }


def test_a_file_changed_since_the_scan_is_an_error_not_a_digest(
    root: TreeRoot, store: DataStore
) -> None:
    write_tree(root)
    op_dir, _ = scan_op(store, root.url)
    root.remove("b/two.bin")
    root.write("b/two.bin", BODY + b"more")  # another size: the scanned file is gone

    counts = hash_op(store, op_dir, root.url)

    scanned = {r["path"]: (r["dev"], r["ino"]) for r in stage_rows(store, op_dir, "scan")}
    prefix = {(r["dev"], r["ino"]): r for r in stage_rows(store, op_dir, hashes.PREFIX)}
    changed = prefix[scanned[b"b/two.bin"]]
    assert (changed["digest"], changed["error"]) == (None, "changed since scan")
    assert counts["errors"] == 1
    assert frozenset({b"a/one.bin", b"b/two.bin"}) not in duplicate_groups(store, op_dir)


def test_a_hard_link_is_one_file_not_a_duplicate(root: TreeRoot, store: DataStore) -> None:
    root.write("a.bin", BODY)
    root.hardlink("link-to-a.bin", "a.bin")
    root.write("other.bin", b"\x02" + BODY[1:])
    op_dir, _ = scan_op(store, root.url)

    hash_op(store, op_dir, root.url)

    assert duplicate_groups(store, op_dir) == set()
    assert stage_rows(store, op_dir, hashes.FULL) == []  # one inode of that size with content


def _no_query(*args: object) -> int:
    raise AssertionError("the work list of an unchanged tree was made by a query")


def test_an_unchanged_roots_work_lists_are_the_last_ones_copied(
    root: TreeRoot, store: DataStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_tree(root)
    first, _ = scan_op(store, root.url)
    hash_op(store, first, root.url)
    second, _ = scan_op(store, root.url)
    hash_op(store, second, root.url, prev_dir=first)  # a query: the first list had no digests

    third, _ = scan_op(store, root.url)
    monkeypatch.setattr(worklists, "_write_streamed", _no_query)
    counts = hash_op(store, third, root.url, prev_dir=second)

    assert counts["bytes_read"] == 0
    assert duplicate_groups(store, third) == duplicate_groups(store, first)
    for stage in (hashes.PREFIX, hashes.FULL):
        listed = stage_rows(store, third, worklists.inputs_dir(stage))
        assert listed == stage_rows(store, second, worklists.inputs_dir(stage))
        assert listed and all(r["cached"] is not None for r in listed)
        assert all(r["cached"] for r in stage_rows(store, third, stage))


def test_a_digest_whose_read_failed_is_read_again_when_the_list_is_copied(
    root: TreeRoot, store: DataStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_tree(root)
    first, _ = scan_op(store, root.url)
    hash_op(store, first, root.url)
    second, _ = scan_op(store, root.url)
    hash_op(store, second, root.url, prev_dir=first)
    path = manifests.shard_path(second, hashes.PREFIX, 0)
    done = manifests.read_table(store, path)
    errors = pa.array(["could not read", *[None] * (done.num_rows - 1)], pa.string())
    failed = (done["dev"][0].as_py(), done["ino"][0].as_py())
    manifests.write_table(store, path, done.set_column(5, "error", errors))

    third, _ = scan_op(store, root.url)
    real = worklists._write_streamed
    monkeypatch.setattr(worklists, "_write_streamed", _no_query)
    shards = hashes.plan_prefix_inputs(store, third, second, 1000, backend_for(root.url))
    for index in range(shards):
        hashes.hash_shard(store, third, hashes.PREFIX, index, backend_for(root.url), 1)
    monkeypatch.setattr(worklists, "_write_streamed", real)  # a digest was read: a query
    hashes.plan_full_inputs(store, third, second, 1000, 1 << 40, backend_for(root.url))

    again = {(r["dev"], r["ino"]): r for r in stage_rows(store, third, hashes.PREFIX)}[failed]
    assert (again["cached"], again["error"]) == (False, None) and again["digest"]
    full = manifests.done_info(store, third, worklists.inputs_dir(hashes.FULL)) or {}
    assert "copied_from" not in full
