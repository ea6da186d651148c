"""DuckDB over an operation's Parquet shards: every question about an operation is answered here.

By concern: connection.py (the connection, a stage's shards, pages and streams), listings.py
(the plan, reasons, what was left alone, files), duplicates.py (duplicate groups and the
report's figures). Import from here: `from storage import queries` keeps working.
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
)
from storage.queries.duplicates import (
    EMPTY_DIGEST_HEX,
    duplicate_groups,
    duplicate_query,
    duplicate_summary,
    problems,
    totals_by_category_year,
)
from storage.queries.listings import (
    FILE_SORTS,
    PLAN_ACTIONS,
    PLAN_PATHS,
    file_query,
    file_rows,
    left_alone,
    left_alone_query,
    outcome_sample,
    plan_items,
    plan_query,
    plan_rows,
    plan_source,
    reason_counts,
    unit_row,
)

__all__ = [
    "EMPTY_DIGEST_HEX",
    "FILE_SORTS",
    "PLAN_ACTIONS",
    "PLAN_PATHS",
    "STREAM_MEMORY",
    "STREAM_ROWS",
    "Query",
    "connect",
    "duplicate_groups",
    "duplicate_query",
    "duplicate_summary",
    "file_query",
    "file_rows",
    "has_shards",
    "left_alone",
    "left_alone_query",
    "outcome_sample",
    "page",
    "plan_items",
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
]
