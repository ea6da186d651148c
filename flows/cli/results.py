"""What an apply or a rollback prints: a heading table of counts, the first files it could
not carry out (and the commands that list them all), or all of that as one JSON document."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flows.cli.options import display_id
from flows.cli.render import counted, emit_json, err, escaped, path_text, table
from flows.cli.views import not_done
from storage.vocabulary import NOT_DONE_APPLY, NOT_DONE_ROLLBACK

if TYPE_CHECKING:
    from storage.locations import DataStore

INCOMPLETE = 3  # exit code: an apply or rollback left some items undone (listed)
DECLINED = 1
SAMPLE = 5  # files shown after an apply or rollback that could not do them

APPLY_COLUMNS = (
    ("done", "moved"),
    ("changed", "skipped: changed"),
    ("vanished", "vanished"),
    ("conflicts", "conflicts"),
    ("unsafe", "unsafe"),
    ("errors", "errors"),
)
ROLLBACK_COLUMNS = (
    ("undone", "restored"),
    ("refused", "refused"),
    ("folders_removed", "folders removed"),
    ("folders_recreated", "folders made again"),
    ("folders_kept", "folders kept"),
)


def applied(
    store: DataStore,
    operation_id: str,
    counts: dict[str, int],
    json_output: bool,
    document: dict[str, Any],
) -> int:
    """Print what the apply did, and the first files it could not carry out. Returns the
    exit code."""
    from storage import operations

    record = operations.load(store, operation_id)
    status, emptied = record.status, int(record.summary.get("folders_emptied", 0))
    rows, found = _not_done(store, operation_id, NOT_DONE_APPLY)
    shown = display_id(store, operation_id)
    if json_output:
        emit_json(
            {"operation_id": operation_id, "status": status, **document, "apply": counts}
            | {"folders_emptied": emptied, "not_done": _problems(rows, found)}
        )
    else:
        _heading(_apply_heading(counts), APPLY_COLUMNS, counts)
        if emptied:
            err.print(
                f"removed {counted(emptied, 'folder')} apply emptied (rollback makes them again)"
            )
        # `--outcome skipped` lists the plan's skipped rows too (left alone, duplicates in
        # place: the summary's "skipped"), with the plan's reason: the count says so.
        plan_skipped = {"skipped": int(record.summary.get("skipped", 0))}
        not_done(rows, found, f"fileorg plan {shown}", "applied", plan_skipped)
        err.print(f"\noperation [bold]{shown}[/bold]: {status}; undo it: fileorg rollback {shown}")
    return 0 if status == "applied" else INCOMPLETE


def rolled_back(
    store: DataStore, operation_id: str, result: dict[str, int], json_output: bool
) -> str:
    """Print what the rollback did, and the first files it could not restore. Returns the
    operation's status."""
    from storage import operations

    status = operations.load(store, operation_id).status
    rows, found = _not_done(store, operation_id, NOT_DONE_ROLLBACK, "rollback")
    shown = display_id(store, operation_id)
    if json_output:
        emit_json(
            {"operation_id": operation_id, "status": status, "rollback": result}
            | {"not_done": _problems(rows, found)}
        )
    else:
        heading = "Rolled back" if result.get("refused", 0) == 0 else "Rollback incomplete"
        _heading(heading, ROLLBACK_COLUMNS, result)
        _folders_not_done(result)
        not_done(rows, found, f"fileorg plan {shown}", "restored")
        err.print(f"operation [bold]{shown}[/bold]: {status}")
    return status


def _folders_not_done(result: dict[str, Any]) -> None:
    """Each folder the rollback did not put back as it was, with why: one apply made that
    holds something now (kept), one apply removed that something else has the name of."""
    listed = result.get("folders_not_done") or []
    total = int(result.get("folders_kept", 0)) + int(result.get("refused_folders_taken", 0))
    if not total:
        return
    first = f"; the first {len(listed)}" if total > len(listed) else ""
    err.print(f"\n{counted(total, 'folder')} not as before apply{first}:")
    for folder in listed:
        err.print(f"  {escaped(folder['path'])}/  {escaped(folder['reason'])}", markup=False)


def _not_done(
    store: DataStore, operation_id: str, kinds: tuple[str, ...], of: str = "apply"
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    from storage import queries

    return queries.outcome_sample(store, store.operation_dir(operation_id), kinds, SAMPLE, of)


def _problems(rows: list[dict[str, Any]], counts: dict[str, int]) -> dict[str, Any]:
    return {
        "counts": counts,
        "first": [
            {
                "src": path_text(r["src"]),
                "dst": path_text(r["dst"]),
                "outcome": r["outcome"],
                "reason": r["outcome_reason"],
            }
            for r in rows
        ],
    }


def _apply_heading(counts: dict[str, int]) -> str:
    done, total = counts.get("done", 0), sum(counts.values())
    return "Applied" if done == total else "Nothing applied" if done == 0 else "Partly applied"


def _heading(title: str, columns: tuple[tuple[str, str], ...], counts: dict[str, int]) -> None:
    table(title, [label for _, label in columns], [[f"{counts.get(k, 0):,}" for k, _ in columns]])
