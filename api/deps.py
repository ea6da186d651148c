"""Everything a route needs, as Annotated aliases: routes read input, call one function, return.

The app's state (engine, password hasher, limiter, orchestrator, secret) is built by the
lifespan in api.main; these dependencies hand it to routes and let tests override each part.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import Select, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from api import operation_reads, schedules, security
from api.accounts import Accounts
from api.config import Settings, get_settings
from api.errors import Forbidden, Unauthorized
from api.manifests import ListingPage
from api.models import Operation, RefreshToken, User
from api.operations import OperationService
from api.orchestrator import Orchestrator, ScheduleInfo, Scheduler
from api.ratelimit import Attempts, RateLimiter
from api.read_cache import Reader, answer_key, identity_key
from api.schemas import FileSort
from api.security import Passwords
from api.service_folders import ServiceFolders, service_folders
from storage.locations import DataStore
from storage.vocabulary import CATEGORIES

MAX_PAGE = 500
MAX_OFFSET = 2**31

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/login", auto_error=False)

SettingsDep = Annotated[Settings, Depends(get_settings)]


def settings_of(app: FastAPI) -> Settings:
    """The settings outside a request (lifespan, middleware, sockets), honouring the tests'
    `app.dependency_overrides[get_settings]` as a request's would."""
    provider = app.dependency_overrides.get(get_settings, get_settings)
    settings: Settings = provider()
    return settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessions() as session:
        yield session


def _from_state(name: str) -> Any:
    """A dependency handing over what the lifespan put on the app's state (api.main)."""

    async def dependency(request: Request) -> Any:  # async: no thread-pool hop
        return getattr(request.app.state, name)

    dependency.__name__ = f"get_{name}"
    return Depends(dependency)


def get_store(settings: SettingsDep) -> DataStore:
    return settings.store()


def get_service_folders(settings: SettingsDep) -> ServiceFolders:
    return service_folders(settings)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


SessionDep = Annotated[AsyncSession, Depends(get_session)]
OrchestratorDep = Annotated[Orchestrator, _from_state("orchestrator")]
PasswordsDep = Annotated[Passwords, _from_state("passwords")]
LimiterDep = Annotated[RateLimiter, _from_state("limiter")]
SecretDep = Annotated[str, _from_state("secret")]
StoreDep = Annotated[DataStore, Depends(get_store)]
ClientAddress = Annotated[str, Depends(client_address)]
ServiceFoldersDep = Annotated[ServiceFolders, Depends(get_service_folders)]


def attempts(limiter: LimiterDep, address: ClientAddress) -> Attempts:
    return Attempts(limiter, address)


AttemptsDep = Annotated[Attempts, Depends(attempts)]


def account_service(
    session: SessionDep,
    passwords: PasswordsDep,
    settings: SettingsDep,
    secret: SecretDep,
    attempts: AttemptsDep,
) -> Accounts:
    return Accounts(session, passwords, settings, secret, attempts)


AccountsDep = Annotated[Accounts, Depends(account_service)]


def access_subject(claims: dict[str, Any]) -> tuple[uuid.UUID, str]:
    """The user id and login (refresh-token family) a checked access token names."""
    family = claims.get("fam")
    try:
        user_id = uuid.UUID(claims["sub"])
    except ValueError:
        raise Unauthorized("invalid or expired token") from None
    if not isinstance(family, str):
        raise Unauthorized("invalid or expired token")
    return user_id, family


def signed_in(user_id: uuid.UUID, family: str) -> Select[User]:
    """The user, unless its login was revoked. An access token dies with its login: logout
    (or a detected refresh-token reuse) revokes the family, and this one indexed lookup, made
    with the user's, sees it at once."""
    revoked = exists().where(RefreshToken.family_id == family, RefreshToken.revoked_at.is_not(None))
    return select(User).where(User.id == user_id, ~revoked)


async def current_user(
    session: SessionDep, secret: SecretDep, token: Annotated[str | None, Depends(oauth2)]
) -> User:
    if not token:
        raise Unauthorized()
    user = await session.scalar(
        signed_in(*access_subject(security.decode(secret, token, "access")))
    )
    if user is None or not user.is_active:
        raise Unauthorized("invalid or expired token")
    return user


CurrentUser = Annotated[User, Depends(current_user)]


async def reader(request: Request, token: Annotated[str | None, Depends(oauth2)]) -> Reader:
    """The cached reads (api.read_cache) of the token's user: the token is checked on every
    request, the user behind it once per change of the database."""
    if not token:
        raise Unauthorized()
    state = request.app.state
    user_id, family = access_subject(state.tokens.decode(token))

    async def active() -> bool:
        async with state.sessions() as session:
            user = await session.scalar(signed_in(user_id, family))
            return user is not None and user.is_active

    if not await state.reads.get(identity_key(user_id, family), active):
        raise Unauthorized("invalid or expired token")
    key = answer_key(user_id, request.scope["path"], request.scope["query_string"])
    return Reader(state.reads, state.sessions, user_id, key)


ReaderDep = Annotated[Reader, Depends(reader)]


def admin_user(user: CurrentUser) -> User:
    if not user.is_admin:
        raise Forbidden("admins only")
    return user


AdminUser = Annotated[User, Depends(admin_user)]


async def operation_of(session: AsyncSession, user: User, operation_id: uuid.UUID) -> Operation:
    """The user's operation (also for api.ws, which authenticates outside the dependencies)."""
    return await operation_reads.owned(session, user.id, operation_id)


async def owned_operation(
    session: SessionDep, user: CurrentUser, operation_id: Annotated[uuid.UUID, Path()]
) -> Operation:
    return await operation_of(session, user, operation_id)


async def queried_operation(
    session: SessionDep, user: CurrentUser, operation_id: Annotated[uuid.UUID, Query()]
) -> Operation:
    return await operation_of(session, user, operation_id)


OwnedOperation = Annotated[Operation, Depends(owned_operation)]
QueriedOperation = Annotated[Operation, Depends(queried_operation)]


@dataclass(frozen=True)
class Page:
    limit: int
    offset: int


async def page(  # async: FastAPI runs a plain def in its thread pool, a hop per request
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Rows per page")] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Rows to skip")] = 0,
) -> Page:
    return Page(limit, offset)


PageDep = Annotated[Page, Depends(page)]
MAX_CURSOR = 4096


def listing_page(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Rows per page")] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Rows to skip")] = 0,
    cursor: Annotated[
        str | None,
        Query(
            max_length=MAX_CURSOR,
            description="The `next_cursor` of the page before, with the same filters and"
            " order: the rows after its last row (no row repeats or is skipped while rows are"
            " added). Not with `offset`.",
        ),
    ] = None,
) -> ListingPage:
    """A page of a listing (files, plan, duplicates, operations): by offset, or after a
    cursor."""
    return ListingPage(limit, offset, cursor)


ListingPageDep = Annotated[ListingPage, Depends(listing_page)]
MAX_SIZE = 2**62


def file_filters(
    category: Annotated[str | None, Query(max_length=64)] = None,
    year: Annotated[int | None, Query(ge=1, le=9999)] = None,
    extension: Annotated[str | None, Query(max_length=32)] = None,
    min_size: Annotated[int | None, Query(ge=0, le=MAX_SIZE, description="Bytes")] = None,
    max_size: Annotated[int | None, Query(ge=0, le=MAX_SIZE, description="Bytes")] = None,
    name: Annotated[str | None, Query(max_length=255, description="Part of the path")] = None,
    sort: FileSort = FileSort.path,
    descending: bool = False,
) -> dict[str, Any]:
    """The /files filters and order, as storage.queries.file_rows takes them."""
    return {
        "category": known_category(category),
        "year": year,
        "ext": extension,
        "min_size": min_size,
        "max_size": max_size,
        "name": name,
        "sort": sort.value,
        "descending": descending,
    }


FileFilters = Annotated[dict[str, Any], Depends(file_filters)]


def known_category(category: str | None) -> str | None:
    """A category classify gives (any case, as the CLI takes it): a typo is 422, as
    `fileorg files --category` refuses it, not an empty page that reads as "no such files"."""
    if category is None or category.lower() in CATEGORIES:
        return category
    error = {
        "type": "enum",
        "loc": ("query", "category"),
        "msg": f"unknown category {category!r}: use {', '.join(CATEGORIES)}",
        "input": category,
    }
    raise RequestValidationError([error])


def operation_service(
    request: Request, session: SessionDep, orchestrator: OrchestratorDep, store: StoreDep
) -> OperationService:
    state = request.app.state
    return OperationService(session, orchestrator, store, state.start_lock, state.secret)


OperationsDep = Annotated[OperationService, Depends(operation_service)]


def get_scheduler(orchestrator: OrchestratorDep) -> Scheduler:
    return schedules.scheduler_of(orchestrator)


SchedulerDep = Annotated[Scheduler, Depends(get_scheduler)]


async def owned_schedule(
    scheduler: SchedulerDep, user: CurrentUser, schedule_id: Annotated[uuid.UUID, Path()]
) -> ScheduleInfo:
    return await schedules.owned(scheduler, user.id, schedule_id)


OwnedSchedule = Annotated[ScheduleInfo, Depends(owned_schedule)]


def schedule_service(
    request: Request,
    session: SessionDep,
    scheduler: SchedulerDep,
    settings: SettingsDep,
    secret: SecretDep,
) -> schedules.ScheduleService:
    return schedules.ScheduleService(request.app, session, scheduler, settings, secret)


SchedulesDep = Annotated[schedules.ScheduleService, Depends(schedule_service)]
