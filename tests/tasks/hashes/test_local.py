"""Reading content for hashes: right digests, refusals instead of wrong hashes, chunking."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from unittest import mock

import blake3
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks import pool
from tasks.hashes import local as hashing
from tasks.hashes.columns import chunk_ranges, hash_table
from tasks.hashes.local import PREFIX_BYTES, hash_full, hash_prefix

_names = itertools.count()
HashFn = Callable[[bytes, int], hashing.Result]


@pytest.fixture(scope="module")
def content_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("content")


def write(directory: Path, data: bytes) -> bytes:
    path = bytes(directory) + f"/f{next(_names)}".encode()
    with open(path, "wb") as fh:
        fh.write(data)
    return path


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=3 * PREFIX_BYTES) | st.sampled_from([b"", b"\x00" * PREFIX_BYTES]))
def test_digests_are_blake3_of_the_content(content_dir: Path, data: bytes) -> None:
    path = write(content_dir, data)

    assert hash_full(path, len(data)) == (blake3.blake3(data).digest(), None, len(data))
    head = data[:PREFIX_BYTES]
    assert hash_prefix(path, len(data)) == (blake3.blake3(head).digest(), None, len(head))


def test_a_file_larger_than_one_read_block(tmp_path: Path) -> None:
    data = os.urandom(hashing.READ_BLOCK * 2 + 12345)
    path = write(tmp_path, data)

    assert hash_full(path, len(data)) == (blake3.blake3(data).digest(), None, len(data))


@pytest.mark.parametrize("hash_fn", [hash_prefix, hash_full])
@pytest.mark.parametrize("scanned_size", [4, 6, 0])
def test_a_file_whose_size_changed_since_the_scan_is_an_error(
    tmp_path: Path, hash_fn: HashFn, scanned_size: int
) -> None:
    path = write(tmp_path, b"12345")

    assert hash_fn(path, scanned_size) == (None, "changed since scan", 0)


@pytest.mark.parametrize("hash_fn", [hash_prefix, hash_full])
def test_a_symlink_is_refused_not_followed(tmp_path: Path, hash_fn: HashFn) -> None:
    target = write(tmp_path, b"content")
    link = bytes(tmp_path / "link")
    os.symlink(target, link)

    digest, error, read = hash_fn(link, 7)

    assert (digest, read) == (None, 0)
    assert error == os.strerror(40)  # ELOOP: O_NOFOLLOW met a symlink


@pytest.mark.parametrize("hash_fn", [hash_prefix, hash_full])
def test_a_vanished_file_is_an_error(tmp_path: Path, hash_fn: HashFn) -> None:
    assert hash_fn(bytes(tmp_path / "gone"), 1) == (
        None,
        "No such file or directory",
        0,
    )


def test_non_utf8_paths_are_read(tmp_path: Path) -> None:
    path = bytes(tmp_path) + b"/caf\xe9\xff"
    with open(path, "wb") as fh:
        fh.write(b"abc")

    assert hash_full(path, 3)[0] == blake3.blake3(b"abc").digest()


# --- chunking -------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 50), max_size=60),
    by_bytes=st.booleans(),
    chunk_files=st.integers(1, 8),
    chunk_bytes=st.integers(1, 120),
)
def test_chunk_ranges_cover_every_job_within_bounds(
    sizes: list[int], by_bytes: bool, chunk_files: int, chunk_bytes: int
) -> None:
    with (
        mock.patch.object(hashing, "CHUNK_FILES", chunk_files),
        mock.patch.object(hashing, "CHUNK_BYTES", chunk_bytes),
    ):
        ranges = chunk_ranges(pa.array(sizes, pa.int64()), by_bytes)

    assert [i for a, b in ranges for i in range(a, b)] == list(range(len(sizes)))
    for n, (a, b) in enumerate(ranges):
        assert 0 < b - a <= chunk_files
        nbytes = sum(sizes[a:b]) if by_bytes else 0
        # A chunk closes as soon as it is full; only its last file may push it past the bytes.
        assert nbytes - (sizes[b - 1] if by_bytes else 0) < chunk_bytes
        if n < len(ranges) - 1:
            assert b - a == chunk_files or nbytes >= chunk_bytes


def test_chunk_ranges_by_count_ignore_sizes() -> None:
    sizes = pa.array([10**12] * (hashing.CHUNK_FILES + 1), pa.int64())

    assert chunk_ranges(sizes, by_bytes=False) == [
        (0, hashing.CHUNK_FILES),
        (hashing.CHUNK_FILES, hashing.CHUNK_FILES + 1),
    ]
    assert chunk_ranges(sizes, by_bytes=True) == [(i, i + 1) for i in range(len(sizes))]
    assert chunk_ranges(pa.array([], pa.int64()), by_bytes=True) == []
    # A slice of a bigger array: its own values, not the buffer's first ones.
    sliced = pa.array([1, 2, 10**12, 10**12], pa.int64()).slice(2)
    assert chunk_ranges(pa.chunked_array([sliced]), by_bytes=True) == [(0, 1), (1, 2)]


# --- hash_table -----------------------------------------------------------------------------


@pytest.fixture
def shut_pool() -> Iterator[None]:
    yield
    pool.shutdown()


def work_list(root: Path, contents: list[bytes]) -> pa.Table:
    paths = [write(root, c).removeprefix(bytes(root) + b"/") for c in contents]
    return pa.table(
        {"path": pa.array(paths, pa.binary()), "size": [len(c) for c in contents]},
    )


@pytest.mark.parametrize("full", [False, True], ids=["prefix: processes", "full: threads"])
def test_hash_table_returns_columns_in_work_list_order(
    tmp_path: Path, shut_pool: None, full: bool
) -> None:
    contents = [os.urandom(i * 97) for i in range(80)]
    table = work_list(tmp_path, contents)
    sizes = table.column("size").to_pylist()
    sizes[5] += 1  # changed since the scan
    os.remove(tmp_path / os.fsdecode(table.column("path")[9].as_py()))  # gone
    table = table.set_column(1, "size", pa.array(sizes, pa.int64())).slice(1)  # a sliced table
    chunks: list[tuple[int, int]] = []

    with mock.patch.object(hashing, "CHUNK_FILES", 7):
        hashed = hash_table(str(tmp_path), full, table, 2, lambda f, b: chunks.append((f, b)))

    reads = [c if full else c[:PREFIX_BYTES] for c in contents[1:]]
    expected: list[bytes | None] = [blake3.blake3(r).digest() for r in reads]
    expected[4] = expected[8] = None
    assert hashed.digest.to_pylist() == expected
    errors = [None] * len(reads)
    errors[4], errors[8] = "changed since scan", "No such file or directory"
    assert hashed.error.to_pylist() == errors
    assert hashed.errors == 2
    assert hashed.bytes_read == sum(len(r) for i, r in enumerate(reads) if i not in (4, 8))
    assert [files for files, _ in chunks] == [7] * 11 + [2]
    assert sum(nbytes for _, nbytes in chunks) == hashed.bytes_read


def test_a_chunk_refuses_a_symlink_below_the_root(tmp_path: Path) -> None:
    write(tmp_path, b"content")
    os.symlink(tmp_path / "f0", tmp_path / "link")
    table = pa.table({"path": pa.array([b"link"], pa.binary()), "size": [7]})

    hashed = hash_table(str(tmp_path), False, table, 1)

    assert hashed.digest.to_pylist() == [None]
    assert hashed.error.to_pylist() == [os.strerror(40)]


def test_a_handful_of_files_stays_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = work_list(tmp_path, [b"x" * i for i in range(10)])

    def no_pool(workers: int) -> None:
        raise AssertionError("a pool was started for ten files")

    monkeypatch.setattr(pool, "_get", no_pool)
    monkeypatch.setattr(pool, "_threads", no_pool)

    hashed = hash_table(str(tmp_path), False, table, 8)

    assert hashed.digest.to_pylist() == [blake3.blake3(b"x" * i).digest() for i in range(10)]


def test_an_empty_work_list_reads_nothing(tmp_path: Path) -> None:
    table = pa.table({"path": pa.array([], pa.binary()), "size": pa.array([], pa.int64())})

    hashed = hash_table(str(tmp_path), True, table, 8)

    assert (len(hashed.digest), len(hashed.error), hashed.bytes_read) == (0, 0, 0)
