"""Commands that run flows in this process: organize (plans), apply and rollback (change files).

Nothing changes files unasked: `organize PATH` only plans; `organize PATH --apply` and
`apply ID` are the explicit requests, asked once more on a terminal (flows.cli.guards).
Exit codes: 0 done, 1 an error or a declined question, 2 bad input (one line), 3 an apply or
a rollback that could not carry out every item (its heading says so, and it lists them).
What an apply or a rollback prints is flows.cli.results. The CLI imports this module for every
command: what is typed is checked first, and the storage layer and Prefect are imported
inside the commands, by what needs them.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, get_args

import typer

from flows.cli import app
from flows.cli.guards import (
    confirm,
    interactive,
    refuse_broad_root,
    refuse_left_alone_root,
    refuse_other_request,
    refuse_out_of_order,
    refuse_stale,
)
from flows.cli.options import data_store, display_id, operation
from flows.cli.render import emit_json, err, escaped, summary
from flows.cli.results import DECLINED, INCOMPLETE, applied, rolled_back
from flows.cli.views import preview
from storage.errors import OperationStateError, UserError
from storage.vocabulary import (
    AlbumsPolicy,
    DuplicatesPolicy,
    KeepPolicy,
    LayoutMode,
    ProjectsPolicy,
    UndatedPolicy,
)
from tasks.plan.layout import parse_layout

if TYPE_CHECKING:
    from storage.locations import DataStore
    from storage.operations import OperationRecord, PlanOptions


YES = typer.Option(False, "--yes", "-y", help="Do not ask on a terminal: apply.")
FORCE = typer.Option(
    False, "--force", help="Apply even though another operation changed the root since."
)
JSON = typer.Option(False, "--json", help="Print one JSON document.")
# organize's options, one name each, so that its signature reads as a list.
PATH = typer.Argument(..., help="The root folder to organize.")
MODE = typer.Option("category_year", help=", ".join(get_args(LayoutMode)) + ".")
TEMPLATE = typer.Option(
    None, help="A layout such as '{category}/{year}/{month:02d}/{name}' (overrides --mode)."
)
DUPLICATES = typer.Option("report", help="What to do with duplicate copies.")
KEEP = typer.Option("oldest", help="Which copy of a duplicate group stays.")
INCLUDE_EMPTY = typer.Option(False, help="Count empty files as duplicates of each other.")
EXCLUDE = typer.Option([], help="Folder or file name patterns to leave alone.")
INCLUDE_HIDDEN = typer.Option(
    False,
    help="Organize the hidden files people keep too (photos, documents, music...); dot-files "
    "that configure programs, dot-folders, OS junk, credentials and projects stay.",
)
PROJECTS = typer.Option(
    "leave",
    help="Projects (.git, pyproject.toml, ...): leave them, or move each whole to Projects/<name>.",
)
ALBUMS = typer.Option(
    "tags",
    help="Album folders move whole: to Audio/<artist>/<album> by their tags "
    "(tags), to the layout under their own name (folder), or not as albums (off).",
)
KEEP_SUBFOLDERS = typer.Option(
    False, help="Sort only the files at the top of PATH; leave every subfolder as it is."
)
UNDATED = typer.Option(
    "mtime",
    help="Files with no date but their mtime: date them by it, or put them in Undated/ (folder).",
)
KEEP_EMPTY_FOLDERS = typer.Option(
    False,
    help="Keep the folders apply empties (by default they are removed; rollback brings them back).",
)
APPLY = typer.Option(False, "--apply", help="Apply the plan once made (asks first on a terminal).")
DRY_RUN = typer.Option(False, "--dry-run", help="Plan only (the default; kept for older scripts).")
I_MEAN_IT = typer.Option(
    False, "--i-mean-it", help="Organize your whole home folder (never / or a system folder)."
)
RESUME = typer.Option(
    None, "--id", help="Resume this operation (an id, a unique prefix, or 'last')."
)


def run_with_progress(
    json_output: bool, fn: Any, *, announce: str | None = None, **kwargs: Any
) -> Any:
    """`fn(**kwargs)` with progress bars; `announce` is printed once the run is noted, so a
    Ctrl-C right after the line names the run and how to resume it."""
    from flows.cli.bar import ProgressBars
    from flows.cli.interrupt import running
    from flows.cli.local_prefect import local_prefect
    from tasks.progress import sink_installed

    with running(fn, kwargs):
        if announce is not None:
            err.print(announce)
        with (
            local_prefect(),
            ProgressBars(enabled=not json_output) as bars,
            sink_installed(bars),
        ):
            return fn(**kwargs)


@app.command()
def organize(
    path: str = PATH,
    mode: str = MODE,
    template: str | None = TEMPLATE,
    duplicates: DuplicatesPolicy = DUPLICATES,
    keep: KeepPolicy = KEEP,
    include_empty: bool = INCLUDE_EMPTY,
    exclude: list[str] = EXCLUDE,
    include_hidden: bool = INCLUDE_HIDDEN,
    projects: ProjectsPolicy = PROJECTS,
    albums: AlbumsPolicy = ALBUMS,
    keep_subfolders: bool = KEEP_SUBFOLDERS,
    undated: UndatedPolicy = UNDATED,
    keep_empty_folders: bool = KEEP_EMPTY_FOLDERS,
    apply_plan: bool = APPLY,
    dry_run: bool = DRY_RUN,
    yes: bool = YES,
    force: bool = FORCE,
    i_mean_it: bool = I_MEAN_IT,
    operation_id: str | None = RESUME,
    json_output: bool = JSON,
) -> None:
    """Scan PATH, find duplicates, classify files and plan an organized layout (changes
    nothing unless --apply)."""
    if dry_run and apply_plan:
        raise UserError("--dry-run and --apply ask for opposite things: give one of them")
    _check_layout(mode, template, exclude)
    from storage.operations import PlanOptions, check_options_for_root
    from storage.roots import check_root

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
    refuse_left_alone_root(root, store, include_hidden)
    op_id = _operation_id(store, operation_id, root, options, apply_plan)
    report = _plan(store, op_id, root, options, json_output)
    if not apply_plan:
        _planned(store, op_id, report, json_output)
        return
    code = _plan_applied(store, op_id, report, yes, force, json_output)
    if code:
        raise typer.Exit(code)


def _check_layout(mode: str, template: str | None, exclude: list[str]) -> None:
    """The API's rules, before any work: a mode or template the planner renders, no file
    name that loses its extension, no exclude pattern that cannot match ('', an unset
    "$PATTERN", excludes nothing)."""
    from storage.templates import check_exclude, check_template

    parse_layout(mode, template)
    if template is not None:
        check_template(template)
    check_exclude(exclude)


def _operation_id(
    store: DataStore, given: str | None, root: str, options: PlanOptions, apply_plan: bool
) -> str:
    """A new id, the caller's new UUID, or the operation `given` names, which must be this
    root asked with these options."""
    from storage import operations

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


def _plan(
    store: DataStore, op_id: str, root: str, options: PlanOptions, json_output: bool
) -> dict[str, Any]:
    """Run the organize flow here, with progress bars; its report."""
    from flows.cli.local_prefect import start_early

    start_early()  # the Prefect server, while Prefect is imported
    from flows.organize import organize_flow
    from storage.paths import to_param

    line = None if json_output else _announce(op_id, root)
    report: dict[str, Any] = run_with_progress(
        json_output,
        organize_flow,
        announce=line,
        operation_id=op_id,
        root=to_param(root),
        options=options,
    )
    return report


def _announce(op_id: str, root: str) -> str:
    """The run's first line (rich markup): its id, and its root as a table shows a name."""
    from rich.markup import escape

    return f"operation [bold]{op_id}[/bold] on {escape(escaped(root))}"


def _planned(store: DataStore, op_id: str, report: dict[str, Any], json_output: bool) -> None:
    """What a plan without --apply prints: the summary, the tree it would leave, what next."""
    from storage import operations, previews

    record = operations.load(store, op_id)
    if json_output:
        emit_json({"operation_id": op_id, "status": record.status, "report": report})
        return
    shown = display_id(store, op_id)
    summary(report)
    preview(previews.resulting_tree(store, store.operation_dir(op_id)))
    err.print(f"\noperation id: [bold]{shown}[/bold] ({record.status}); nothing changed")
    err.print(f"review it: fileorg plan {shown}; apply it: fileorg apply {shown}")


def _plan_applied(
    store: DataStore, op_id: str, report: dict[str, Any], yes: bool, force: bool, json_output: bool
) -> int:
    """organize --apply, once planned: the apply (or the end of an interrupted one)."""
    from storage import operations

    record = operations.load(store, op_id)
    if not json_output:
        summary(report)
    if record.status in ("applied", "partial"):  # an interrupted plan-and-apply, now finished
        done = record.summary.get("apply", {})
        return applied(store, op_id, done, json_output, {"report": report})
    return _apply(store, record, yes, force, json_output, {"report": report})


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
    from storage import locks, operations, previews
    from storage.roots import check_root

    locks.refuse_busy(store, record.id, record.root)  # first: the record may be changing
    refused = operations.repeat_refusal(record, "apply")
    if refused:
        raise OperationStateError(refused)
    refuse_stale(store, record, force)
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
    from flows.cli.local_prefect import start_early

    start_early()
    from flows.apply import apply_plan_flow  # Prefect: once the user said yes

    result = run_with_progress(json_output, apply_plan_flow, operation_id=record.id)
    return applied(store, record.id, result.get("apply", {}), json_output, document)


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
    root = escaped(record.root)
    return f"Apply plan {shown} to {root} ({', '.join(parts) or 'nothing to move'})?"


@app.command()
def apply(
    operation_id: str = typer.Argument(..., help="An id, a unique prefix, or 'last'."),
    yes: bool = YES,
    force: bool = FORCE,
    json_output: bool = JSON,
) -> None:
    """Apply a reviewed plan, re-checking every file; finishes an interrupted apply. Asks
    first on a terminal."""
    from storage import manifests

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
    force: bool = typer.Option(
        False, "--force", help="Roll back even though a newer operation's moves are on top."
    ),
    json_output: bool = JSON,
    _yes: bool = typer.Option(
        False, "--yes", "-y", help="Accepted, as apply's: a rollback never asks."
    ),
) -> None:
    """Undo an applied operation, newest move first; run it again to finish an interrupted one."""
    from storage import locks, operations
    from storage.roots import check_root

    store = data_store()
    record = operation(operation_id, store)
    locks.refuse_busy(store, record.id, record.root)  # first: the record may be changing
    refused = operations.repeat_refusal(record, "rollback")
    if refused:
        raise OperationStateError(refused)
    # Never applied, first: a plan that was not is not "applied" before a newer one (the
    # tryout's rollback of a dry run read "... after X was applied: roll it back first").
    undoable = operations.check_can_roll_back(store, record)
    refuse_out_of_order(store, record, force)
    if undoable:
        check_root(record.root)
    from flows.cli.local_prefect import start_early

    start_early()
    from flows.apply import rollback_flow

    result = run_with_progress(json_output, rollback_flow, operation_id=record.id)
    if rolled_back(store, record.id, result, json_output) != "rolled_back":
        raise typer.Exit(INCOMPLETE)
