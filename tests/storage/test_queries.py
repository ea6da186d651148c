"""DuckDB queries over small hand-built shards, on local disk and on an fsspec memory filesystem."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import blake3
import pyarrow as pa
import pytest

from storage import manifests, queries
from storage.locations import DataStore

OP_ID = "3f6c2a1e-8b7d-4e5f-a0b1-c2d3e4f5a6b7"
A, B, C = (blake3.blake3(x).digest() for x in (b"A", b"B", b"C"))

# path, kind, size, dev, ino, content (None: not hashed), error
SCAN_ROWS: list[tuple[bytes, str, int, int, int, bytes | None, str | None]] = [
    (b"a/photo.jpg", "file", 1000, 1, 1, A, None),
    (b"b/photo-link.jpg", "file", 1000, 1, 1, A, None),  # hard link of a/photo.jpg
    (b"c/photo copy.jpg", "file", 1000, 1, 2, A, None),
    (b"d/photo (1).jpg", "file", 1000, 2, 1, A, None),  # same ino, other device: a copy
    (b"video.mov", "file", 5000, 1, 4, B, None),
    (b"backup/video.mov", "file", 5000, 1, 5, B, None),
    (b"notes.txt", "file", 1000, 1, 6, C, None),
    (b"caf\xe9.txt", "file", 1000, 1, 10, C, None),  # not UTF-8
    (b"x.bin", "file", 1000, 1, 11, None, "changed since scan"),
    (b"empty1", "file", 0, 1, 7, None, None),
    (b"empty2", "file", 0, 1, 8, None, None),
    (b"link.jpg", "symlink", 11, 1, 9, None, None),
    (b"locked", "error", 0, 0, 0, None, "Permission denied"),
]
# path -> category, ext, date
CLASSIFY_ROWS: dict[bytes, tuple[str, str, datetime | None]] = {
    b"a/photo.jpg": ("images", "jpg", datetime(2019, 4, 12, 10, 0)),
    b"b/photo-link.jpg": ("images", "jpg", datetime(2019, 4, 12, 10, 0)),
    b"c/photo copy.jpg": ("images", "jpg", datetime(2019, 5, 1, 9, 0)),
    b"d/photo (1).jpg": ("images", "jpg", datetime(2019, 1, 1, 8, 0)),
    b"video.mov": ("videos", "mov", datetime(2021, 7, 4, 12, 0)),
    b"backup/video.mov": ("videos", "mov", datetime(2021, 7, 4, 12, 0)),
    b"notes.txt": ("documents", "txt", None),
    b"caf\xe9.txt": ("documents", "txt", datetime(2018, 2, 3, 4, 5)),
    b"x.bin": ("other", "bin", None),
    b"empty1": ("other", "", None),
    b"empty2": ("other", "", None),
}
FILES = [r[0] for r in SCAN_ROWS if r[1] == "file"]


def text(path: bytes) -> str:
    return path.decode("utf-8", "backslashreplace")


def write_operation(store: DataStore) -> str:
    op = store.operation_dir(OP_ID)
    scan = pa.Table.from_pylist(
        [
            {
                "path": path,
                "path_text": text(path),
                "kind": kind,
                "size": size,
                "mtime_ns": 1_600_000_000_000_000_000,
                "dev": dev,
                "ino": ino,
                "nlink": 2 if path in (b"a/photo.jpg", b"b/photo-link.jpg") else 1,
                "mode": 0o100644,
                "link_target": b"a/photo.jpg" if kind == "symlink" else None,
                "error": error if kind == "error" else None,
                "etag": None,
                "version_id": None,
            }
            for path, kind, size, dev, ino, _, error in SCAN_ROWS
        ],
        schema=manifests.SCAN,
    )
    # One row per inode, as the hash stage writes them, split over two shards.
    hashed: dict[tuple[int, int], dict[str, Any]] = {}
    for _path, kind, size, dev, ino, content, error in SCAN_ROWS:
        if kind == "file" and (content is not None or error is not None):
            hashed[(dev, ino)] = {
                "dev": dev,
                "ino": ino,
                "size": size,
                "digest": content,
                "cached": False,
                "error": error,
            }
    rows = list(hashed.values())
    classify = pa.Table.from_pylist(
        [
            {
                "path": path,
                "category": category,
                "ext": ext,
                "date": date,
                "date_source": "exif" if date else None,
                "year": date.year if date else None,
                "month": date.month if date else None,
                "error": None,
            }
            for path, (category, ext, date) in CLASSIFY_ROWS.items()
        ],
        schema=manifests.CLASSIFY,
    )
    shards = {
        ("scan", 0): scan.slice(0, 5),
        ("scan", 1): scan.slice(5),
        ("hash", 0): pa.Table.from_pylist(rows[:3], schema=manifests.HASH),
        ("hash", 1): pa.Table.from_pylist(rows[3:], schema=manifests.HASH),
        ("prefix", 0): manifests.HASH.empty_table(),
        ("classify", 0): classify,
    }
    for (stage, index), table in shards.items():
        manifests.write_table(store, manifests.shard_path(op, stage, index), table)
    return op


@pytest.fixture
def op(store: DataStore) -> str:
    return write_operation(store)


# --- duplicates -----------------------------------------------------------------------------

EXPECTED_GROUPS = [
    # (digest, size, copies, wasted_bytes, paths): largest waste first
    (B, 5000, 2, 5000, [b"backup/video.mov", b"video.mov"]),
    (
        A,
        1000,
        3,
        2000,
        [b"a/photo.jpg", b"b/photo-link.jpg", b"c/photo copy.jpg", b"d/photo (1).jpg"],
    ),
    (C, 1000, 2, 1000, [b"caf\xe9.txt", b"notes.txt"]),
]


def summary(rows: list[dict[str, Any]]) -> list[tuple[bytes, int, int, int, list[bytes]]]:
    return [
        (bytes.fromhex(r["digest"]), r["size"], r["copies"], r["wasted_bytes"], r["paths"])
        for r in rows
    ]


def test_duplicate_groups_largest_waste_first_hard_links_once(store: DataStore, op: str) -> None:
    rows, total = queries.duplicate_groups(store, op)

    assert summary(rows) == EXPECTED_GROUPS
    assert total == len(EXPECTED_GROUPS)
    assert rows[2]["paths_text"] == ["caf\\xe9.txt", "notes.txt"]


def test_duplicate_groups_pages(store: DataStore, op: str) -> None:
    rows, total = queries.duplicate_groups(store, op, limit=1, offset=1)

    assert summary(rows) == EXPECTED_GROUPS[1:2]
    assert total == len(EXPECTED_GROUPS)


def test_empty_files_are_a_group_only_when_asked(store: DataStore, op: str) -> None:
    rows, total = queries.duplicate_groups(store, op, include_empty=True, limit=None)

    empty = (blake3.blake3(b"").digest(), 0, 2, 0, [b"empty1", b"empty2"])
    assert summary(rows) == [*EXPECTED_GROUPS, empty]
    assert total == len(EXPECTED_GROUPS) + 1


@pytest.mark.parametrize(
    ("include_empty", "expected_summary"),
    [
        (False, {"groups": 3, "files": 7, "wasted_bytes": 8000}),
        (True, {"groups": 4, "files": 9, "wasted_bytes": 8000}),
    ],
)
def test_duplicate_summary(
    store: DataStore, op: str, include_empty: bool, expected_summary: dict[str, int]
) -> None:
    assert queries.duplicate_summary(store, op, include_empty) == expected_summary


# --- file listing ---------------------------------------------------------------------------


def paths_of(result: tuple[list[dict[str, Any]], int]) -> list[bytes]:
    return [r["path"] for r in result[0]]


@pytest.mark.parametrize(
    ("filters", "expected_paths"),
    [
        ({}, sorted(FILES)),
        (
            {"category": "Images"},
            [b"a/photo.jpg", b"b/photo-link.jpg", b"c/photo copy.jpg", b"d/photo (1).jpg"],
        ),
        ({"year": 2021}, [b"backup/video.mov", b"video.mov"]),
        ({"ext": ".MOV"}, [b"backup/video.mov", b"video.mov"]),
        ({"min_size": 1001}, [b"backup/video.mov", b"video.mov"]),
        ({"max_size": 0}, [b"empty1", b"empty2"]),
        (
            {"min_size": 1000, "max_size": 1000, "category": "documents"},
            [b"caf\xe9.txt", b"notes.txt"],
        ),
        ({"name": "PHOTO ("}, [b"d/photo (1).jpg"]),
        ({"name": "caf\\xe9"}, [b"caf\xe9.txt"]),  # searched in the display text
        ({"name": "%"}, []),  # not a LIKE pattern
        ({"category": "fonts"}, []),
    ],
)
def test_file_rows_filters(
    store: DataStore, op: str, filters: dict[str, Any], expected_paths: list[bytes]
) -> None:
    rows, total = queries.file_rows(store, op, limit=None, **filters)

    assert [r["path"] for r in rows] == expected_paths
    assert total == len(expected_paths)


@pytest.mark.parametrize(
    ("sort", "descending", "expected_first"),
    [
        ("size", True, [b"backup/video.mov", b"video.mov", b"a/photo.jpg"]),
        ("size", False, [b"empty1", b"empty2", b"a/photo.jpg"]),
        ("date", False, [b"caf\xe9.txt", b"d/photo (1).jpg", b"a/photo.jpg"]),
        ("date", True, [b"backup/video.mov", b"video.mov", b"c/photo copy.jpg"]),
        ("name", True, [b"x.bin", b"video.mov", b"notes.txt"]),
    ],
)
def test_file_rows_sorting(
    store: DataStore, op: str, sort: str, descending: bool, expected_first: list[bytes]
) -> None:
    rows, _ = queries.file_rows(store, op, sort=sort, descending=descending, limit=3)

    assert [r["path"] for r in rows] == expected_first


def test_undated_files_sort_last_either_way(store: DataStore, op: str) -> None:
    for descending in (False, True):
        rows, _ = queries.file_rows(store, op, sort="date", descending=descending, limit=None)
        dates = [r["date"] for r in rows]
        undated = dates.index(None)
        assert all(d is None for d in dates[undated:])
        assert [r["path"] for r in rows[undated:]] == [b"empty1", b"empty2", b"notes.txt", b"x.bin"]


def test_file_rows_pages_keep_the_total(store: DataStore, op: str) -> None:
    pages = [queries.file_rows(store, op, limit=4, offset=o) for o in (0, 4, 8)]

    assert [p for page in pages for p in paths_of(page)] == sorted(FILES)
    assert {total for _, total in pages} == {len(FILES)}


def test_a_page_past_the_end_still_reports_the_total(store: DataStore, op: str) -> None:
    rows, total = queries.file_rows(store, op, limit=10, offset=100)

    assert rows == []
    assert total == len(FILES)


def test_file_rows_refuse_an_unknown_sort(store: DataStore, op: str) -> None:
    with pytest.raises(ValueError, match="unknown sort"):
        queries.file_rows(store, op, sort="path; DROP TABLE x")


def test_file_rows_carry_classification(store: DataStore, op: str) -> None:
    rows, _ = queries.file_rows(store, op, name="café", limit=None)
    (row,) = [r for r in queries.file_rows(store, op, limit=None)[0] if r["path"] == b"caf\xe9.txt"]

    assert rows == []  # the name is not UTF-8: the search sees "caf\xe9"
    assert (row["category"], row["ext"], row["year"], row["date_source"]) == (
        "documents",
        "txt",
        2018,
        "exif",
    )


# --- plan -----------------------------------------------------------------------------------


def write_plan(store: DataStore, op: str) -> None:
    moves = [
        (b"z.jpg", b"Images/2019/z.jpg", "move", None),
        (b"a.jpg", b"Images/2019/a.jpg", "move", None),
        (b"b.jpg", None, "keep", None),
        (b"c.jpg", b"c.jpg", "hardlink", b"Images/2019/a.jpg"),
        (b"\xff.jpg", b".duplicates/\xff.jpg", "quarantine", None),
    ]
    table = pa.Table.from_pylist(
        [
            {
                "src": src,
                "dst": dst,
                "action": action,
                "reason": action,
                "size": 1,
                "mtime_ns": 0,
                "dev": 1,
                "ino": i,
                "category": "images",
                "year": 2019,
                "digest": None,
                "link_to": link_to,
            }
            for i, (src, dst, action, link_to) in enumerate(moves)
        ],
        schema=manifests.PLAN,
    )
    manifests.write_table(store, manifests.shard_path(op, "plan", 0), table.slice(0, 2))
    manifests.write_table(store, manifests.shard_path(op, "plan", 1), table.slice(2))


@pytest.mark.parametrize(
    ("action", "limit", "offset", "expected_srcs", "expected_total"),
    [
        (None, None, 0, [b"a.jpg", b"b.jpg", b"c.jpg", b"z.jpg", b"\xff.jpg"], 5),
        ("move", None, 0, [b"a.jpg", b"z.jpg"], 2),
        ("hardlink", None, 0, [b"c.jpg"], 1),
        (None, 2, 1, [b"b.jpg", b"c.jpg"], 5),
        ("skip", None, 0, [], 0),
    ],
)
def test_plan_rows(
    store: DataStore,
    op: str,
    action: str | None,
    limit: int | None,
    offset: int,
    expected_srcs: list[bytes],
    expected_total: int,
) -> None:
    write_plan(store, op)

    rows, total = queries.plan_rows(store, op, action=action, limit=limit, offset=offset)

    assert [r["src"] for r in rows] == expected_srcs  # byte order: 0xff sorts last
    assert total == expected_total
    hardlinks = [r for r in rows if r["action"] == "hardlink"]
    assert all(r["link_to"] == b"Images/2019/a.jpg" for r in hardlinks)


# --- report pieces --------------------------------------------------------------------------


def test_totals_by_category_year(store: DataStore, op: str) -> None:
    rows = queries.totals_by_category_year(store, op)

    assert [(r["category"], r["year"], r["files"], r["bytes"]) for r in rows] == [
        ("documents", 2018, 1, 1000),
        ("documents", None, 1, 1000),
        ("images", 2019, 4, 4000),
        ("other", None, 3, 1000),
        ("videos", 2021, 2, 10000),
    ]


def test_problems_lists_scan_and_hash_errors(store: DataStore, op: str) -> None:
    rows = queries.problems(store, op)

    assert rows == [
        {"path": b"locked", "stage": "scan", "error": "Permission denied"},
        {"path": b"x.bin", "stage": "hash", "error": "changed since scan"},
    ]


def test_a_stage_whose_shards_differ_in_columns_reads_as_one(store: DataStore) -> None:
    """An operation resumed across an upgrade holds shards written before a column existed
    beside shards written after: they read as one table, the older rows with NULL there."""
    op_dir = store.operation_dir("5a1e0c9d-2b3f-4c5d-8e7f-a0b1c2d3e4f5")
    old_schema = pa.schema([f for f in manifests.CLASSIFY if f.name != "prefix"])
    old = pa.Table.from_pylist([{"path": b"old.bin", "category": "other"}], schema=old_schema)
    new = pa.Table.from_pylist(
        [{"path": b"new.jpg", "category": "images", "prefix": b"p" * 32}],
        schema=manifests.CLASSIFY,
    )
    manifests.write_table(store, manifests.shard_path(op_dir, "classify", 0), old)
    manifests.write_table(store, manifests.shard_path(op_dir, "classify", 1), new)
    sql = f"SELECT path, category, prefix FROM {queries.source(store, op_dir, 'classify')}"
    with queries.connect(store) as con:
        rows = sorted(con.sql(sql).fetchall())
    assert rows == [(b"new.jpg", "images", b"p" * 32), (b"old.bin", "other", None)]


def test_files_of_duplicate_groups_kept_in_subfolders_are_counted(tmp_path: Path) -> None:
    """--keep-subfolders keeps them out of every duplicates policy: the summary says how many
    (the tryout's `--duplicates hardlink --keep-subfolders` linked nothing and said nothing)."""
    from storage.operations import PlanOptions
    from tests.apply_helpers import Operation

    op = Operation(tmp_path, PlanOptions(duplicates="hardlink", keep_subfolders=True))
    for rel, content in [
        ("top.txt", b"one"), ("a/x.txt", b"one"), ("b/x.txt", b"one"),
        ("a/y.txt", b"two"), ("b/y.txt", b"two"), ("c/z.txt", b"own"), ("c/w.txt", b"abc"),
    ]:  # fmt: skip
        (op.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (op.root / rel).write_bytes(content)
    op.plan()

    assert queries.in_subfolders(op.store, op.op_dir) == 4
    assert {r["action"] for r in op.rows().values()} == {"move", "keep"}  # nothing linked
