"""The orchestrator's Prefect clients verify the server with one TLS context per CA file
(api.prefect_tls), not one built per client (40-70 ms each), and still reach the server."""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import types
from pathlib import Path
from typing import Any

import certifi
import pytest
from prefect.settings import (
    PREFECT_API_SSL_CERT_FILE,
    PREFECT_API_TLS_INSECURE_SKIP_VERIFY,
    temporary_settings,
)

from api import prefect_tls
from api.orchestrator import PrefectOrchestrator


def test_one_verified_context_per_ca_file(tmp_path: Path) -> None:
    first = prefect_tls.verified_context()
    assert first is not None and prefect_tls.verified_context() is first
    assert first.verify_mode == ssl.CERT_REQUIRED and first.check_hostname
    assert prefect_tls.client_settings() == {"verify": first}

    bundle = tmp_path / "ca.pem"
    shutil.copyfile(certifi.where(), bundle)
    with temporary_settings({PREFECT_API_SSL_CERT_FILE: str(bundle)}):
        other = prefect_tls.verified_context()
        assert other is not None and other is not first
        os.utime(bundle, ns=(1, 1))  # replaced since: read again
        assert prefect_tls.verified_context() is not other


def test_none_when_prefect_is_told_not_to_verify() -> None:
    with temporary_settings({PREFECT_API_TLS_INSECURE_SKIP_VERIFY: True}):
        assert prefect_tls.client_settings() is None  # Prefect makes its unverified one


def test_the_orchestrator_builds_no_context_per_client_and_reaches_the_server(
    prefect_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.client import orchestration

    built: list[object] = []

    def counted(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        built.append(kwargs)
        return ssl.create_default_context(*args, **kwargs)

    tls = types.SimpleNamespace(**{**vars(ssl), "create_default_context": counted})
    monkeypatch.setattr(orchestration, "ssl", tls)
    prefect_tls.verified_context()  # made before: every client below is handed it
    for _ in range(3):
        assert asyncio.run(PrefectOrchestrator(timeout=30).version())
    assert built == []
