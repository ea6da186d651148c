"""The TLS context this process's Prefect clients verify the server with, built once.

Prefect's client builds one from the CA file (PREFECT_API_SSL_CERT_FILE, else certifi's
bundle) every time it is made: 40-70 ms at load 5, nearly all of `get_client()`, and
api.orchestrator makes a client per exchange with Prefect (a start costs two). Here it is made
once per CA file and its size and mtime (a file replaced since is read again) and handed to
each client; a context may be shared between connections. When Prefect is told not to verify
(PREFECT_API_TLS_INSECURE_SKIP_VERIFY) there is none: Prefect makes its own unverified one, as
before. flows.prefect_costs does the same for the flows' clients.
"""

from __future__ import annotations

import os
import ssl
from typing import Any

_contexts: dict[tuple[str, int, int], ssl.SSLContext] = {}


def verified_context() -> ssl.SSLContext | None:
    import certifi
    from prefect.settings import PREFECT_API_SSL_CERT_FILE, PREFECT_API_TLS_INSECURE_SKIP_VERIFY

    if PREFECT_API_TLS_INSECURE_SKIP_VERIFY.value():
        return None
    cafile = PREFECT_API_SSL_CERT_FILE.value() or certifi.where()
    info = os.stat(cafile)
    key = (os.fspath(cafile), info.st_size, info.st_mtime_ns)
    context = _contexts.get(key)
    if context is None:
        context = _contexts[key] = ssl.create_default_context(cafile=cafile)
    return context


def client_settings() -> dict[str, Any] | None:
    """What to make a Prefect client with: its `httpx_settings`."""
    context = verified_context()
    return {"verify": context} if context else None
