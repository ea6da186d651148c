"""/api/v1/operations: start, list, read, apply, cancel, roll back; plan, duplicates, report."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from api import manifests
from api.deps import (
    CurrentUser,
    ListingPageDep,
    OperationsDep,
    OwnedOperation,
    ReaderDep,
    ServiceFoldersDep,
    StoreDep,
)
from api.orchestrator import RunStatus
from api.routes import errors
from api.schemas import (
    DuplicatesPublic,
    OperationCreate,
    OperationPublic,
    OperationsPublic,
    OperationStarted,
    PlanAction,
    PlanOutcome,
    PlanPublic,
    ReportPublic,
)

router = APIRouter(prefix="/operations", tags=["operations"])
ACCEPTED = status.HTTP_202_ACCEPTED


@router.post("", status_code=ACCEPTED, responses=errors(400, 401, 403, 409, 503))
async def start_operation(
    body: OperationCreate, user: CurrentUser, service: OperationsDep, folders: ServiceFoldersDep
) -> OperationStarted:
    return await service.start(user, body, folders)


@router.get("", responses=errors(401), response_model=OperationsPublic)
async def list_operations(
    reader: ReaderDep,
    page: ListingPageDep,
    status: Annotated[RunStatus | None, Query(description="Only runs in this state")] = None,
) -> Response:
    return await reader.operations(status, page.limit, page.offset, page.cursor)


@router.get("/{operation_id}", responses=errors(401, 404), response_model=OperationPublic)
async def read_operation(reader: ReaderDep, operation_id: Annotated[uuid.UUID, Path()]) -> Response:
    return await reader.operation(operation_id)


@router.get("/{operation_id}/plan", responses=errors(400, 401, 404, 409))
async def read_plan(
    op: OwnedOperation,
    store: StoreDep,
    page: ListingPageDep,
    action: Annotated[PlanAction | None, Query(description="Only this action")] = None,
    outcome: Annotated[
        PlanOutcome | None, Query(description="Only files whose apply or rollback ended so")
    ] = None,
) -> PlanPublic:
    return await manifests.plan(
        store, op, page, action.value if action else None, outcome.value if outcome else None
    )


@router.post("/{operation_id}/apply", status_code=ACCEPTED, responses=errors(401, 404, 409, 503))
async def apply_operation(op: OwnedOperation, service: OperationsDep) -> OperationStarted:
    return await service.apply(op)


@router.post("/{operation_id}/cancel", status_code=ACCEPTED, responses=errors(401, 404, 409, 503))
async def cancel_operation(op: OwnedOperation, service: OperationsDep) -> OperationStarted:
    return await service.cancel(op)


@router.post("/{operation_id}/rollback", status_code=ACCEPTED, responses=errors(401, 404, 409, 503))
async def rollback_operation(
    op: OwnedOperation, user: CurrentUser, service: OperationsDep
) -> OperationStarted:
    return await service.rollback(user, op)


@router.get("/{operation_id}/duplicates", responses=errors(400, 401, 404, 409))
async def read_duplicates(
    op: OwnedOperation, store: StoreDep, page: ListingPageDep
) -> DuplicatesPublic:
    return await manifests.duplicates(store, op, page)


@router.get("/{operation_id}/report", responses=errors(401, 404, 409))
async def read_report(op: OwnedOperation, store: StoreDep) -> ReportPublic:
    return await manifests.report(store, op)
