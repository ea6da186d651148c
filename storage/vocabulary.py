"""The words a user types, shared by every layer: the plan's policies, plan actions, outcomes,
file categories.

Plain Literal aliases and tuples that import nothing, so that the CLI registers its options
and checks what was typed (and prints its help) before it imports pydantic, DuckDB or pyarrow.
storage.operations, storage.queries and storage.outcomes use these names; storage.outcomes
says what each outcome means.
"""

from __future__ import annotations

from typing import Literal

# The plan's policies, spelled once: the API's request schema and the CLI's option choices are
# these aliases (tests/storage/test_policies.py holds the three to it).
LayoutMode = Literal["category_year", "category", "year_month", "extension"]  # tasks.layout.MODES
DuplicatesPolicy = Literal["report", "quarantine", "hardlink"]
KeepPolicy = Literal["oldest", "newest", "shortest-path"]
ProjectsPolicy = Literal["leave", "move"]
AlbumsPolicy = Literal["tags", "folder", "off"]
UndatedPolicy = Literal["mtime", "folder"]

PLAN_ACTIONS = ("move", "keep", "skip", "quarantine", "hardlink")
APPLY_OUTCOMES = ("applied", "skipped", "conflict", "failed", "unfinished")
ROLLBACK_OUTCOMES = ("restored", "refused", "unfinished")
OUTCOMES = (*APPLY_OUTCOMES, "restored", "refused")
# What a user is shown after an apply or a rollback: the files that did not end as asked.
NOT_DONE_APPLY = ("skipped", "conflict", "failed", "unfinished")
NOT_DONE_ROLLBACK = ("refused", "unfinished")

# The categories classify gives a file (tasks.classify.categories has a rule for each but
# "other"), which `fileorg files --category` and `GET /api/v1/files?category=` filter on.
CATEGORIES = (
    "images",
    "videos",
    "audio",
    "documents",
    "spreadsheets",
    "presentations",
    "archives",
    "code",
    "fonts",
    "ebooks",
    "other",
)
