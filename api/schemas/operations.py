"""Operations and what they read: plans, duplicate groups, files, reports.

Paths leave the API as display text: names that are not UTF-8 show their bytes as `\\xNN`
escapes (JSON cannot carry the raw bytes).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from typing_extensions import TypeAliasType

from api.orchestrator import RunStatus
from api.schemas.strict import MAX_PATH, Strict
from storage import operations as policies
from storage.errors import InvalidPlanOptions
from storage.operations import AlbumsPolicy, LayoutMode, ProjectsPolicy, UndatedPolicy
from storage.templates import check_exclude, check_template


class OperationType(StrEnum):
    organize = "organize"
    dedupe = "dedupe"  # a dry run whose result is read as duplicate groups; never applied
    scan = "scan"  # a dry run: listing, categories, report; never applied


# storage.operations' policies, each under its name in the OpenAPI schema (a component that
# clients refer to, as an enum class would give): the values are never spelled here.
OrganizationMode = TypeAliasType(
    "OrganizationMode", Annotated[LayoutMode, Field(title="OrganizationMode")]
)
DuplicatesPolicy = TypeAliasType(
    "DuplicatesPolicy", Annotated[policies.DuplicatesPolicy, Field(title="DuplicatesPolicy")]
)
KeepPolicy = TypeAliasType("KeepPolicy", Annotated[policies.KeepPolicy, Field(title="KeepPolicy")])


class OperationCreate(Strict):
    root_path: str = Field(min_length=1, max_length=MAX_PATH)
    operation_type: OperationType = OperationType.organize
    organization_mode: OrganizationMode = "category_year"
    template: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="A layout such as '{category}/{year}/{name}' (overrides organization_mode)",
    )
    dry_run: bool = True
    duplicates: DuplicatesPolicy = "report"
    keep: KeepPolicy = "oldest"
    include_empty: bool = False
    exclude: list[str] = Field(default_factory=list, max_length=100)
    include_hidden: bool = False
    projects: ProjectsPolicy = "leave"
    albums: AlbumsPolicy = "tags"
    keep_subfolders: bool = False
    undated: UndatedPolicy = "mtime"
    keep_empty_folders: bool = False
    i_mean_it: bool = Field(
        default=False,
        description="Organize a whole home folder (/root, /home/NAME), as the CLI's --i-mean-it;"
        " a system folder is refused whatever this says",
    )

    @field_validator("template")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        # The planner's own rule (storage.templates), so the API refuses what the flow would.
        if value is not None:
            try:
                check_template(value)
            except InvalidPlanOptions as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("exclude")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        try:
            check_exclude(value)  # the CLI's rule too
        except InvalidPlanOptions as exc:
            raise ValueError(str(exc)) from None
        return value


class OperationStarted(BaseModel):
    operation_id: uuid.UUID
    status: RunStatus


class StageTimingPublic(BaseModel):
    seconds: float | None = None
    files: int = 0
    bytes: int = 0


class OperationPublic(BaseModel):
    id: uuid.UUID
    operation_type: str
    root_path: str
    dry_run: bool
    parameters: dict[str, Any]
    source_operation_id: uuid.UUID | None
    run: Literal["organize", "apply", "rollback"] = Field(description="What the last run did")
    flow_run_id: str | None
    status: RunStatus = Field(description="The last run's state")
    state: str | None = Field(
        description="The operation's own record: planned, applied, rolled_back..."
    )
    stage: str | None
    stages: dict[str, StageTimingPublic]
    summary: dict[str, Any]
    error: str | None
    created_at: datetime
    updated_at: datetime
    schedule_id: str | None = Field(
        default=None, description="The schedule that started this run (GET /schedules/{id})"
    )
    synced_at: datetime | None = Field(
        default=None,
        description="When state, stage, stages and summary were last read from the operation's"
        " record (null: not yet; the service fills it within seconds)",
    )


NEXT_CURSOR = "Pass as `cursor` (same filters and order) for the next page; null on the last page"


class OperationsPublic(BaseModel):
    data: list[OperationPublic]
    count: int
    next_cursor: str | None = Field(default=None, description=NEXT_CURSOR)


class PlanItemPublic(BaseModel):
    src: str
    dst: str | None
    action: str
    reason: str | None
    size: int | None
    category: str | None
    year: int | None
    link_to: str | None
    # The same facts, under the same names, as `fileorg plan --json` (storage.queries.plan_query).
    reason_code: str | None = Field(
        default=None,
        description="Why, as a code (storage.manifests.REASON_CODES: duplicate, hidden, junk...);"
        " null in plans written before it existed",
    )
    kind: str | None = Field(
        default=None, description="file, dir (a folder moved or left alone whole), symlink..."
    )
    unit: str | None = Field(
        default=None, description="The folder left alone whole that holds this entry, if any"
    )
    twin: str | None = Field(
        default=None,
        description="Duplicates: the copy kept, or the copy already at the destination",
    )
    date_source: str | None = Field(
        default=None, description="Where the year came from: exif, media, filename, mtime, none"
    )
    apply_outcome: str | None = Field(
        default=None,
        description=(
            "applied, skipped, conflict, failed, unfinished; null before apply (after it, a row"
            " the plan skips is skipped, for the plan's reason)"
        ),
    )
    rollback_outcome: str | None = Field(
        default=None, description="restored, refused, unfinished; null before rollback"
    )
    outcome_reason: str | None = Field(default=None, description="Why it was not carried out")


class PlanPublic(BaseModel):
    data: list[PlanItemPublic]
    count: int
    next_cursor: str | None = Field(default=None, description=NEXT_CURSOR)


class PlanAction(StrEnum):
    move = "move"
    keep = "keep"
    skip = "skip"
    quarantine = "quarantine"
    hardlink = "hardlink"


class PlanOutcome(StrEnum):
    """What apply or rollback made of a planned file (storage.outcomes.OUTCOMES)."""

    applied = "applied"
    skipped = "skipped"
    conflict = "conflict"
    failed = "failed"
    unfinished = "unfinished"
    restored = "restored"
    refused = "refused"


class DuplicateGroupPublic(BaseModel):
    digest: str
    size: int
    copies: int
    wasted_bytes: int
    paths: list[str]


class DuplicatesPublic(BaseModel):
    data: list[DuplicateGroupPublic]
    count: int
    next_cursor: str | None = Field(default=None, description=NEXT_CURSOR)


class FileSort(StrEnum):
    path = "path"
    size = "size"
    date = "date"
    name = "name"


class FilePublic(BaseModel):
    path: str
    size: int | None
    mtime_ns: int | None
    category: str | None
    ext: str | None
    date: datetime | None
    date_source: str | None
    year: int | None


class FilesPublic(BaseModel):
    data: list[FilePublic]
    count: int
    next_cursor: str | None = Field(default=None, description=NEXT_CURSOR)


class ReportPublic(BaseModel):
    """report.json as the organize flow wrote it, plus apply and rollback outcomes."""

    model_config = ConfigDict(extra="allow")

    operation_id: str
    root: str
    dry_run: bool
    files: int
    bytes: int
    by_category: dict[str, dict[str, int]]
    by_year: dict[str, dict[str, int]]
    duplicates: dict[str, Any]
    plan: dict[str, int]
    errors: dict[str, Any]
    stages: dict[str, Any]
    apply: dict[str, int] | None = None
    rollback: dict[str, Any] | None = None
