"""The operation record (operation.json): what was asked, where it stands, how long each stage took.

One writer at a time (the flow run that owns the operation), so a whole-file rewrite is enough.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from storage.errors import InvalidPlanOptions, OperationNotFound, OperationStateError, UserError
from storage.journal import has_applied_anything
from storage.locations import DataStore, canonical_operation_id
from storage.vocabulary import AlbumsPolicy as AlbumsPolicy
from storage.vocabulary import DuplicatesPolicy as DuplicatesPolicy
from storage.vocabulary import KeepPolicy as KeepPolicy
from storage.vocabulary import LayoutMode as LayoutMode
from storage.vocabulary import ProjectsPolicy as ProjectsPolicy
from storage.vocabulary import UndatedPolicy as UndatedPolicy

Status = Literal[
    "pending",
    "running",
    "planned",  # a finished dry run: the plan can be reviewed and applied
    "failed",
    "applying",
    "applied",
    "partial",  # applied, but some items were skipped or failed
    "rolling_back",
    "rolled_back",
    "rollback_incomplete",  # some items were refused (their original path is taken...)
    # Its run ended before finishing, `stage` says where: `apply` or `rollback` (its process
    # ended: interrupt()), or a stage of the plan (Ctrl-C: nothing changed, it resumes as an
    # organize with the command in `error`: interrupt_planning()).
    "interrupted",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


# The Prefect event a run's progress goes out as (flows/progress_events.py) and the API's one
# subscription listens for: one name for both sides.
PROGRESS_EVENT = "fileorg.operation.progress"


# The plan's policies are spelled once, in storage/vocabulary.py (imported here as before).


class PlanOptions(BaseModel):
    # A str, not a LayoutMode: with a template the mode is not used, and the CLI accepts any
    # (tasks.layout.parse_layout checks it only when there is no template).
    mode: str = "category_year"
    template: str | None = None
    duplicates: DuplicatesPolicy = "report"
    keep: KeepPolicy = "oldest"
    include_empty: bool = False
    exclude: list[str] = Field(default_factory=list)
    # What a real home folder needs (storage.leave_alone, tasks.plan.planner): hidden entries
    # are left alone unless opted in; projects are left whole, or moved whole to Projects/;
    # album folders move as one, named by their tags; files dated by mtime alone may go to
    # Undated/.
    include_hidden: bool = False
    projects: ProjectsPolicy = "leave"
    albums: AlbumsPolicy = "tags"
    keep_subfolders: bool = False
    undated: UndatedPolicy = "mtime"
    # Apply removes the folders it emptied (tasks.apply.dirs) unless asked to keep them.
    keep_empty_folders: bool = False


class StageTiming(BaseModel):
    seconds: float | None = None
    files: int = 0
    bytes: int = 0


class OperationRecord(BaseModel):
    id: str
    root: str  # os.fsdecode'd absolute path (surrogateescape keeps non-UTF-8 bytes)
    # [st_dev, st_ino] of the root's folder when it was authorized (storage.root_identity);
    # None for an object root, and in records written before identities were kept.
    root_identity: list[int] | None = None
    kind: Literal["organize", "scan", "dedupe"] = "organize"
    options: PlanOptions = Field(default_factory=PlanOptions)
    dry_run: bool = True
    status: Status = "pending"
    stage: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    stages: dict[str, StageTiming] = Field(default_factory=dict)
    summary: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    flow_run_id: str | None = None
    # The API user whose grant authorized it (their id, from the API's signed ticket); None
    # for a run of this machine's CLI. The CLI's `last` is its own newest, never a user's.
    owner: str | None = None


def record_path(store: DataStore, operation_id: str) -> str:
    return f"{store.operation_dir(operation_id)}/operation.json"


def save(store: DataStore, record: OperationRecord) -> None:
    record.updated_at = utcnow()
    # ensure_ascii keeps lone surrogates (non-UTF-8 root names) as \\udcXX escapes: valid JSON.
    payload = json.dumps(record.model_dump(mode="json"), ensure_ascii=True, indent=1)
    store.write_bytes(record_path(store, record.id), payload.encode())


def load(store: DataStore, operation_id: str) -> OperationRecord:
    path = record_path(store, canonical_operation_id(operation_id))
    try:
        raw = store.read_bytes(path)
    except FileNotFoundError:
        raise OperationNotFound(operation_id) from None
    return OperationRecord.model_validate(json.loads(raw))


def exists(store: DataStore, operation_id: str) -> bool:
    return store.exists(record_path(store, canonical_operation_id(operation_id)))


def list_all(store: DataStore) -> list[OperationRecord]:
    records = []
    for path in store.glob(f"{store.operations_dir()}/*/operation.json"):
        try:
            records.append(OperationRecord.model_validate(json.loads(store.read_bytes(path))))
        except (ValueError, FileNotFoundError):
            continue  # a half-created or foreign folder is not an operation
    return sorted(records, key=lambda r: r.created_at, reverse=True)


def previous_on_root(store: DataStore, root: str, exclude_id: str) -> OperationRecord | None:
    """The newest other operation on the same root whose hashes are complete (the hash cache)."""
    for record in list_all(store):
        timing = record.stages.get("hash")
        if (
            record.id != exclude_id
            and record.root == root
            and timing
            and timing.seconds is not None
        ):
            return record
    return None


def check_options_for_root(options: PlanOptions, root: str) -> None:
    """Refuse, before any work, what a root of this kind cannot do (InvalidPlanOptions).

    Shared by the flow, the CLI and the API so that all three refuse with the same line.
    """
    from storage.objects import is_object_url

    if options.duplicates == "hardlink" and is_object_url(root):
        raise InvalidPlanOptions(
            "duplicates policy 'hardlink' is not possible on an object-store root "
            "(objects cannot be hard-linked): use 'report' or 'quarantine'"
        )
    if options.projects == "move" and is_object_url(root):
        raise InvalidPlanOptions(
            "projects 'move' is not possible on an object-store root (a prefix cannot be "
            "renamed at once, so a project could be left half moved): use 'leave'"
        )


# --- naming an operation: a full id, a short unique prefix, or `last` ------------------------

MIN_PREFIX = 4  # as git: shorter prefixes are too likely to become ambiguous in scripts
HEX = frozenset("0123456789abcdef-")


def resolve_id(store: DataStore, given: str) -> str:
    """The full id of the operation `given` names (OperationNotFound, or UserError when a
    prefix is ambiguous). The API takes full UUIDs only; the CLI accepts these shortcuts."""
    text = given.strip().lower()
    if text == "last":
        # The CLI's own newest: an API user's operation in the same data folder is theirs, and
        # `fileorg apply last --yes` in a script must not apply it (the tryout's finding).
        everything = list_all(store)
        newest = [r for r in everything if r.owner is None]
        if not newest:
            why = "there are no operations yet"
            if everything:
                why = "no operation was started from the CLI here: name an API user's by its id"
            raise OperationNotFound(f"last ({why})")
        return newest[0].id
    try:
        return str(uuid.UUID(text))
    except ValueError:
        pass
    if not text or not set(text) <= HEX:
        raise OperationNotFound(given)
    names = [p.rsplit("/", 2)[-2] for p in store.glob(f"{store.operations_dir()}/*/operation.json")]
    found = sorted(n for n in names if n.startswith(text) or n.replace("-", "").startswith(text))
    if not found:
        raise OperationNotFound(given)
    shown = ", ".join(n[:13] for n in found[:3]) + (", ..." if len(found) > 3 else "")
    if len(text) < MIN_PREFIX:  # it names something: say why it is not taken
        raise UserError(
            f"id prefix {given!r} is too short: give at least {MIN_PREFIX} characters"
            f" (it matches {shown})"
        )
    if len(found) > 1:
        raise UserError(
            f"id prefix {given!r} matches {len(found)} operations ({shown}): give more of it"
        )
    return found[0]


def short_id(operation_id: str) -> str:
    return operation_id[:8]


# --- what an apply or a rollback may follow ----------------------------------------------------

CHANGING = frozenset(
    {
        "applying",
        "applied",
        "partial",
        "rolling_back",
        "rolled_back",
        "rollback_incomplete",
        "interrupted",
    }
)
WORKING = {"applying": "apply", "rolling_back": "rollback"}  # statuses held under the lock


def interrupt(record: OperationRecord) -> None:
    """Mark an apply or rollback whose run ended without finishing (storage.locks decides)."""
    doing = WORKING.get(record.status)
    if doing is None:
        return
    record.stage = doing
    record.status = "interrupted"
    undo = f", or undo what it did (fileorg rollback {record.id})" if doing == "apply" else ""
    record.error = (
        f"the {doing} was interrupted (its run ended before finishing): run it again to "
        f"finish it (fileorg {doing} {record.id}){undo}"
    )  # a rollback is only finished: an apply waits for it (stopped_rolling_back)


PLAN_STAGES = ("scan", "classify", "prefix", "hash", "plan", "report")  # the organize flow's


def planning_interrupted(record: OperationRecord) -> bool:
    """An organize interrupted before its plan was made: nothing changed, nothing to apply or
    roll back yet; it resumes as an organize (not as the apply an interrupted apply is)."""
    return record.status == "interrupted" and record.stage in PLAN_STAGES


def interrupt_planning(record: OperationRecord, resume: str) -> bool:
    """Mark an organize stopped (Ctrl-C, SIGTERM, SIGHUP) in a stage of its plan as
    interrupted, `resume` the line saying how to go on; False (unchanged) when it had got
    further (an apply)."""
    if record.status not in (*ACTIVE, "failed") and not planning_interrupted(record):
        return False
    if record.stage not in (None, *PLAN_STAGES):
        return False
    record.stage = record.stage or PLAN_STAGES[0]  # stopped before its first stage began
    record.status, record.error = "interrupted", resume
    return True


def applying(record: OperationRecord) -> bool:
    """An apply was under way: a run of the operation resumes it as one."""
    return record.status in APPLYING and not planning_interrupted(record)


def applicable(record: OperationRecord) -> bool:
    """An apply runs from here: a reviewed plan, or an apply to finish."""
    return record.status in APPLICABLE and not planning_interrupted(record)


def stopped_rolling_back(record: OperationRecord) -> str | None:
    """The line refusing an apply of an operation whose rollback was interrupted."""
    if record.status == "interrupted" and record.stage == "rollback":
        return (
            f"operation {record.id} was interrupted while rolling back: finish the rollback "
            f"first (fileorg rollback {record.id})"
        )
    return None


def changed_files(record: OperationRecord) -> bool:
    """The operation moved files under its root (or may have: it was stopped while applying)."""
    if record.status in CHANGING:
        return not planning_interrupted(record)
    return record.status == "failed" and record.stage in ("apply", "rollback")


def changes_since(
    store: DataStore, record: OperationRecord, since: datetime
) -> Iterator[OperationRecord]:
    """Other operations, newest first, that changed files under this one's root (or a root
    that overlaps it) and whose record changed after `since`."""
    from storage.roots import overlaps

    for other in list_all(store):
        if (
            other.id != record.id
            and other.updated_at > since
            and changed_files(other)
            and overlaps(other.root, record.root)
        ):
            yield other


def newer_change(store: DataStore, record: OperationRecord) -> OperationRecord | None:
    """The newest other operation that changed files under an overlapping root after this one
    was created, when its scan began: the plan may no longer describe the tree."""
    return next(changes_since(store, record, record.created_at), None)


def stale_refusal(store: DataStore, record: OperationRecord) -> str | None:
    """The line refusing to apply a plan another operation changed its tree under since (the
    CLI adds its --force, the API has none); None when the plan is still the tree's."""
    newer = newer_change(store, record)
    if newer is None:
        return None
    when = newer.updated_at.astimezone().strftime("%Y-%m-%d %H:%M")
    return (
        f"the plan of {record.id} is stale: operation {newer.id} ({newer.status}, {when}) "
        f"changed {newer.root} after it was made; plan again"
    )


def repeat_refusal(
    record: OperationRecord, request: Literal["apply", "rollback"], undo: str | None = None
) -> str | None:
    """The one line that refuses repeating a finished apply or rollback, the same words in the
    CLI (exit 2) and the API (409), each naming its own way to undo (`undo`: the API's request;
    the CLI's command by default); None when the request may go on."""
    if request == "apply" and record.status in ("applied", "partial"):
        return (
            f"operation {record.id} is already applied: nothing to do "
            f"(undo it with {undo or f'fileorg rollback {record.id}'})"
        )
    if request == "rollback" and record.status == "rolled_back":
        return f"operation {record.id} is already rolled back: nothing to undo"
    return None


# --- status rules: what a run may start from (the flows refuse, the API answers 409) ------------

ACTIVE: tuple[Status, ...] = ("pending", "running")  # an organize under way
APPLICABLE = frozenset({"planned", "applying", "interrupted"})  # an apply runs from these
APPLYING = frozenset({"applying", "interrupted"})  # an apply was under way: it resumes as one
RESUMABLE = frozenset({*ACTIVE, "failed", *APPLICABLE})  # an organize may run again on these


def check_can_organize(record: OperationRecord) -> None:
    """A run of the organize flow on an existing record resumes what did not finish (the flow
    then checks the root's identity, then `stopped_rolling_back`)."""
    if record.status not in RESUMABLE:
        raise OperationStateError(f"operation {record.id} is already {record.status}")


def check_can_apply(record: OperationRecord) -> None:
    """Apply needs a finished dry run (`planned`), or an interrupted apply or organize to
    finish; never after a rollback (the plan describes a tree that is gone)."""
    stopped = stopped_rolling_back(record)
    if stopped:
        raise OperationStateError(stopped)
    if record.status in ("applied", "partial"):
        raise OperationStateError(f"operation {record.id} is already applied")
    if record.status in ("rolling_back", "rolled_back", "rollback_incomplete"):
        raise OperationStateError(f"operation {record.id} was rolled back; plan it again")
    if applicable(record):
        return  # an interrupted apply resumes: the journal says what is done
    if not record.dry_run and (
        record.status in ("running", "failed", "pending") or planning_interrupted(record)
    ):
        return  # an interrupted organize: finish planning, then apply
    raise OperationStateError(
        f"operation {record.id} is not a finished dry run (status: {record.status})"
    )


def check_can_roll_back(store: DataStore, record: OperationRecord) -> bool:
    """True when there is something to undo; False when it was all undone already."""
    if record.status == "rolled_back":
        return False
    if record.status in CHANGING and not planning_interrupted(record):
        return True  # interrupted too: the journal knows what was done
    if has_applied_anything(store, store.operation_dir(record.id)):
        return True  # an organize interrupted in its apply stage
    raise OperationStateError(f"operation {record.id} was never applied: nothing to roll back")
