"""Commands that run flows in this process: organize (plans), apply and rollback (change files).

Nothing changes files unasked: `organize PATH` only plans; `organize PATH --apply` and
`apply ID` are the explicit requests, asked once more on a terminal (flows.cli.guards).
Exit codes: 0 done, 1 an error or a declined question, 2 bad input (one line), 3 an apply or
a rollback that could not carry out every item (its heading says so, and it lists them).
"""

from __future__ import annotations

import uuid
from typing import Any, get_args

import typer
from rich.markup import escape

from flows.cli import app
from flows.cli.bar import ProgressBars
from flows.cli.guards import (
    confirm,
    interactive,
    refuse_broad_root,
    refuse_other_request,
    refuse_stale,
)
from flows.cli.options import data_store, display_id, operation
from flows.cli.render import emit_json, err, path_text, summary, table
from flows.cli.views import not_done, preview
from storage import locks, manifests, operations, outcomes, previews, queries
from storage.errors import OperationStateError, UserError
from storage.locations import DataStore
from storage.operations import (
    AlbumsPolicy,
    DuplicatesPolicy,
    KeepPolicy,
    LayoutMode,
    OperationRecord,
    PlanOptions,
    ProjectsPolicy,
    UndatedPolicy,
    check_options_for_root,
)
from storage.paths import to_param
from storage.roots import check_root
from tasks.plan.layout import parse_layout

INCOMPLETE = 3  # exit code: an apply or rollback left some items undone (listed)
DECLINED = 1
SAMPLE = 5  # files shown after an apply or rollback that could not do them


YES = typer.Option(False, "--yes", "-y", help="Do not ask on a terminal: apply.")
FORCE = typer.Option(
    False, "--force", help="Apply even though another operation changed the root since."
)
JSON = typer.Option(False, "--json", help="Print one JSON document.")


def run_with_progress(json_output: bool, fn: Any, **kwargs: Any) -> Any:
    from flows.cli.interrupt import running
    from flows.cli.local_prefect import local_prefect
    from tasks.progress import sink_installed

    with (
        running(fn, kwargs),
        local_prefect(),
        ProgressBars(enabled=not json_output) as bars,
        sink_installed(bars),
    ):
        return fn(**kwargs)


@app.command()
def organize(
    path: str = typer.Argument(..., help="The root folder to organize."),
    mode: str = typer.Option("category_year", help=", ".join(get_args(LayoutMode)) + "."),
    template: str | None = typer.Option(
        None, help="A layout such as '{category}/{year}/{month:02d}/{name}' (overrides --mode)."
    ),
    duplicates: DuplicatesPolicy = typer.Option("report", help="What to do with duplicate copies."),
    keep: KeepPolicy = typer.Option("oldest", help="Which copy of a duplicate group stays."),
    include_empty: bool = typer.Option(
        False, help="Count empty files as duplicates of each other."
    ),
    exclude: list[str] = typer.Option([], help="Folder or file name patterns to leave alone."),
    include_hidden: bool = typer.Option(
        False,
        help="Organize hidden files and folders too (never OS junk, tool or state folders, "
        "credentials or projects).",
    ),
    projects: ProjectsPolicy = typer.Option(
        "leave",
        help="Projects (.git, pyproject.toml, ...): leave them, or move each "
        "whole to Projects/<name>.",
    ),
    albums: AlbumsPolicy = typer.Option(
        "tags",
        help="Album folders move whole: to Audio/<artist>/<album> by their tags "
        "(tags), to the layout under their own name (folder), or not as albums (off).",
    ),
    keep_subfolders: bool = typer.Option(
        False, help="Sort only the files at the top of PATH; leave every subfolder as it is."
    ),
    undated: UndatedPolicy = typer.Option(
        "mtime",
        help="Files with no date but their mtime: date them by it, or put "
        "them in Undated/ (folder).",
    ),
    keep_empty_folders: bool = typer.Option(
        False,
        help="Keep the folders apply empties (by default they are removed; rollback "
        "brings them back).",
    ),
    apply_plan: bool = typer.Option(
        False, "--apply", help="Apply the plan once made (asks first on a terminal)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Plan only (the default; kept for older scripts)."
    ),
    yes: bool = YES,
    force: bool = FORCE,
    i_mean_it: bool = typer.Option(
        False, "--i-mean-it", help="Organize / , a system folder or your whole home folder."
    ),
    operation_id: str | None = typer.Option(
        None, "--id", help="Resume this operation (an id, a unique prefix, or 'last')."
    ),
    json_output: bool = JSON,
) -> None:
    """Scan PATH, find duplicates, classify files and plan an organized layout (changes
    nothing unless --apply)."""
    if dry_run and apply_plan:
        raise UserError("--dry-run and --apply ask for opposite things: give one of them")
    parse_layout(mode, template)
    options = PlanOptions(
        mode=mode,
        template=template,
        duplicates=duplicates,
        keep=keep,
        include_empty=include_empty,
        exclude=exclude,
        include_hidden=include_hidden,
        projects=projects,
        albums=albums,
        keep_subfolders=keep_subfolders,
        undated=undated,
        keep_empty_folders=keep_empty_folders,
    )
    check_options_for_root(options, path)  # what the kind of root cannot do, before any I/O
    root = check_root(path)
    refuse_broad_root(root, i_mean_it)
    store = data_store()
    op_id = _operation_id(store, operation_id, root, options, apply_plan)
    from flows.organize import organize_flow

    if not json_output:
        err.print(f"operation [bold]{op_id}[/bold] on {escape(root)}")
    report = run_with_progress(
        json_output, organize_flow, operation_id=op_id, root=to_param(root), options=options
    )
    record = operations.load(store, op_id)
    shown = display_id(store, op_id)
    if not apply_plan:
        if json_output:
            emit_json({"operation_id": op_id, "status": record.status, "report": report})
            return
        summary(report)
        preview(previews.resulting_tree(store, store.operation_dir(op_id)))
        err.print(f"\noperation id: [bold]{shown}[/bold] ({record.status}); nothing changed")
        err.print(f"review it: fileorg plan {shown}; apply it: fileorg apply {shown}")
        return
    if not json_output:
        summary(report)
    if record.status in ("applied", "partial"):  # an interrupted plan-and-apply, now finished
        code = _applied(
            store, op_id, record.summary.get("apply", {}), json_output, {"report": report}
        )
    else:
        code = _apply(store, record, yes, force, json_output, {"report": report})
    if code:
        raise typer.Exit(code)


def _operation_id(
    store: DataStore, given: str | None, root: str, options: PlanOptions, apply_plan: bool
) -> str:
    """A new id, the caller's new UUID, or the operation `given` names, which must be this
    root asked with these options."""
    if given is None:
        return str(uuid.uuid4())
    try:
        full = str(uuid.UUID(given))
    except ValueError:
        full = None
    if full is not None and not operations.exists(store, full):
        return full
    op_id = full or operations.resolve_id(store, given)
    refuse_other_request(operations.load(store, op_id), root, options, apply_plan)
    return op_id


def _apply(
    store: DataStore,
    record: OperationRecord,
    yes: bool,
    force: bool,
    json_output: bool,
    document: dict[str, Any],
) -> int:
    """Apply the plan of `record` once the user (or a script) asked; print what became of it.
    Returns the exit code."""
    locks.refuse_busy(store, record.id, record.root)  # first: the record may be changing
    refused = operations.repeat_refusal(record, "apply")
    if refused:
        raise OperationStateError(refused)
    refuse_stale(store, record, force)
    from flows.apply import apply_plan_flow  # Prefect: after the cheap checks

    operations.check_can_apply(record)
    check_root(record.root)
    shown = display_id(store, record.id)
    nothing = not any(record.summary.get(k) for k in ("moves", "quarantine", "hardlink"))
    yes = yes or (nothing and record.status == "planned")  # no question when nothing moves
    if interactive() and not yes and not json_output:
        preview(previews.resulting_tree(store, store.operation_dir(record.id)))
    if not confirm(_question(record, shown), yes):
        err.print(f"not applied: nothing changed; the plan stays (fileorg apply {shown})")
        if json_output:
            emit_json({"operation_id": record.id, "status": record.status, **document})
        return DECLINED
    result = run_with_progress(json_output, apply_plan_flow, operation_id=record.id)
    return _applied(store, record.id, result.get("apply", {}), json_output, document)


def _applied(
    store: DataStore,
    operation_id: str,
    counts: dict[str, int],
    json_output: bool,
    document: dict[str, Any],
) -> int:
    """Print what the apply did, and the first files it could not carry out."""
    record = operations.load(store, operation_id)
    status, emptied = record.status, int(record.summary.get("folders_emptied", 0))
    rows, found = _not_done(store, operation_id, outcomes.NOT_DONE_APPLY)
    shown = display_id(store, operation_id)
    if json_output:
        emit_json(
            {"operation_id": operation_id, "status": status, **document, "apply": counts}
            | {"folders_emptied": emptied, "not_done": _problems(rows, found)}
        )
    else:
        _apply_heading(counts)
        if emptied:
            err.print(f"removed {emptied:,} folders apply emptied (rollback makes them again)")
        not_done(rows, found, f"fileorg plan {shown}", "applied")
        err.print(f"\noperation [bold]{shown}[/bold]: {status}; undo it: fileorg rollback {shown}")
    return 0 if status == "applied" else INCOMPLETE


def _question(record: OperationRecord, shown: str) -> str:
    plan = record.summary
    parts = [
        f"{plan.get(key, 0):,} {label}"
        for key, label in (
            ("moves", "moves"),
            ("quarantine", "to quarantine"),
            ("hardlink", "hard links"),
        )
        if plan.get(key)
    ]
    return f"Apply plan {shown} to {record.root} ({', '.join(parts) or 'nothing to move'})?"


def _not_done(
    store: DataStore, operation_id: str, kinds: tuple[str, ...]
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    return queries.outcome_sample(store, store.operation_dir(operation_id), kinds, SAMPLE)


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


APPLY_COLUMNS = (
    ("done", "moved"),
    ("changed", "skipped: changed"),
    ("vanished", "vanished"),
    ("conflicts", "conflicts"),
    ("unsafe", "unsafe"),
    ("errors", "errors"),
)


def _apply_heading(counts: dict[str, int]) -> None:
    done, total = counts.get("done", 0), sum(counts.values())
    heading = "Applied" if done == total else "Nothing applied" if done == 0 else "Partly applied"
    table(
        heading,
        [label for _, label in APPLY_COLUMNS],
        [[f"{counts.get(key, 0):,}" for key, _ in APPLY_COLUMNS]],
    )


@app.command()
def apply(
    operation_id: str = typer.Argument(..., help="An id, a unique prefix, or 'last'."),
    yes: bool = YES,
    force: bool = FORCE,
    json_output: bool = JSON,
) -> None:
    """Apply a reviewed plan, re-checking every file; finishes an interrupted apply. Asks
    first on a terminal."""
    store = data_store()
    record = operation(operation_id, store)
    if interactive() and not yes and not json_output:
        built = manifests.read_report(store, store.operation_dir(record.id))
        if built is not None:
            summary(built)
    code = _apply(store, record, yes, force, json_output, {})
    if code:
        raise typer.Exit(code)


@app.command()
def rollback(
    operation_id: str = typer.Argument(..., help="An id, a unique prefix, or 'last'."),
    json_output: bool = JSON,
) -> None:
    """Undo an applied operation, newest move first; run it again to finish an interrupted one."""
    store = data_store()
    record = operation(operation_id, store)
    locks.refuse_busy(store, record.id, record.root)  # first: the record may be changing
    refused = operations.repeat_refusal(record, "rollback")
    if refused:
        raise OperationStateError(refused)
    from flows.apply import rollback_flow

    if operations.check_can_roll_back(store, record):
        check_root(record.root)
    result = run_with_progress(json_output, rollback_flow, operation_id=record.id)
    status = operations.load(store, record.id).status
    rows, found = _not_done(store, record.id, outcomes.NOT_DONE_ROLLBACK)
    shown = display_id(store, record.id)
    if json_output:
        emit_json(
            {"operation_id": record.id, "status": status, "rollback": result}
            | {"not_done": _problems(rows, found)}
        )
    else:
        heading = "Rolled back" if result.get("refused", 0) == 0 else "Rollback incomplete"
        table(
            heading,
            ["restored", "refused", "folders removed", "folders made again"],
            [
                [
                    f"{result.get(k, 0):,}"
                    for k in ("undone", "refused", "folders_removed", "folders_recreated")
                ]
            ],
        )
        not_done(rows, found, f"fileorg plan {shown}", "restored")
        err.print(f"operation [bold]{shown}[/bold]: {status}")
    if status != "rolled_back":
        raise typer.Exit(INCOMPLETE)
