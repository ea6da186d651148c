"""/api/v1/files: the files of one operation, filtered, sorted and paged."""

from __future__ import annotations

from fastapi import APIRouter

from api import manifests
from api.deps import FileFilters, ListingPageDep, QueriedOperation, StoreDep
from api.routes import errors
from api.schemas import FilesPublic

router = APIRouter(tags=["files"])


@router.get("/files", responses=errors(400, 401, 404, 409))
async def list_files(
    filters: FileFilters, op: QueriedOperation, store: StoreDep, page: ListingPageDep
) -> FilesPublic:
    return await manifests.files(store, op, filters, page)
