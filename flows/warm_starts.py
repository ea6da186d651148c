"""The runner's flow runs are forked from a warm process instead of started afresh.

Prefect's runner starts each run of a deployment it holds in memory (Runner.add_flow) with
prefect.flow_engine.run_flow_in_subprocess, in a "spawn" process: a new interpreter that
imports Prefect and the flows again, 2-3 s before the run is even Running. Here that one
function sees a multiprocessing whose every context is a forkserver that imported the flows
once, when the runner started: a run is a fork of it, Running in well under a second.

Everything else about the run is Prefect's own, unchanged: the pickled call, the environment
it applies in the child (so a run still sees the runner's settings of the moment), the
control channel, cancellation and crash detection by the child's pid and exit code. A fork
is safe here because the forkserver runs no threads: it only imported modules (forkserver
refuses nothing, so tests/flows/test_warm_starts.py checks that importing the flows starts
no thread), and Prefect's runner, with its threads and event loop, is not what is forked.
"""

from __future__ import annotations

import inspect
import multiprocessing
from collections.abc import Callable
from multiprocessing import forkserver
from multiprocessing.context import BaseContext, ForkServerContext, ForkServerProcess
from typing import Any

from prefect import flow_engine
from prefect.settings.context import get_current_settings

from tasks import pool

PRELOAD = ["flows.forkserver_preload"]  # the flows, and what every run would make
# What use_forkserver replaces: if a Prefect upgrade stops spelling it so, runs would quietly
# be spawned cold again; tests/flows/test_warm_starts.py fails instead.
SPAWNED = 'multiprocessing.get_context("spawn")'


class _RunProcess(ForkServerProcess):
    """A run's process. multiprocessing ends it by joining its children and then os._exit,
    without the interpreter's exit hooks, so the stages' process pool (tasks.pool), whose
    workers are such children, is ended here first, with the forkserver it started, however the
    run ended (a run stopped by SIGTERM was seen to stay alive otherwise, its pool workers
    waiting for work)."""

    def run(self) -> None:
        try:
            super().run()
        finally:
            pool.end()


class _RunContext(ForkServerContext):
    Process = _RunProcess


class _Forking:
    """multiprocessing as prefect.flow_engine sees it: the same module, but any context it
    asks for is the warm forkserver's."""

    def __init__(self, context: BaseContext) -> None:
        self._context = context

    def get_context(self, method: str | None = None) -> BaseContext:
        return self._context

    def __getattr__(self, name: str) -> Any:
        return getattr(multiprocessing, name)


def spawns_cold() -> bool:
    """Prefect still starts a run with the spawn context (what use_forkserver replaces)."""
    return SPAWNED in inspect.getsource(flow_engine.run_flow_in_subprocess)


class _Kept:
    """`make()`, made again only when `of()` gives other objects than last time: not the same
    ones (kept, so that no id is reused meanwhile) nor equal ones (TagsContext.get() makes a
    new, empty one each time none is set)."""

    def __init__(self, make: Callable[[], Any], of: Callable[[], tuple[object, ...]]) -> None:
        self._make, self._of = make, of
        self._last: tuple[tuple[object, ...], Any] | None = None

    def __call__(self) -> Any:
        key, last = self._of(), self._last
        if last is None or any(a is not b and a != b for a, b in zip(last[0], key, strict=True)):
            last = self._last = (key, self._make())
        return last[1]


def _contexts() -> tuple[object, ...]:
    """What prefect.context.serialize_context reads."""
    from prefect import context as c

    return (
        c.EngineContext.get(),
        c.TaskRunContext.get(),
        c.TagsContext.get(),
        c.SettingsContext.get(),
        c._deployment_id.get(),
        c._deployment_parameters.get(),
    )


_environments: dict[tuple[tuple[str, Any], ...], tuple[object, dict[str, str]]] = {}


class _SettingsView:
    """The current settings as run_flow_in_subprocess sees them: the same object's, but their
    environment variables (every setting dumped) made once per settings object and options."""

    def __init__(self, settings: Any) -> None:
        self._settings = settings

    def __getattr__(self, name: str) -> Any:
        return getattr(self._settings, name)

    def to_environment_variables(self, **options: Any) -> dict[str, str]:
        key = tuple(sorted(options.items()))
        kept = _environments.get(key)
        if kept is None or kept[0] is not self._settings:
            made = self._settings.to_environment_variables(**options)
            kept = _environments[key] = (self._settings, made)
        return dict(kept[1])


def _current_settings() -> _SettingsView:
    return _SettingsView(get_current_settings())


def keep_run_preparation() -> None:
    """What run_flow_in_subprocess makes for every run from the runner's own, unchanging
    contexts and settings, the serialized context and the settings' environment (pydantic
    dumps: 150-200 ms of the runner's event loop a run at load 5), made again only when those
    objects change. The child gets the same values as before; os.environ is still read afresh."""
    original = flow_engine.serialize_context  # type: ignore[attr-defined]
    kept = _Kept(original, _contexts)

    def serialize_context(asset_ctx_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
        return original(asset_ctx_kwargs) if asset_ctx_kwargs else dict(kept())

    flow_engine.serialize_context = serialize_context  # type: ignore[attr-defined]
    flow_engine.get_current_settings = _current_settings  # type: ignore[assignment, attr-defined]


def use_forkserver() -> None:
    """From now on, this process's runs start as forks of a forkserver that imported the
    flows; the forkserver starts now (the runner's start pays its imports, not a run)."""
    context = _RunContext()
    context.set_forkserver_preload(PRELOAD)
    flow_engine.multiprocessing = _Forking(context)  # type: ignore[assignment, attr-defined]
    keep_run_preparation()
    forkserver.ensure_running()
