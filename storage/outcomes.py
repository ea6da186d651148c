"""What became of each planned file: its apply and rollback outcomes, read from the journals.

Apply journals one item per plan row it carries out (intent, then done, skipped or failed),
rollback journals the undo of each done item under the same `seq`. The latest entry of an
item decides its outcome:

    apply:     applied | skipped (changed, vanished, unsafe) | conflict | failed | unfinished
    rollback:  restored | refused | unfinished

`unfinished` is an item announced and never confirmed (the run was interrupted; running the
same command again decides it from the files). An object store's error is noted beside its
item (`error:{seq}`) while the item itself stays unfinished: it counts as failed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from storage.journal import (
    Entry,
    applied_journals,
    decode_path,
    read_journal,
    rollback_journal,
)
from storage.locations import DataStore
from storage.objects import is_object_url

APPLY_OUTCOMES = ("applied", "skipped", "conflict", "failed", "unfinished")
ROLLBACK_OUTCOMES = ("restored", "refused", "unfinished")
OUTCOMES = (*APPLY_OUTCOMES, "restored", "refused")
# What a user is shown after an apply or a rollback: the files that did not end as asked.
NOT_DONE_APPLY = ("skipped", "conflict", "failed", "unfinished")
NOT_DONE_ROLLBACK = ("refused", "unfinished")

SCHEMA = pa.schema(
    [
        ("src", pa.binary()),
        ("apply_outcome", pa.string()),
        ("apply_reason", pa.string()),
        ("rollback_outcome", pa.string()),
        ("rollback_reason", pa.string()),
    ]
)
OUTCOME_PHASES = ("done", "skipped", "failed")
UNFINISHED = ("intent", "copied")


def _latest(entries: Iterable[Entry]) -> tuple[dict[str, Entry], dict[str, Entry], dict[str, str]]:
    """Per item seq: its intent, its latest entry, and an error noted beside it."""
    intents: dict[str, Entry] = {}
    latest: dict[str, Entry] = {}
    errors: dict[str, str] = {}
    for entry in entries:
        seq, phase = str(entry.get("seq", "")), entry.get("phase")
        if phase == "intent":
            intents.setdefault(seq, entry)
            latest[seq] = entry
        elif phase in OUTCOME_PHASES or phase in UNFINISHED:
            latest[seq] = entry
        elif phase == "error" and seq.startswith("error:"):
            errors[seq.removeprefix("error:")] = str(entry.get("reason", ""))
    return intents, latest, errors


def _apply_outcome(entry: Entry, error: str | None) -> tuple[str, str | None]:
    phase = entry["phase"]
    reason = entry.get("reason")
    if phase == "done":
        return "applied", None
    if phase == "skipped":
        kind = "conflict" if str(reason).startswith("conflict") else "skipped"
        return kind, reason
    if phase == "failed" or error is not None:
        return "failed", reason if phase == "failed" else error
    return "unfinished", "interrupted: run the same command again to finish it"


def _rollback_outcome(entry: Entry, error: str | None) -> tuple[str, str | None]:
    phase = entry["phase"]
    reason = str(entry.get("reason", ""))
    if phase == "done":
        return "restored", None
    if phase in ("skipped", "failed") or error is not None:
        # The undo moves a file from where apply put it back to where it was: said that way.
        if reason.startswith("conflict"):
            reason = "its original path is taken"
        reason = reason.replace("since scan", "since apply") or (error or "")
        return "refused", reason
    return "unfinished", "interrupted: run fileorg rollback again to finish it"


def outcome_rows(store: DataStore, op_dir: str) -> list[dict[str, Any]]:
    """One row per planned file that apply took up: its source path and both outcomes."""
    rows: list[dict[str, Any]] = []
    if not (store.is_local or is_object_url(store.url)):
        return rows  # a data folder apply cannot journal in (storage.journal) has no outcomes
    for journal in applied_journals(store, op_dir):
        intents, latest, errors = _latest(read_journal(journal))
        if not intents:
            continue
        _, undone, undo_errors = _latest(read_journal(rollback_journal(store, op_dir, journal)))
        for seq, intent in intents.items():
            src = decode_path(intent.get("src"))
            if src is None or intent.get("action") not in ("move", "quarantine", "hardlink"):
                continue
            apply_outcome, apply_reason = _apply_outcome(latest[seq], errors.get(seq))
            row = {"src": src, "apply_outcome": apply_outcome, "apply_reason": apply_reason}
            back = undone.get(seq)
            if back is not None:
                row["rollback_outcome"], row["rollback_reason"] = _rollback_outcome(
                    back, undo_errors.get(seq)
                )
            rows.append(row)
    return rows


def outcome_table(store: DataStore, op_dir: str) -> pa.Table:
    """outcome_rows as an Arrow table (SCHEMA), to join with the plan in DuckDB."""
    return pa.Table.from_pylist(outcome_rows(store, op_dir), schema=SCHEMA)
