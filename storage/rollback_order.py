"""Rollbacks newest first: an operation is not undone while a newer one's moves are on top.

Rolling back an older operation under a newer one that moved the same files again finds
them gone from where it put them: most of its items are refused, a few are restored, and
the tree is left mixed (the tryout: 36 refused, 2 restored; rolling back newest first
afterwards still restored everything exactly). So the CLI (unless --force) and the API
refuse it, naming what to undo first. "Newer" is by the records' last change: an apply ends
by saving its record, and any later apply, rollback attempt or resume of this operation was
itself refused or forced past this check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from storage.operations import changes_since

if TYPE_CHECKING:
    from storage.locations import DataStore
    from storage.operations import OperationRecord


def newer_in_place(store: DataStore, record: OperationRecord) -> OperationRecord | None:
    """The newest other operation under a root overlapping this one's whose moves are still
    (at least partly) in place and came after this one's; None when nothing is on top."""
    on_top = changes_since(store, record, record.updated_at)
    return next((other for other in on_top if other.status != "rolled_back"), None)


def rollback_refusal(store: DataStore, record: OperationRecord, name_it: bool = True) -> str | None:
    """The line refusing to roll back `record` under a newer operation's moves (the CLI adds
    its --force); `name_it` False for the API, where the other may be another user's."""
    newer = newer_in_place(store, record)
    if newer is None:
        return None
    if not name_it:
        return (
            f"another operation moved files under {record.root} after {record.id} was "
            "applied, and is not rolled back: roll that one back first"
        )
    when = newer.updated_at.astimezone().strftime("%Y-%m-%d %H:%M")
    return (
        f"operation {newer.id} ({newer.status}, {when}) moved files under {newer.root} after "
        f"{record.id} was applied: roll it back first (fileorg rollback {newer.id})"
    )
