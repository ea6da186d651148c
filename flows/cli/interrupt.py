"""Ctrl-C during a run: one line saying what state the tree is in and what to run next.

The run being done is noted when it starts (run_with_progress), so that the line can name the
operation and, from its record, say whether files may have moved; an organize stopped while
planning is then recorded as `interrupted` with that line (what `fileorg operations` shows).
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Run:
    flow: str  # the Prefect flow's name: organize, apply-plan, rollback
    operation_id: str | None
    argv: tuple[str, ...]


_current: list[Run] = []


@contextmanager
def running(fn: Any, kwargs: dict[str, Any]) -> Iterator[None]:
    run = Run(str(getattr(fn, "name", fn.__name__)), kwargs.get("operation_id"), tuple(sys.argv))
    _current.append(run)
    yield  # not removed on an exception: the Ctrl-C line still needs it
    _current.remove(run)


def _resume_command(run: Run) -> str:
    argv = ["fileorg", *run.argv[1:]]
    if run.operation_id and "--id" not in argv:
        argv += ["--id", run.operation_id]
    return shlex.join(argv)


def _record(operation_id: str) -> Any:
    from storage import operations
    from storage.locations import DataStore
    from storage.settings import get_settings

    with suppress(Exception):
        return operations.load(DataStore(get_settings().data_url), operation_id)
    return None


def message() -> str:
    """The line for an interrupted command (the run in progress, if any)."""
    if not _current or not _current[-1].operation_id:
        return "interrupted: nothing was changed"
    run = _current[-1]
    op = run.operation_id
    record = _record(str(op))
    status = getattr(record, "status", None)
    stage = getattr(record, "stage", None)
    root = getattr(record, "root", "the tree")
    if status == "rolling_back" or run.flow == "rollback":
        return (
            f"interrupted while rolling back: some moves of operation {op} in {root} are undone, "
            f"each one journaled; finish it: fileorg rollback {op}"
        )
    if status in ("applying", "partial") or stage == "apply":
        return (
            f"interrupted while applying: some files in {root} may have moved, each one "
            f"journaled; finish it: fileorg apply {op}, or undo it: fileorg rollback {op}"
        )
    if run.flow == "apply-plan":
        return f"interrupted: nothing in {root} was changed; apply it: fileorg apply {op}"
    return f"interrupted: nothing in {root} was changed; resume it: {_resume_command(run)}"


def record(line: str) -> None:
    """An organize stopped in a stage of its plan: its record says `interrupted`, with the
    line just printed (the command that resumes it), for `fileorg operations` and the API to
    show; not `failed` with KeyboardInterrupt. Anything further along keeps its own status."""
    if not _current or _current[-1].flow != "organize" or not _current[-1].operation_id:
        return
    from storage import operations
    from storage.locations import DataStore
    from storage.settings import get_settings

    with suppress(Exception):  # no record yet (a Ctrl-C before the flow), or no data folder
        store = DataStore(get_settings().data_url)
        found = operations.load(store, str(_current[-1].operation_id))
        if operations.interrupt_planning(found, line):
            operations.save(store, found)
