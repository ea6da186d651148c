"""A page of a Listing (storage.queries.pages builds them): from the listing manifest's file
when there is one (storage.queries.listing_manifest), from the stages' shards otherwise; by
offset or after a cursor (storage.queries.keyset), on the process's shared connection.

On the manifest, a page without filters is the rows whose position lies in a range; with
filters, the positions of every matching row are found once (one pass over the filter columns)
and kept (`positions`, bounded), so the next pages and the count cost a lookup. The plan's
outcomes come from the journals (storage.outcomes), read again only when a journal changed.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from storage import outcomes
from storage.errors import BadCursor
from storage.journal import journal_dir
from storage.locations import DataStore
from storage.queries.connection import Query, shared
from storage.queries.keyset import Cursor, Order, binding, decode, encode

POSITIONS_BYTES = 64 * 2**20  # the positions kept for filtered listings, at most
FILE_COLUMNS = "path, path_text, size, mtime_ns, category, ext, date, date_source, year"
PLAN_COLUMNS = (
    "m.src, m.dst, m.action, m.reason, m.reason_code, m.size, m.category, m.year, m.link_to,"
    " m.kind, m.unit, m.twin, m.date_source"
)  # then the outcomes (storage.outcomes.plan_outcomes)


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    count: int  # rows of the whole listing with these filters, whatever the page
    next_cursor: str | None  # the page after this one; None on the last page


@dataclass(frozen=True)
class Listing:
    """One listing as both paths read it: the manifest's file and the live query."""

    store: DataStore
    name: str  # what a cursor is bound to: listing and operation
    order: Order
    filters: dict[str, Any]  # as asked: part of the cursor's binding and of the positions' key
    live: Query | None = None  # the shards' query (its ORDER BY unused: `order` decides)
    file: str | None = None  # the manifest's file; None: read the live query
    position: str = "r"
    columns: str = FILE_COLUMNS
    joins: str = ""  # what the page's columns need
    filters_join: bool = False  # whether the filters need `joins` too (a join costs its order)
    conditions: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pa.Table] = field(default_factory=dict)
    build: str = ""
    rows: int = 0
    version: tuple[Any, ...] = ()  # what else the positions depend on (the journals)

    def bound(self) -> bytes:
        return binding(self.name, self.order, self.filters)


def page(listing: Listing, limit: int, offset: int = 0, cursor: str | None = None) -> Page:
    """One page, after `cursor` (a page's next_cursor) or `offset` rows in."""
    if cursor is not None and offset:
        raise BadCursor("give a cursor or an offset, not both")
    after = decode(cursor, listing.bound(), listing.order) if cursor else None
    con = shared(listing.store)
    for name, table in listing.tables.items():
        con.register(name, table)
    try:
        if listing.file is None:
            assert listing.live is not None, "a listing reads its manifest or its shards"
            return _live(con, listing.live, listing, limit, offset, after)
        return _manifest(con, listing, limit, offset, after)
    finally:
        for name in listing.tables:
            con.unregister(name)


def _next(listing: Listing, rows: list[dict[str, Any]], more: bool, manifest: bool) -> str | None:
    if not (more and rows):
        return None
    last = rows[-1]
    made = Cursor(listing.order.values(last), listing.build if manifest else None)
    if manifest:
        made = Cursor(made.values, made.build, int(last["position"]))
    return encode(made, listing.bound())


def _live(
    con: Any, live: Query, listing: Listing, limit: int, offset: int, after: Cursor | None
) -> Page:
    """The shards' query, keyset or offset; a row more than the page tells whether more follow."""
    params = dict(live.params)
    where = ""
    if after is not None:
        sql, more_params = listing.order.after(after.values)
        where, offset = f"WHERE {sql}", 0
        params.update(more_params)
    ordered = (
        f"SELECT * FROM ({live.sql}) {where} ORDER BY {listing.order.sql()}"
        f" LIMIT {int(limit) + 1} OFFSET {int(offset)}"
    )
    rows: list[dict[str, Any]] = con.sql(ordered, params=params).to_arrow_table().to_pylist()
    counted = con.execute(f"SELECT count(*) FROM ({live.sql})", live.params).fetchall()
    total = int(counted[0][0])
    shown = rows[:limit]
    return Page(shown, total, _next(listing, shown, len(rows) > limit, False))


def _manifest(con: Any, listing: Listing, limit: int, offset: int, after: Cursor | None) -> Page:
    start = offset if after is None else _start(con, listing, after)
    if listing.conditions:
        found = _positions(con, listing)
        count = len(found)
        first = offset if after is None else bisect.bisect_left(found, start, key=_int)
        wanted = found.slice(first, limit).to_pylist()
        where = f"{listing.position} IN ({', '.join(str(int(p)) for p in wanted)})"
        if wanted:  # the range lets DuckDB skip every other row group
            where += f" AND {listing.position} BETWEEN {int(wanted[0])} AND {int(wanted[-1])}"
        more = first + limit < count
    else:
        count, wanted = listing.rows, [start]
        where = f"{listing.position} >= {int(start)} AND {listing.position} < {int(start + limit)}"
        more = start + limit < count
    rows: list[dict[str, Any]] = []
    if wanted:
        sql = (
            f"SELECT {listing.columns}, {listing.position} AS position FROM {_from(listing)}"
            f" WHERE {where} ORDER BY {listing.position}"
        )
        rows = con.sql(sql).to_arrow_table().to_pylist()
    cursor = _next(listing, rows, more, True)
    return Page([_without_position(r) for r in rows], count, cursor)


def _int(scalar: pa.Scalar) -> int:
    return int(scalar.as_py())


def _without_position(row: dict[str, Any]) -> dict[str, Any]:
    row.pop("position", None)
    return row


def _from(listing: Listing, joined: bool = True) -> str:
    quoted = str(listing.file).replace("'", "''")
    return f"read_parquet('{quoted}') m {listing.joins if joined else ''}"


def _start(con: Any, listing: Listing, after: Cursor) -> int:
    """The position of the first row after the cursor's: taken from the cursor on the build it
    was made on, found by its values on another (or when it was made on the shards)."""
    if after.build == listing.build and after.position is not None:
        return after.position + 1
    sql, params = listing.order.after(after.values)
    ((found,),) = con.execute(
        f"SELECT min({listing.position}) FROM {_from(listing, False)} WHERE {sql}", params
    ).fetchall()
    return listing.rows if found is None else int(found)


# --- positions of the rows a filter keeps, per listing and filters ---------------------------

_positions_kept: OrderedDict[tuple[Any, ...], pa.Array] = OrderedDict()
_positions_lock = threading.Lock()


def _positions(con: Any, listing: Listing) -> pa.Array:
    key = (listing.file, listing.build, listing.position, listing.bound(), listing.version)
    with _positions_lock:
        if key in _positions_kept:
            _positions_kept.move_to_end(key)
            return _positions_kept[key]
    sql = (
        f"SELECT {listing.position} AS p FROM {_from(listing, listing.filters_join)}"
        f" WHERE {' AND '.join(listing.conditions)}"
    )
    # The file is in `r` order and DuckDB reads it in its order: checked, that is half the
    # cost of sorting again; `r_desc` is not in file order, so it is sorted.
    found = _column(con, sql, listing.params) if listing.position == "r" else None
    if found is None or not _ascending(found):
        found = _column(con, f"{sql} ORDER BY p", listing.params)
    with _positions_lock:
        _positions_kept[key] = found
        while sum(a.nbytes for a in _positions_kept.values()) > POSITIONS_BYTES:
            _positions_kept.popitem(last=False)
    return found


def _column(con: Any, sql: str, params: dict[str, Any]) -> pa.Array:
    return con.sql(sql, params=params).to_arrow_table().column("p").combine_chunks()


def _ascending(found: pa.Array) -> bool:
    """Whether the positions came in ascending order."""
    if len(found) < 2:
        return True
    return bool(pc.all(pc.less(found.slice(0, len(found) - 1), found.slice(1))).as_py())


# --- the plan's outcomes, read again only when a journal changed ------------------------------

_outcomes_kept: dict[str, tuple[tuple[Any, ...], pa.Table]] = {}


def outcome_table(store: DataStore, op_dir: str) -> tuple[pa.Table, tuple[Any, ...]]:
    """The outcomes (storage.outcomes) and the journals' sizes and times they were read at.
    Kept only for a local data folder, where looking at the journals costs a few stats."""
    if not store.is_local:
        return outcomes.outcome_table(store, op_dir), ()
    version = _journals_version(journal_dir(store, op_dir))
    kept = _outcomes_kept.get(op_dir)
    if kept is not None and kept[0] == version:
        return kept[1], version
    table = outcomes.outcome_table(store, op_dir)
    _outcomes_kept[op_dir] = (version, table)
    return table, version


def _journals_version(directory: str) -> tuple[Any, ...]:
    found = []
    for folder, _, names in os.walk(directory):
        for name in names:
            stat = os.stat(os.path.join(folder, name))
            found.append((folder, name, stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(found))
