"""The words a user types to filter a plan, shared by every layer: plan actions and outcomes.

A module of plain tuples that imports nothing, so that the CLI checks what was typed (and
prints its help) before it imports DuckDB or pyarrow. storage.queries and storage.outcomes use
these names; storage.outcomes says what each outcome means.
"""

from __future__ import annotations

PLAN_ACTIONS = ("move", "keep", "skip", "quarantine", "hardlink")
APPLY_OUTCOMES = ("applied", "skipped", "conflict", "failed", "unfinished")
ROLLBACK_OUTCOMES = ("restored", "refused", "unfinished")
OUTCOMES = (*APPLY_OUTCOMES, "restored", "refused")
# What a user is shown after an apply or a rollback: the files that did not end as asked.
NOT_DONE_APPLY = ("skipped", "conflict", "failed", "unfinished")
NOT_DONE_ROLLBACK = ("refused", "unfinished")
