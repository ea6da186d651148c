"""Request and response bodies (Pydantic), in families: XCreate in, XPublic out, XsPublic pages.

Paths leave the API as display text: names that are not UTF-8 show their bytes as `\\xNN`
escapes (JSON cannot carry the raw bytes).

Request bodies are read strictly: unknown fields are refused, and booleans and numbers must be
JSON booleans and numbers (`"dry_run": "no"` is 422, not false); strings that are not valid
Unicode (a lone surrogate) are 422 as well.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from typing_extensions import TypeAliasType

from api.orchestrator import RunStatus, validate_cron
from api.password_policy import password_problem
from storage import operations as policies
from storage.cron import InvalidSchedule, check_timezone
from storage.errors import InvalidPlanOptions
from storage.operations import AlbumsPolicy, LayoutMode, ProjectsPolicy, UndatedPolicy
from storage.templates import check_template

MAX_PATH = 4096
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
USERNAME_PATTERN = r"^[A-Za-z0-9_.-]+$"


def _lone_surrogate(value: object) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, list | tuple):
        return any(_lone_surrogate(v) for v in value)
    if isinstance(value, dict):
        return any(_lone_surrogate(k) or _lone_surrogate(v) for k, v in value.items())
    return False


def _exact_kind(annotation: Any) -> type | None:
    """bool or int when that is what the field holds (optionally None), else None."""
    if get_origin(annotation) in (Union, UnionType):
        kinds = [a for a in get_args(annotation) if a is not type(None)]
        annotation = kinds[0] if len(kinds) == 1 else None
    return annotation if annotation in (bool, int) else None


class Strict(BaseModel):
    """A request body: unknown fields refused, every string valid Unicode, every boolean and
    integer field taking only JSON booleans and integers (Pydantic's lax mode reads "no" as
    false, 1 as true and "300" as 300). A check in the base, not per field, so a field added
    later is strict too; tests/api/test_input.py holds every request schema to it."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _exact(cls, value: object, info: ValidationInfo) -> object:
        # Python's JSON decoder lets `"\ud800"` through; no database can store it (and the
        # error echoing it became a 500: issue 12 #12).
        if _lone_surrogate(value):
            raise ValueError("must be valid Unicode text (a lone surrogate such as \\ud800 is not)")
        kind = _exact_kind(cls.model_fields[info.field_name or ""].annotation)
        if value is None or kind is None:
            return value
        if kind is bool and not isinstance(value, bool):
            raise ValueError("must be a JSON boolean: true or false")
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError("must be a JSON integer")
        return value


class ErrorPublic(BaseModel):
    detail: str


# --- accounts -------------------------------------------------------------------------------


class SignupRequest(Strict):
    email: str = Field(max_length=320, pattern=EMAIL_PATTERN)
    username: str = Field(min_length=3, max_length=64, pattern=USERNAME_PATTERN)
    password: str = Field(min_length=8, max_length=256, description="See docs/security.md")
    full_name: str | None = Field(default=None, max_length=200)

    @field_validator("email")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()

    @field_validator("password")
    @classmethod
    def _policy(cls, value: str, info: ValidationInfo) -> str:
        problem = password_problem(value, info.data.get("username", ""), info.data.get("email", ""))
        if problem is not None:
            raise PydanticCustomError("password_policy", problem)
        return value


class LoginRequest(Strict):
    username: str = Field(min_length=1, max_length=320, description="Username or email")
    password: str = Field(min_length=1, max_length=256)


class RefreshRequest(Strict):
    refresh_token: str = Field(min_length=1, max_length=4096)


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires")


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    username: str
    full_name: str | None
    is_admin: bool
    created_at: datetime
    roots: list[str] = Field(default_factory=list)


class UsersPublic(BaseModel):
    data: list[UserPublic]
    count: int


class RootGrantCreate(Strict):
    root: str = Field(min_length=1, max_length=MAX_PATH)


class RootGrantPublic(BaseModel):
    id: uuid.UUID
    root: str
    created_at: datetime


class RootGrantsPublic(BaseModel):
    data: list[RootGrantPublic]
    count: int


# --- operations -----------------------------------------------------------------------------


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
        for pattern in value:
            if not pattern or len(pattern) > 255 or "\x00" in pattern:
                raise ValueError("each exclude pattern must be 1-255 characters, without NUL")
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


class OperationsPublic(BaseModel):
    data: list[OperationPublic]
    count: int


class PlanItemPublic(BaseModel):
    src: str
    dst: str | None
    action: str
    reason: str | None
    size: int | None
    category: str | None
    year: int | None
    link_to: str | None
    apply_outcome: str | None = Field(
        default=None,
        description="applied, skipped, conflict, failed, unfinished; null before apply",
    )
    rollback_outcome: str | None = Field(
        default=None, description="restored, refused, unfinished; null before rollback"
    )
    outcome_reason: str | None = Field(default=None, description="Why it was not carried out")


class PlanPublic(BaseModel):
    data: list[PlanItemPublic]
    count: int


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


# --- health ---------------------------------------------------------------------------------


class HealthPublic(BaseModel):
    status: Literal["ok"] = "ok"


class ComponentStatus(BaseModel):
    ok: bool
    version: str | None = None
    error: str | None = None


class StatusPublic(BaseModel):
    status: Literal["ready", "degraded"]
    version: str
    database: ComponentStatus
    prefect: ComponentStatus


# --- schedules ------------------------------------------------------------------------------


class ScheduleCreate(OperationCreate):
    """An operation to start on a schedule: a cron expression or an interval, in a timezone.

    Every run is a new operation on the scheduled-cleanup deployment; a dry run only plans.
    A cron has five fields and must fire within a year (storage.cron, the CLI's rule too); an
    interval is at least the operator's minimum (checked by the route: it is a setting).
    """

    timezone: str = Field(default="UTC", min_length=1, max_length=64)
    cron: str | None = Field(default=None, min_length=1, max_length=120, examples=["0 3 * * 0"])
    interval_seconds: int | None = Field(default=None, ge=1, le=366 * 86400)
    active: bool = True

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            check_timezone(value)
        except InvalidSchedule as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        try:
            return validate_cron(value, info.data.get("timezone", "UTC"))
        except InvalidSchedule as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _one_rule(self) -> ScheduleCreate:
        if (self.cron is None) == (self.interval_seconds is None):
            raise ValueError("give exactly one of cron and interval_seconds")
        return self


class SchedulePublic(BaseModel):
    id: uuid.UUID
    operation_type: str
    root_path: str
    dry_run: bool
    parameters: dict[str, Any]
    cron: str | None
    interval_seconds: float | None
    timezone: str | None
    active: bool = Field(description="False when paused (here or in the Prefect UI)")


class SchedulesPublic(BaseModel):
    data: list[SchedulePublic]
    count: int
