"""Pages of the files, the plan and the duplicates: from the listing manifest as from the shards
(the same rows, in the same order, for every sort and filter), by offset and by cursor, on
every data folder; cursors that stay put while rows appear; cursors that are refused."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from storage import manifests, queries
from storage.errors import BadCursor
from storage.journal import Journal, journal_dir
from storage.locations import DataStore
from tests.storage.test_queries import FILES, write_operation, write_plan

SORTS = [(sort, descending) for sort in ("path", "size", "date", "name") for descending in (0, 1)]
FILTERS: list[dict[str, Any]] = [
    {},
    {"category": "images"},
    {"name": "PHOTO"},
    {"min_size": 1, "max_size": 1000},
    {"year": 2021},
    {"ext": "txt", "name": "t"},
    {"category": "fonts"},
]


def walk_files(store: DataStore, op: str, by: str, limit: int = 3, **asked: Any) -> list[bytes]:
    """Every file of the listing, `limit` at a time: by offset, or following next_cursor."""
    seen: list[bytes] = []
    cursor = None
    while True:
        offset = len(seen) if by == "offset" else 0
        got = queries.files_page(store, op, limit, offset, cursor, **asked)
        seen += [r["path"] for r in got.rows]
        cursor = got.next_cursor if by == "cursor" else None
        if (by == "offset" and len(got.rows) < limit) or (by == "cursor" and cursor is None):
            return seen


@pytest.fixture
def local(tmp_path: Path) -> DataStore:
    return DataStore(str(tmp_path / "data"))


def test_the_manifest_lists_what_the_shards_list_for_every_sort_and_filter(
    local: DataStore,
) -> None:
    op = write_operation(local)
    expected: dict[tuple[Any, ...], list[bytes]] = {}
    for sort, descending in SORTS:
        for filters in FILTERS:
            asked = {**filters, "sort": sort, "descending": bool(descending)}
            rows, _ = queries.file_rows(local, op, limit=None, **asked)
            key = (sort, descending, tuple(sorted(filters.items())))
            expected[key] = [r["path"] for r in rows]
            assert walk_files(local, op, "cursor", **asked) == expected[key], key
            assert walk_files(local, op, "offset", **asked) == expected[key], key

    queries.build_listing(local, op, include_empty=False)

    for (sort, descending, filters), expected_paths in expected.items():
        asked = {**dict(filters), "sort": sort, "descending": bool(descending)}
        assert queries.listing_built(local, op) is not None
        assert walk_files(local, op, "cursor", **asked) == expected_paths
        assert walk_files(local, op, "offset", 4, **asked) == expected_paths
        assert queries.files_page(local, op, 2, **asked).count == len(expected_paths)


def test_every_listing_reads_the_manifest_on_every_data_folder(store: DataStore) -> None:
    op = write_operation(store)
    write_plan(store, op)
    before_files = walk_files(store, op, "cursor", sort="size", descending=True)
    before_plan = queries.plan_page(store, op, 50).rows
    before_groups = queries.duplicates_page(store, op, 50).rows

    built = queries.build_listing(store, op, include_empty=False)

    assert (built["files"], built["plan"], built["duplicates"]) == (len(FILES), 5, 3)
    assert walk_files(store, op, "cursor", sort="size", descending=True) == before_files
    assert queries.plan_page(store, op, 50).rows == before_plan
    assert queries.duplicates_page(store, op, 50).rows == before_groups
    two = queries.plan_page(store, op, 2, action="move")
    assert ([r["src"] for r in two.rows], two.count, two.next_cursor) == (
        [b"a.jpg", b"z.jpg"],
        2,
        None,
    )
    first = queries.duplicates_page(store, op, 2)
    second = queries.duplicates_page(store, op, 2, cursor=first.next_cursor)
    assert [r["digest"] for r in first.rows + second.rows] == [r["digest"] for r in before_groups]
    assert (len(second.rows), second.count, second.next_cursor) == (1, 3, None)


def _more_files(store: DataStore, op: str, shard: int, sized: dict[bytes, int]) -> None:
    """A scan shard and its classify shard appearing, as a running scan writes them."""
    rows = [
        {"path": p, "path_text": p.decode(), "kind": "file", "size": n, "dev": 9, "ino": i}
        for i, (p, n) in enumerate(sized.items())
    ]
    classify = [{"path": p, "category": "other", "ext": "bin"} for p in sized]
    for stage, schema, table in (
        ("scan", manifests.SCAN, rows),
        ("classify", manifests.CLASSIFY, classify),
    ):
        filled = [{name: row.get(name) for name in schema.names} for row in table]
        shard_path = manifests.shard_path(op, stage, shard)
        manifests.write_table(store, shard_path, pa.Table.from_pylist(filled, schema=schema))


def test_cursor_pages_are_stable_while_a_running_scan_adds_shards(local: DataStore) -> None:
    op = write_operation(local)
    first = queries.files_page(local, op, 4, sort="size")
    offset_first = [r["path"] for r in first.rows]
    # Files that sort before the first page's last row, and after it.
    _more_files(local, op, 7, {b"aa-new-small": 0, b"zz-new-big": 10**9})

    seen = [r["path"] for r in first.rows]
    cursor = first.next_cursor
    while cursor is not None:
        got = queries.files_page(local, op, 4, cursor=cursor, sort="size")
        seen += [r["path"] for r in got.rows]
        cursor = got.next_cursor

    assert len(seen) == len(set(seen))  # no row twice
    assert set(FILES) <= set(seen)  # none skipped
    assert b"zz-new-big" in seen and b"aa-new-small" not in seen  # it came before the cursor
    # By offset the same second page repeats a row of the first: what the cursor avoids.
    by_offset = queries.files_page(local, op, 4, 4, sort="size")
    assert set(offset_first) & {r["path"] for r in by_offset.rows}


def test_a_cursor_made_on_the_shards_continues_on_the_manifest(local: DataStore) -> None:
    op = write_operation(local)
    asked = {"sort": "date", "descending": True}
    expected = walk_files(local, op, "offset", **asked)
    first = queries.files_page(local, op, 5, **asked)

    queries.build_listing(local, op, include_empty=False)
    rest = walk_files_from(local, op, first.next_cursor, **asked)

    assert [r["path"] for r in first.rows] + rest == expected


def walk_files_from(store: DataStore, op: str, cursor: str | None, **asked: Any) -> list[bytes]:
    seen: list[bytes] = []
    while cursor is not None:
        got = queries.files_page(store, op, 2, cursor=cursor, **asked)
        seen += [r["path"] for r in got.rows]
        cursor = got.next_cursor
    return seen


def _applied(store: DataStore, op: str, seqs: list[str], name: str) -> None:
    with Journal(f"{journal_dir(store, op)}/apply/{name}") as journal:
        for seq in seqs:
            journal.add({"seq": seq, "phase": "intent", "action": "move", "src": "", "dst": ""})
            journal.add({"seq": seq, "phase": "done"})


@pytest.mark.parametrize("built", [False, True], ids=["shards", "manifest"])
def test_plan_cursor_pages_are_stable_while_apply_journals_outcomes(
    local: DataStore, built: bool
) -> None:
    op = write_operation(local)
    write_plan(local, op)  # z.jpg move-0-0, a.jpg move-0-1, b.jpg move-1-0, \xff.jpg move-1-2
    if built:
        queries.build_listing(local, op, include_empty=False)
    _applied(local, op, ["move-1-0", "move-0-0"], "move-00000.jsonl")  # b.jpg, z.jpg
    first = queries.plan_page(local, op, 1, outcome="applied")
    assert [r["src"] for r in first.rows] == [b"b.jpg"]

    _applied(local, op, ["move-0-1", "move-1-2"], "move-00001.jsonl")  # a.jpg, \xff.jpg
    second = queries.plan_page(local, op, 1, cursor=first.next_cursor, outcome="applied")
    third = queries.plan_page(local, op, 5, cursor=second.next_cursor, outcome="applied")

    assert [r["src"] for r in second.rows + third.rows] == [b"z.jpg", b"\xff.jpg"]
    assert (third.count, third.next_cursor) == (4, None)
    assert all(r["apply_outcome"] == "applied" for r in second.rows + third.rows)
    # By offset, the second page is the first again: a.jpg, applied since, sorts before it.
    assert [r["src"] for r in queries.plan_page(local, op, 1, 1, outcome="applied").rows] == [
        b"b.jpg"
    ]


def _tampered(cursor: str) -> str:
    raw = bytearray(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    raw[5] ^= 1
    return base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")


@pytest.mark.parametrize("built", [False, True], ids=["shards", "manifest"])
def test_a_cursor_is_refused_when_edited_or_sent_with_other_filters(
    local: DataStore, built: bool
) -> None:
    op = write_operation(local)
    if built:
        queries.build_listing(local, op, include_empty=False)
    cursor = queries.files_page(local, op, 2, sort="size").next_cursor
    assert cursor is not None
    refused = {
        "not base64": ("!!!", {"sort": "size"}),
        "edited": (_tampered(cursor), {"sort": "size"}),
        "truncated": (cursor[:6], {"sort": "size"}),
        "another sort": (cursor, {"sort": "date"}),
        "another direction": (cursor, {"sort": "size", "descending": True}),
        "other filters": (cursor, {"sort": "size", "category": "images"}),
    }
    for why, (token, asked) in refused.items():
        with pytest.raises(BadCursor, match="cursor"):
            queries.files_page(local, op, 2, cursor=token, **asked)
            pytest.fail(why)
    with pytest.raises(BadCursor, match="not both"):
        queries.files_page(local, op, 2, 2, cursor, sort="size")
    assert queries.files_page(local, op, 2, cursor=cursor, sort="size").rows


def test_a_cursor_of_another_operation_is_refused(local: DataStore) -> None:
    op = write_operation(local)
    other = local.operation_dir("0b6c2a1e-8b7d-4e5f-a0b1-c2d3e4f5a6b7")
    for stage in ("scan", "classify"):
        for path in manifests.shard_paths(local, op, stage):
            table = manifests.read_table(local, path)
            manifests.write_table(local, path.replace(op, other), table)
    cursor = queries.files_page(local, op, 2).next_cursor

    with pytest.raises(BadCursor):
        queries.files_page(local, other, 2, cursor=cursor)


def test_building_twice_keeps_the_first_build(local: DataStore) -> None:
    op = write_operation(local)
    first = queries.build_listing(local, op, include_empty=False)

    assert queries.build_listing(local, op, include_empty=False) == first
    assert queries.listing_info(local, op) == first


def test_positions_read_out_of_order_are_sorted_again() -> None:
    from storage.queries.pager import _ascending

    assert _ascending(pa.array([0, 2, 7], pa.int32())) and _ascending(pa.array([], pa.int32()))
    assert not _ascending(pa.array([0, 7, 2], pa.int32()))


@pytest.mark.parametrize("tiebreak", [True, False])
def test_positions_are_the_windows_positions_with_ties_and_nulls(tiebreak: bool) -> None:
    """`r` and `r_desc` as row_number() windows over each order would number the rows (nulls
    last both ways, ties by path both ways), the rows written in `r` order."""
    import duckdb

    from storage.queries.keyset import Order
    from storage.queries.listing_manifest import _positioned

    con = duckdb.connect()
    con.execute("""
        CREATE TABLE t AS SELECT ('p' || lpad(i::VARCHAR, 4, '0'))::BLOB AS path,
               CASE WHEN i % 7 = 0 THEN NULL ELSE (i * 37) % 11 END AS k
        FROM range(500) r(i) ORDER BY hash(i)
    """)
    asc, desc = (
        (Order("k", "int", d, tiebreak="path") for d in (False, True))
        if tiebreak
        else (Order("path", "bytes", d) for d in (False, True))
    )
    got = con.execute(_positioned(con, "t", asc, desc)).fetchall()
    expected = con.execute(f"""
        SELECT *, (row_number() OVER (ORDER BY {asc.sql()}) - 1)::INTEGER AS r,
               (row_number() OVER (ORDER BY {desc.sql()}) - 1)::INTEGER AS r_desc
        FROM t ORDER BY r
    """).fetchall()
    assert got == expected
    assert [row[2] for row in got] == list(range(500))


@pytest.mark.parametrize("utf8", [True, False])
def test_the_name_order_is_the_path_order_when_every_path_is_its_text(
    local: DataStore, monkeypatch: pytest.MonkeyPatch, utf8: bool
) -> None:
    """Valid UTF-8 paths (names with accents among them): their texts sort as their bytes, so
    files-name.parquet is files-path.parquet, written once; a name that is not UTF-8 (shown
    with \\xHH) sorts by its text, in a file of its own. Either way the manifest's pages are
    the shards'."""
    from tests.storage import test_queries

    rows = [r for r in test_queries.SCAN_ROWS if r[0] != b"caf\xe9.txt"]
    extra = b"caf\xc3\xa9.txt" if utf8 else b"z\xff.txt"
    rows.append((extra, "file", 1000, 1, 12, None, None))
    classify = {**test_queries.CLASSIFY_ROWS, extra: ("documents", "txt", None)}
    monkeypatch.setattr(test_queries, "SCAN_ROWS", rows)
    monkeypatch.setattr(test_queries, "CLASSIFY_ROWS", classify)
    op = write_operation(local)
    expected = {
        d: [r["path"] for r in queries.file_rows(local, op, None, sort="name", descending=d)[0]]
        for d in (False, True)
    }

    queries.build_listing(local, op, include_empty=False)

    for descending, paths in expected.items():
        assert walk_files(local, op, "cursor", sort="name", descending=descending) == paths
    listing = Path(op) / "listing"
    by_name, by_path = ((listing / f"files-{s}.parquet").read_bytes() for s in ("name", "path"))
    assert (by_name == by_path) is utf8  # one file written twice, or two files
