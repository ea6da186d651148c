"""DuckDB over an operation's Parquet shards: every question about an operation is answered here.

By concern: connection.py (the connection, a stage's shards, pages and streams), listings.py
(the plan, reasons, what was left alone, files), duplicates.py (duplicate groups and the
report's figures); listing_manifest.py (files, plan and duplicates sorted once when planning
ends), pages.py (their pages, by offset or cursor, from that manifest or the shards), pager.py
(how a page is read), keyset.py (orders and cursors). Import from here: `from storage import
queries` keeps working.
"""

from storage.queries.connection import (
    STREAM_MEMORY,
    STREAM_ROWS,
    Query,
    connect,
    has_shards,
    page,
    source,
    stage_glob,
    stream,
    workspace,
)
from storage.queries.duplicates import (
    EMPTY_DIGEST_HEX,
    duplicate_groups,
    duplicate_query,
    duplicate_summary,
    in_subfolders,
    problems,
    totals_by_category_year,
)
from storage.queries.listing_manifest import build as build_listing
from storage.queries.listing_manifest import info as listing_info
from storage.queries.listings import (
    FILE_SORTS,
    PLAN_ACTIONS,
    PLAN_PATHS,
    file_query,
    file_rows,
    left_alone,
    left_alone_query,
    left_alone_totals,
    outcome_sample,
    plan_items,
    plan_query,
    plan_rows,
    plan_source,
    reason_counts,
    unit_row,
)
from storage.queries.pager import Page
from storage.queries.pages import built as listing_built
from storage.queries.pages import duplicates as duplicates_page
from storage.queries.pages import files as files_page
from storage.queries.pages import plan as plan_page

__all__ = [
    "EMPTY_DIGEST_HEX",
    "FILE_SORTS",
    "PLAN_ACTIONS",
    "PLAN_PATHS",
    "STREAM_MEMORY",
    "STREAM_ROWS",
    "Page",
    "Query",
    "build_listing",
    "connect",
    "duplicate_groups",
    "duplicate_query",
    "duplicate_summary",
    "duplicates_page",
    "file_query",
    "file_rows",
    "files_page",
    "has_shards",
    "in_subfolders",
    "left_alone",
    "left_alone_query",
    "left_alone_totals",
    "listing_built",
    "listing_info",
    "outcome_sample",
    "page",
    "plan_items",
    "plan_page",
    "plan_query",
    "plan_rows",
    "plan_source",
    "problems",
    "reason_counts",
    "source",
    "stage_glob",
    "stream",
    "totals_by_category_year",
    "unit_row",
    "workspace",
]
