"""/api/v1/files: the files of one operation, filtered, sorted and paged."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api import manifests
from api.deps import PageDep, QueriedOperation, StoreDep
from api.routes import errors
from api.schemas import FileSort, FilesPublic

router = APIRouter(tags=["files"])
MAX_SIZE = 2**62


@router.get("/files", responses=errors(401, 404, 409))
async def list_files(
    op: QueriedOperation,
    store: StoreDep,
    page: PageDep,
    category: Annotated[str | None, Query(max_length=64)] = None,
    year: Annotated[int | None, Query(ge=1, le=9999)] = None,
    extension: Annotated[str | None, Query(max_length=32)] = None,
    min_size: Annotated[int | None, Query(ge=0, le=MAX_SIZE, description="Bytes")] = None,
    max_size: Annotated[int | None, Query(ge=0, le=MAX_SIZE, description="Bytes")] = None,
    name: Annotated[str | None, Query(max_length=255, description="Part of the path")] = None,
    sort: FileSort = FileSort.path,
    descending: bool = False,
) -> FilesPublic:
    filters = {
        "category": category,
        "year": year,
        "ext": extension,
        "min_size": min_size,
        "max_size": max_size,
        "name": name,
        "sort": sort.value,
        "descending": descending,
        "limit": page.limit,
        "offset": page.offset,
    }
    return await manifests.files(store, op, filters)
