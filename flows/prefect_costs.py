"""Fixed costs Prefect 3.9.1 adds to every run, removed (issue 14: a 10-file organize in well
under 2 s). Installed once by flows/runs.py, which every flow of ours imports.

- A sync flow run's end joins the engine's heartbeat thread, which sleeps in whole seconds:
  ~0.5 s a run. Its async engine does not join (join_on_exit=False); ours do not either.
  Heartbeats go out as before; the thread, a daemon, sees the stop within a second and sends
  nothing after it.
- Every Prefect client (each flow run's, its events worker's, every artifact's, the version
  check's) builds a TLS context from the CA file (certifi's bundle): 65-120 ms each at load
  10, although the local server speaks plain http. One verified context per CA file now
  serves them all: a context may be shared between connections and threads, and the only
  one Prefect changes after making it (the unverified one) is still made afresh.
"""

from __future__ import annotations

import os
import ssl
import threading
from typing import Any

# The modules of Prefect's that make the contexts of its clients.
TLS_MODULES = (
    "prefect.client.orchestration",
    "prefect._internal.version_checking",
    "prefect._internal.websockets",
)


def remove() -> None:
    _heartbeats_not_joined()
    _tls_contexts_shared()


def _heartbeats_not_joined() -> None:
    from prefect import flow_engine

    original = getattr(flow_engine, "_send_heartbeats", None)
    if original is None or getattr(original, "not_joined", False):
        return

    def not_joined(engine: object, join_on_exit: bool = True) -> object:
        return original(engine, join_on_exit=False)

    not_joined.not_joined = True  # type: ignore[attr-defined]
    flow_engine._send_heartbeats = not_joined  # type: ignore[assignment]


class SharedTLS:
    """The ssl module as those modules see it, but create_default_context(cafile=F) made once
    per CA file (and its size and mtime: a file replaced since is read again)."""

    def __init__(self) -> None:
        self._contexts: dict[tuple[str, int, int], ssl.SSLContext] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(ssl, name)

    def create_default_context(
        self, purpose: ssl.Purpose = ssl.Purpose.SERVER_AUTH, **kwargs: Any
    ) -> ssl.SSLContext:
        cafile = kwargs.get("cafile")
        if purpose != ssl.Purpose.SERVER_AUTH or set(kwargs) != {"cafile"} or not cafile:
            return ssl.create_default_context(purpose, **kwargs)  # one to change: its own
        info = os.stat(cafile)
        key = (os.fspath(cafile), info.st_size, info.st_mtime_ns)
        with self._lock:
            context = self._contexts.get(key)
            if context is None:
                context = self._contexts[key] = ssl.create_default_context(cafile=cafile)
        return context


_shared = SharedTLS()


def warm() -> None:
    """Make the context Prefect's clients verify with (the warm runner, before it forks: its
    children inherit it instead of each building it)."""
    import certifi
    from prefect.settings import PREFECT_API_SSL_CERT_FILE

    _shared.create_default_context(cafile=PREFECT_API_SSL_CERT_FILE.value() or certifi.where())


def _tls_contexts_shared() -> None:
    import importlib

    for name in TLS_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if getattr(module, "ssl", None) is ssl:
            module.ssl = _shared  # type: ignore[attr-defined]
