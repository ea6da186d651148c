"""HTTP routes: thin handlers over api.accounts, api.operations, api.manifests and api.admin."""

from __future__ import annotations

from typing import Any

from api.schemas import ErrorPublic


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can answer with."""
    return {code: {"model": ErrorPublic} for code in codes}
