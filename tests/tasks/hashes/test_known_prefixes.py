"""One read per file: a prefix digest the classify stage took of a head it read anyway (its
`prefix` column) is the prefix pass's answer, not read again; classify shards written before
the column existed, or without it in some shards, change nothing but what is reused. Run on
a temp folder and on a moto bucket (the `root` fixture)."""

from __future__ import annotations

from typing import Any

import blake3
import pyarrow as pa

from storage import manifests
from storage.locations import DataStore
from tasks.backends import backend_for
from tasks.hashes import stage as hashes
from tasks.hashes.local import PREFIX_BYTES
from tests.roots import TreeRoot
from tests.tasks.hashes.test_contract import BIG, BODY, write_tree
from tests.tasks.pipeline import duplicate_groups, hash_op, scan_op, stage_rows

MID = 8 * 1024  # past the prefix, below a bucket's whole read: a bucket reads it whole
MID_BODY = b"m" * MID
GROUPS = {
    frozenset({b"a/one.bin", b"b/two.bin"}),
    frozenset({b"s1.txt", "été/s2.txt".encode()}),
    frozenset({b"mid-1.bin", b"mid-2.bin"}),
}


def write_classify(
    store: DataStore, op_dir: str, index: int, contents: dict[bytes, bytes | None], prefix: bool
) -> None:
    """A classify shard of these paths, with a `prefix` column (the digest of the head, null
    where the content is None) or, like shards of before, without one."""
    names = [*manifests.CLASSIFY.names, *(["prefix"] if prefix else [])]
    rows: list[dict[str, Any]] = [
        {name: None for name in names} | {"path": path, "category": "other", "ext": ""}
        for path in contents
    ]
    if prefix:
        for row, content in zip(rows, contents.values(), strict=True):
            head = None if content is None else content[:PREFIX_BYTES]
            row["prefix"] = None if head is None else blake3.blake3(head).digest()
    schema = pa.schema([*manifests.CLASSIFY, *([("prefix", pa.binary())] if prefix else [])])
    table = pa.Table.from_pylist(rows, schema=schema)
    manifests.write_table(store, manifests.shard_path(op_dir, "classify", index), table)


def tree(root: TreeRoot) -> dict[bytes, bytes]:
    write_tree(root)
    root.write("mid-1.bin", MID_BODY)
    root.write("mid-2.bin", MID_BODY)
    return {
        b"a/one.bin": BODY,
        b"b/two.bin": BODY,
        b"same-prefix.bin": BODY[:-1] + b"\x00",
        b"same-size.bin": b"\x01" + BODY[1:],
        b"s1.txt": b"tiny",
        "été/s2.txt".encode(): b"tiny",
        b"alone.txt": b"no other file has this size",
        b"mid-1.bin": MID_BODY,
        b"mid-2.bin": MID_BODY,
    }


def prefix_rows(store: DataStore, op_dir: str) -> dict[bytes, dict[str, Any]]:
    paths = {(r["dev"], r["ino"]): r["path"] for r in stage_rows(store, op_dir, "scan")}
    return {paths[(r["dev"], r["ino"])]: r for r in stage_rows(store, op_dir, hashes.PREFIX)}


def test_a_prefix_classify_took_is_not_read_again(root: TreeRoot, store: DataStore) -> None:
    contents = tree(root)
    op_dir, _ = scan_op(store, root.url)
    write_classify(store, op_dir, 0, contents, prefix=True)

    counts = hash_op(store, op_dir, root.url)

    assert duplicate_groups(store, op_dir) == GROUPS
    assert counts["errors"] == 0
    rows = prefix_rows(store, op_dir)
    # A bucket's prefix pass reads objects up to its whole-read size whole: its digest of
    # those is not the head's, so classify's is not taken for them.
    whole = backend_for(root.url).whole_in_prefix
    mid_reused = whole < MID
    read = {p for p, r in rows.items() if not r["cached"]}
    assert read == (set() if mid_reused else {b"mid-1.bin", b"mid-2.bin"})
    for path, row in rows.items():
        assert row["digest"] == blake3.blake3(contents[path][:PREFIX_BYTES]).digest() or (
            not mid_reused and row["digest"] == blake3.blake3(contents[path]).digest()
        )
    # What is still read: the big pair and its same-prefix twin whole, and the mid pair once
    # (in the full pass on a folder, in the prefix pass on a bucket); the tiny pair not again.
    assert counts["bytes_read"] == 3 * BIG + 2 * MID


def test_classify_shards_of_before_the_column_reuse_nothing(
    root: TreeRoot, store: DataStore
) -> None:
    contents = tree(root)
    op_dir, _ = scan_op(store, root.url)
    write_classify(store, op_dir, 0, contents, prefix=False)

    hash_op(store, op_dir, root.url)

    assert duplicate_groups(store, op_dir) == GROUPS
    rows = prefix_rows(store, op_dir)
    assert len(rows) == 8 and not any(r["cached"] for r in rows.values())


def test_shards_with_and_without_the_column_and_heads_not_read(
    root: TreeRoot, store: DataStore
) -> None:
    contents = tree(root)
    op_dir, _ = scan_op(store, root.url)
    first = {p: (c if p == b"a/one.bin" else None) for p, c in contents.items() if b"mid" not in p}
    write_classify(store, op_dir, 0, first, prefix=True)  # one head read, the others not
    write_classify(store, op_dir, 1, {p: contents[p] for p in contents if b"mid" in p}, False)

    hash_op(store, op_dir, root.url)

    assert duplicate_groups(store, op_dir) == GROUPS
    rows = prefix_rows(store, op_dir)
    assert {p for p, r in rows.items() if r["cached"]} == {b"a/one.bin"}
