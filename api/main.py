"""The FastAPI app: `uvicorn api.main:app` (Swagger at /docs; Authorize uses the login form).

Nothing is built at import time but the app object: the lifespan reads the settings (honouring
`app.dependency_overrides[get_settings]`), refuses a weak secret, applies migrations and opens
the database.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from api import db, errors, ws
from api.changes import for_database
from api.deps import settings_of
from api.events import EventHub
from api.fast_reads import FastReads
from api.health import app_version
from api.keeper import Keeper, app_events
from api.orchestrator import Orchestrator, PrefectOrchestrator
from api.ratelimit import RateLimiter
from api.read_cache import Memo
from api.routes import admin, auth, files, health, operations, schedules
from api.security import AccessTokens, Passwords

API_PREFIX = "/api/v1"
log = logging.getLogger("api")


# The collector's thresholds while the app serves. A full collection walks every object the
# process holds (about 150,000 once the app is up: 40-70 ms here), and every request waiting
# meanwhile waits with it: at 100 connections that was the p99 over 50 ms in 4 of 15
# measurements with Python's (700, 10, 10), none of 6 with these (bench/README, issue #15).
# Fewer young collections make the full ones rare; what cycles a request leaves (few: the
# reads are kept bytes) waits longer to be freed.
SERVER_GC = (50_000, 20, 100)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = settings_of(app)
    state = app.state
    state.settings = settings
    state.secret = settings.resolved_secret()
    url = settings.resolved_database_url()
    if settings.migrate_on_startup:
        await run_in_threadpool(db.upgrade, url)
    engine = db.create_engine(url)
    # What GET /operations, /operations/{id} and /auth/me render is kept until the database
    # changes (api.read_cache); the app's own commits and other processes' are both seen.
    changes = for_database(url)
    await changes.start()
    state.reads = Memo(changes)
    state.tokens = AccessTokens(state.secret)
    state.sessions = db.sessionmaker(engine, changes)
    state.passwords = await run_in_threadpool(
        Passwords, settings.argon2_time_cost, settings.argon2_memory_kib
    )
    state.limiter = RateLimiter(settings.auth_window_seconds)
    state.start_lock = asyncio.Lock()
    if getattr(state, "orchestrator", None) is None:
        state.orchestrator = PrefectOrchestrator(settings.prefect_timeout_seconds)
    # One Prefect event subscription for this process's WebSockets (api.ws) and its status
    # cache (api.keeper, which also confirms unfinished runs at once, in the background).
    state.hub = EventHub(app_events(app))
    state.keeper = Keeper(app)
    state.hub.start()
    state.keeper.start()
    collector = gc.get_threshold()
    gc.set_threshold(*SERVER_GC)
    try:
        yield
    finally:
        gc.set_threshold(*collector)  # a test's process goes on with its own
        await state.keeper.close()
        await state.hub.close()
        await changes.close()
        await engine.dispose()


class SettingsCORS:
    """CORS for the origins in the settings, read per request (settings are not built at import)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._handlers: dict[tuple[str, ...], ASGIApp] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origins = tuple(settings_of(scope["app"]).cors_origins)
        handler = self._handlers.get(origins)
        if handler is None:
            handler = self._handlers[origins] = (
                CORSMiddleware(
                    self.app,
                    allow_origins=list(origins),
                    allow_methods=["GET", "POST", "DELETE"],
                    allow_headers=["Authorization", "Content-Type"],
                )
                if origins
                else self.app
            )
        await handler(scope, receive, send)


def create_app(orchestrator: Orchestrator | None = None) -> FastAPI:
    app = FastAPI(
        title="File Organizer",
        version=app_version(),
        lifespan=lifespan,
        description="Scan, deduplicate, classify and organize granted folders; apply and undo.",
    )
    app.state.orchestrator = orchestrator
    api = APIRouter(prefix=API_PREFIX)
    for module in (auth, operations, files, admin, schedules):
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(health.router)
    app.include_router(ws.router)
    app.add_middleware(FastReads)  # inside CORS: the last added is the outermost
    app.add_middleware(SettingsCORS)
    errors.install(app)
    return app


app = create_app()
