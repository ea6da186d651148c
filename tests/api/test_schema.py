"""Schemathesis against the app's own OpenAPI schema, authenticated: no 500s, no response that
breaks the schema. Bounded: a few examples per endpoint, on SQLite (the database code is the
same on PostgreSQL and runs there in the other API tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

from api.main import app
from tests.api.conftest import Api

schema = schemathesis.openapi.from_dict(app.openapi())
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


@pytest.fixture
def signed_in(make_api: Any, tmp_path: Path) -> tuple[Api, dict[str, str]]:
    api: Api = make_api(auth_attempts_per_account=10_000, auth_attempts_per_address=10_000)
    admin = api.signup("admin")
    root = tmp_path / "granted"
    root.mkdir(exist_ok=True)
    api.grant(admin, admin, root)
    api.started(admin, root)
    return api, admin.headers


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@schema.parametrize()
@settings(
    max_examples=10,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_api_keeps_its_schema(case: Any, signed_in: tuple[Api, dict[str, str]]) -> None:
    api, headers = signed_in
    sent = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
    sent.pop("cookies", None)
    if isinstance(sent.get("data"), bytes | str):  # raw bodies are `content` to httpx
        sent["content"] = sent.pop("data")
    response = api.client.request(**sent)
    case.validate_response(response, checks=CHECKS, headers=headers)
