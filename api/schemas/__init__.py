"""Request and response bodies (Pydantic), in families: XCreate in, XPublic out, XsPublic pages.

One module per concern (strict: the base every request body takes; accounts, operations,
health, schedules); every name is importable from `api.schemas` as before.
"""

from __future__ import annotations

from api.schemas.accounts import (
    LoginRequest,
    RefreshRequest,
    RootGrantCreate,
    RootGrantPublic,
    RootGrantsPublic,
    SignupRequest,
    TokenPair,
    UserPublic,
    UsersPublic,
)
from api.schemas.health import (
    ComponentStatus,
    HealthPublic,
    StatusPublic,
)
from api.schemas.operations import (
    DuplicateGroupPublic,
    DuplicatesPolicy,
    DuplicatesPublic,
    FilePublic,
    FileSort,
    FilesPublic,
    KeepPolicy,
    OperationCreate,
    OperationPublic,
    OperationsPublic,
    OperationStarted,
    OperationType,
    OrganizationMode,
    PlanAction,
    PlanItemPublic,
    PlanOutcome,
    PlanPublic,
    ReportPublic,
    StageTimingPublic,
)
from api.schemas.schedules import (
    ScheduleCreate,
    SchedulePublic,
    SchedulesPublic,
)
from api.schemas.strict import (
    EMAIL_PATTERN,
    MAX_PATH,
    USERNAME_PATTERN,
    ErrorPublic,
    Strict,
)

__all__ = [
    "EMAIL_PATTERN",
    "MAX_PATH",
    "USERNAME_PATTERN",
    "ComponentStatus",
    "DuplicateGroupPublic",
    "DuplicatesPolicy",
    "DuplicatesPublic",
    "ErrorPublic",
    "FilePublic",
    "FileSort",
    "FilesPublic",
    "HealthPublic",
    "KeepPolicy",
    "LoginRequest",
    "OperationCreate",
    "OperationPublic",
    "OperationStarted",
    "OperationType",
    "OperationsPublic",
    "OrganizationMode",
    "PlanAction",
    "PlanItemPublic",
    "PlanOutcome",
    "PlanPublic",
    "RefreshRequest",
    "ReportPublic",
    "RootGrantCreate",
    "RootGrantPublic",
    "RootGrantsPublic",
    "ScheduleCreate",
    "SchedulePublic",
    "SchedulesPublic",
    "SignupRequest",
    "StageTimingPublic",
    "StatusPublic",
    "Strict",
    "TokenPair",
    "UserPublic",
    "UsersPublic",
]
