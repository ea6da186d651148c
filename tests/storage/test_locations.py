"""DataStore: one contract on local disk and on an fsspec memory filesystem; atomic local writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storage.errors import OperationNotFound, StorageError
from storage.locations import DataStore, canonical_operation_id

OP_ID = "5b0e1c9a-2f43-4c55-9d7e-0b7a3c1e4f10"


# --- the contract, on every backend ---------------------------------------------------------


def test_write_then_read(store: DataStore) -> None:
    path = f"{store.operation_dir(OP_ID)}/scan/part-00000.parquet"

    store.write_bytes(path, b"one")
    store.write_bytes(path, b"two")

    assert store.read_bytes(path) == b"two"
    assert store.exists(path)


def test_a_file_is_written_as_its_bytes_would_be(store: DataStore, tmp_path: Path) -> None:
    path = f"{store.operation_dir(OP_ID)}/listing/files-path.parquet"
    local = tmp_path / "built.parquet"
    local.write_bytes(os.urandom(3 * (1 << 20) + 5))  # several chunks and a partial one
    store.write_bytes(path, b"an older build")

    store.write_file(path, local)

    assert store.read_bytes(path) == local.read_bytes()
    if store.is_local:
        assert sorted(os.listdir(os.path.dirname(path))) == ["files-path.parquet"]


def test_reading_a_missing_file_is_file_not_found(store: DataStore) -> None:
    with pytest.raises(FileNotFoundError):
        store.read_bytes(f"{store.base}/nothing")


def test_glob_is_sorted_and_remove_is_recursive(store: DataStore) -> None:
    op = store.operation_dir(OP_ID)
    for name in ("part-00002.parquet", "part-00000.parquet", "part-00001.parquet", "_SUCCESS"):
        store.write_bytes(f"{op}/hash/{name}", b"x")

    found = store.glob(f"{op}/hash/part-*.parquet")

    assert [p.rsplit("/", 1)[1] for p in found] == [
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
    ]
    store.remove(f"{op}/hash")
    store.remove(f"{op}/hash")  # removing what is gone is not an error
    assert store.glob(f"{op}/hash/*") == []


def test_operation_dirs_live_under_operations(store: DataStore) -> None:
    assert store.operation_dir(OP_ID.upper()) == f"{store.base}/operations/{OP_ID}"
    assert store.operations_dir() == f"{store.base}/operations"


def test_duckdb_paths_name_the_protocol_off_local_disk(store: DataStore) -> None:
    path = f"{store.base}/x.parquet"

    scheme = store.url.partition("://")[0]
    expected_by_backend = {"memory": f"memory://{path}", "s3": f"s3://{path}"}
    expected = path if store.is_local else expected_by_backend[scheme]
    assert store.duckdb_path(path) == expected


# --- operation ids --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given_id",
    [OP_ID, OP_ID.upper(), "{" + OP_ID + "}", "urn:uuid:" + OP_ID, OP_ID.replace("-", "")],
)
def test_operation_ids_are_canonical_uuids(given_id: str) -> None:
    assert canonical_operation_id(given_id) == OP_ID


@pytest.mark.parametrize(
    "bad_id",
    ["", "latest", "../" + OP_ID, OP_ID + "/..", "../../etc", OP_ID[:-1], None, 42],
)
def test_anything_else_is_not_an_operation(bad_id: object, tmp_path: Path) -> None:
    with pytest.raises(OperationNotFound):
        canonical_operation_id(bad_id)  # type: ignore[arg-type]
    with pytest.raises(OperationNotFound):
        DataStore(str(tmp_path)).operation_dir(bad_id)  # type: ignore[arg-type]


# --- local writes are whole or absent -------------------------------------------------------


def test_a_local_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    store = DataStore(str(tmp_path / "data"))
    target = tmp_path / "data" / "deep" / "er" / "file.bin"

    store.write_bytes(str(target), b"payload")

    assert os.listdir(target.parent) == ["file.bin"]
    assert target.read_bytes() == b"payload"


@pytest.mark.parametrize("existing", [None, b"old content"])
def test_a_failed_local_write_leaves_the_target_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existing: bytes | None
) -> None:
    store = DataStore(str(tmp_path))
    target = tmp_path / "shard.parquet"
    if existing is not None:
        target.write_bytes(existing)

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)

    with pytest.raises(StorageError, match="Input/output error") as info:
        store.write_bytes(str(target), b"new content that never lands")

    assert isinstance(info.value.__cause__, OSError)
    expected_names = [] if existing is None else ["shard.parquet"]
    assert os.listdir(tmp_path) == expected_names
    if existing is not None:
        assert target.read_bytes() == existing


def test_a_failed_file_write_leaves_the_target_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DataStore(str(tmp_path / "data"))
    target = tmp_path / "data" / "plan.parquet"
    store.write_bytes(str(target), b"old content")
    local = tmp_path / "built.parquet"
    local.write_bytes(b"new content that never lands")

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)

    with pytest.raises(StorageError, match="Input/output error"):
        store.write_file(str(target), local)

    assert os.listdir(target.parent) == ["plan.parquet"]
    assert target.read_bytes() == b"old content"


def test_a_write_over_a_directory_fails_and_cleans_up(tmp_path: Path) -> None:
    store = DataStore(str(tmp_path))
    (tmp_path / "taken").mkdir()

    with pytest.raises(StorageError):
        store.write_bytes(str(tmp_path / "taken"), b"x")

    assert os.listdir(tmp_path) == ["taken"]
    assert os.listdir(tmp_path / "taken") == []
