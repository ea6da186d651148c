from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _prefect(prefect_server: str) -> str:
    """Every flow test runs against the session's Prefect server."""
    return prefect_server
