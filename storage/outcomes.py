"""What became of each planned file: its apply and rollback outcomes, read from the journals.

Apply journals one item per plan row it carries out (intent, then done, skipped or failed)
under the row's key (storage.journal.item_seq: phase, plan shard, row index); rollback
journals the undo of each done item under the same key. The latest entry of an item decides
its outcome:

    apply:     applied | skipped (changed, vanished, unsafe) | conflict | failed | unfinished
    rollback:  restored | refused | unfinished

A row the plan skips is no item; once apply has run it reads as `skipped` with the plan's
reason (plan_outcomes). `unfinished` is an item announced and never confirmed (the run was
interrupted; running the same command again decides it from the files). An object store's
error is noted beside its item (`error:{seq}`) while the item itself stays unfinished: it
counts as failed.

Journals of a million items are read in about a second: a line's key and phase are matched
at its start (the journal writes them first), and only the few lines with a reason are
parsed whole; a line in any other shape is parsed whole, a torn one is dropped.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pyarrow as pa

from storage.journal import applied_journals, read_lines, rollback_journal
from storage.locations import DataStore
from storage.objects import is_object_url

# The names live where importing them costs nothing (the CLI's help lists them); here too.
from storage.vocabulary import APPLY_OUTCOMES as APPLY_OUTCOMES
from storage.vocabulary import NOT_DONE_APPLY as NOT_DONE_APPLY
from storage.vocabulary import NOT_DONE_ROLLBACK as NOT_DONE_ROLLBACK
from storage.vocabulary import OUTCOMES as OUTCOMES
from storage.vocabulary import ROLLBACK_OUTCOMES as ROLLBACK_OUTCOMES

SCHEMA = pa.schema(
    [
        ("seq", pa.string()),
        ("apply_outcome", pa.string()),
        ("apply_reason", pa.string()),
        ("rollback_outcome", pa.string()),
        ("rollback_reason", pa.string()),
    ]
)
ITEM_PHASES = frozenset({"intent", "copied", "done", "skipped", "failed"})
WITH_REASON = frozenset({"skipped", "failed"})
HEAD = re.compile(rb'\{"seq": "([^"\\]*)", "phase": "([a-z]+)"')


class Read:
    """One journal's items: the latest phase of each, the lines that give a reason, and the
    errors noted beside items. Plain dicts of strings (no tuple per item) keep a million items
    cheap: the garbage collector does not scan strings."""

    def __init__(self, path: str) -> None:
        self.phase: dict[str, str] = {}
        self.reason_line: dict[str, bytes] = {}
        self.errors: dict[str, bytes] = {}
        for line in read_lines(path):
            found = HEAD.match(line)
            if found:
                seq, phase = found.group(1).decode(), found.group(2).decode()
            else:
                try:
                    entry = json.loads(line)
                    seq, phase = str(entry["seq"]), str(entry["phase"])
                except (ValueError, KeyError, TypeError):
                    continue  # torn by a crash, or not an entry
            if phase in ITEM_PHASES:
                self.phase[seq] = phase
                if phase in WITH_REASON:
                    self.reason_line[seq] = line
            elif phase == "error" and seq.startswith("error:"):
                self.errors[seq.removeprefix("error:")] = line

    def outcome(self, seq: str) -> tuple[str, bytes | None, bytes | None]:
        """(phase, the line with its reason, an error noted beside it)"""
        return self.phase[seq], self.reason_line.get(seq), self.errors.get(seq)


def _reason(line: bytes | None) -> str:
    if line is None:
        return ""
    try:
        return str(json.loads(line).get("reason") or "")
    except ValueError:
        return ""


def _apply_outcome(phase: str, line: bytes | None, error: bytes | None) -> tuple[str, str | None]:
    if phase == "done":
        return "applied", None
    if phase == "skipped":
        reason = _reason(line)
        return ("conflict" if reason.startswith("conflict") else "skipped"), reason
    if phase == "failed":
        return "failed", _reason(line)
    if error is not None:
        return "failed", _reason(error)
    return "unfinished", "interrupted: run the same command again to finish it"


def _rollback_outcome(phase: str, line: bytes | None, error: bytes | None) -> tuple[str, str]:
    if phase == "done":
        return "restored", ""
    if phase in ("skipped", "failed") or error is not None:
        reason = _reason(line if phase in ("skipped", "failed") else error)
        # The undo moves a file from where apply put it back to where it was: said that way.
        if reason.startswith("conflict"):
            reason = "its original path is taken"
        return "refused", reason.replace("since scan", "since apply")
    return "unfinished", "interrupted: run fileorg rollback again to finish it"


def outcome_columns(store: DataStore, op_dir: str) -> dict[str, list[Any]]:
    """One row per item apply took up (SCHEMA's columns): its key and both outcomes."""
    columns: dict[str, list[Any]] = {name: [] for name in SCHEMA.names}
    if not (store.is_local or is_object_url(store.url)):
        return columns  # a data folder apply cannot journal in (storage.journal) has none
    for journal in applied_journals(store, op_dir):
        done = Read(journal)
        if not done.phase:
            continue
        undone = Read(rollback_journal(store, op_dir, journal))
        for seq in done.phase:
            outcome, reason = _apply_outcome(*done.outcome(seq))
            back_outcome, back_reason = (
                _rollback_outcome(*undone.outcome(seq)) if seq in undone.phase else (None, None)
            )
            columns["seq"].append(seq)
            columns["apply_outcome"].append(outcome)
            columns["apply_reason"].append(reason)
            columns["rollback_outcome"].append(back_outcome)
            columns["rollback_reason"].append(back_reason or None)
    return columns


def was_applied(store: DataStore, op_dir: str, table: pa.Table) -> bool:
    """Whether apply has run (`table`: outcome_table's), even one with nothing to carry out."""
    if table.num_rows > 0:
        return True
    journaled = store.is_local or is_object_url(store.url)  # as outcome_columns
    return journaled and bool(applied_journals(store, op_dir))


def plan_outcomes(row: str, applied: bool) -> tuple[str, str]:
    """SQL for a plan row's apply outcome and its reason, from its plan row (alias `row`) and
    its outcomes (alias `o`). Apply never takes up a row the plan skips (left alone, a
    duplicate in place, a conflict): once applied, that row is `skipped` for the plan's reason,
    so `--outcome skipped` lists every file the summary's "skipped" counts."""
    if not applied:
        return "o.apply_outcome", "coalesce(o.rollback_reason, o.apply_reason)"
    skipped = f"{row}.action = 'skip' AND o.apply_outcome IS NULL"
    return (
        f"(CASE WHEN {skipped} THEN 'skipped' ELSE o.apply_outcome END)",
        f"(CASE WHEN {skipped} THEN {row}.reason"
        " ELSE coalesce(o.rollback_reason, o.apply_reason) END)",
    )


def outcome_table(store: DataStore, op_dir: str) -> pa.Table:
    """outcome_columns as an Arrow table, to join with the plan in DuckDB on `seq`."""
    return pa.Table.from_pydict(outcome_columns(store, op_dir), schema=SCHEMA)
