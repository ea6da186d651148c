"""The files, the plan and the duplicate groups of an operation, a page at a time, by offset or
after a cursor: what the API and the CLI list. Each is read from the operation's listing
manifest once it is built, from its shards before (storage.queries.pager reads either).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from storage.locations import DataStore
from storage.outcomes import plan_outcomes, was_applied
from storage.queries.duplicates import duplicate_query
from storage.queries.listing_manifest import (
    DONE,
    DUPLICATE_ORDER,
    FOLDER,
    PLAN_ORDER,
    file_order,
    info,
    manifest_path,
)
from storage.queries.listings import (
    MANIFEST_COLUMNS,
    FileFilters,
    codes_of,
    file_query,
    plan_query,
)
from storage.queries.pager import PLAN_COLUMNS, Listing, Page, outcome_table, page

_built: dict[str, tuple[tuple[int, ...], dict[str, Any]]] = {}
_built_lock = threading.Lock()


def built(store: DataStore, op_dir: str) -> dict[str, Any] | None:
    """The listing manifest's build (listing_manifest.info), or None before it is built. On a
    local data folder it is kept while its `_SUCCESS` stays the same file (a stat a request);
    elsewhere it is read each time (one small GET)."""
    if not store.is_local:
        return info(store, op_dir)
    done = f"{op_dir}/{FOLDER}/{DONE}"
    try:
        stat = os.stat(done)
    except FileNotFoundError:
        return None
    seen = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    with _built_lock:
        kept = _built.get(done)
    if kept is not None and kept[0] == seen:
        return kept[1]
    found = info(store, op_dir)
    if found is not None:
        with _built_lock:
            _built[done] = (seen, found)
    return found


def _name(listing: str, op_dir: str) -> str:
    return f"{listing}:{op_dir.rsplit('/', 1)[-1]}"


class Paged(Protocol):
    """A page of one listing: `filters` are its listing function's."""

    def __call__(
        self,
        store: DataStore,
        op_dir: str,
        limit: int = 50,
        offset: int = 0,
        cursor: str | None = None,
        **filters: Any,
    ) -> Page: ...


def paged(listing: Callable[..., Listing]) -> Paged:
    """The page function of a listing (files, plan and duplicates alike)."""

    def one_page(
        store: DataStore,
        op_dir: str,
        limit: int = 50,
        offset: int = 0,
        cursor: str | None = None,
        **filters: Any,
    ) -> Page:
        return page(listing(store, op_dir, **filters), limit, offset, cursor)

    return one_page


def files_listing(store: DataStore, op_dir: str, **filters: Any) -> Listing:
    """The files, filtered and sorted; `filters` are FileFilters' fields."""
    wanted = FileFilters(**filters)
    order = file_order(wanted.sort, wanted.descending)  # refuses an unknown sort
    listed = _name("files", op_dir)
    done = built(store, op_dir)
    if done is None or done.get("files") is None:
        live = file_query(store, op_dir, **filters)
        return Listing(store, listed, order, wanted.asked(), live)
    conditions, params = wanted.conditions(MANIFEST_COLUMNS)
    return Listing(
        store,
        listed,
        order,
        wanted.asked(),
        file=manifest_path(store, op_dir, f"files-{wanted.sort}.parquet"),
        position="r_desc" if wanted.descending else "r",
        conditions=conditions,
        params=params,
        build=done["build"],
        rows=done["files"],
    )


def plan_listing(
    store: DataStore,
    op_dir: str,
    action: str | None = None,
    outcome: str | None = None,
    reason_code: str | Sequence[str] | None = None,
) -> Listing:
    """The plan with its outcomes, filtered by action, outcome and reason codes."""
    codes = codes_of(reason_code)
    filters = {"action": action, "outcome": outcome, "reason_code": codes}
    listed = _name("plan", op_dir)
    done = built(store, op_dir)
    if done is None or done.get("plan") is None:
        live = plan_query(store, op_dir, action, outcome, codes)
        return Listing(store, listed, PLAN_ORDER, filters, live, tables=live.tables)
    outcomes, version = outcome_table(store, op_dir)
    applied, why = plan_outcomes("m", was_applied(store, op_dir, outcomes))
    conditions: list[str] = []
    params: dict[str, Any] = {}
    if action:
        conditions.append("m.action = $action")
        params["action"] = action
    if outcome:
        conditions.append(f"({applied} = $outcome OR o.rollback_outcome = $outcome)")
        params["outcome"] = outcome
    if codes:
        conditions.append("list_contains($codes, m.reason_code)")
        params["codes"] = codes
    return Listing(
        store,
        listed,
        PLAN_ORDER,
        filters,
        file=manifest_path(store, op_dir, "plan.parquet"),
        columns=f"{PLAN_COLUMNS}, {applied} AS apply_outcome, o.rollback_outcome,"
        f" {why} AS outcome_reason",
        joins="LEFT JOIN outcomes o ON o.seq = m.seq",
        filters_join=bool(outcome),
        conditions=conditions,
        params=params,
        tables={"outcomes": outcomes},
        build=done["build"],
        rows=done["plan"],
        version=version if outcome else (),  # only the outcome filter depends on the journals
    )


def duplicates_listing(store: DataStore, op_dir: str, include_empty: bool = False) -> Listing:
    """The duplicate groups, largest waste first."""
    listed = _name("duplicates", op_dir)
    filters = {"include_empty": include_empty}
    done = built(store, op_dir)
    if done is None or done.get("include_empty") != include_empty:
        live = duplicate_query(store, op_dir, include_empty)
        return Listing(store, listed, DUPLICATE_ORDER, filters, live)
    return Listing(
        store,
        listed,
        DUPLICATE_ORDER,
        filters,
        file=manifest_path(store, op_dir, "duplicates.parquet"),
        columns="digest, size, copies, wasted_bytes, paths, paths_text",
        build=done["build"],
        rows=done["duplicates"],
    )


files = paged(files_listing)
plan = paged(plan_listing)
duplicates = paged(duplicates_listing)
