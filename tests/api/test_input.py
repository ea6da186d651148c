"""Malformed input is 422 with a message, never a 500 and never read loosely (issue 12 #10, #12,
strict booleans): lone surrogates, coerced booleans and numbers, templates that make no sense."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from api import schemas
from api.schemas import Strict
from tests.api.conftest import PASSWORD, Api, User

SURROGATE = "\\ud800abc"  # JSON text for a lone surrogate: valid JSON, not valid Unicode


def _raw_post(api: Api, path: str, body: str, headers: dict[str, str] | None = None) -> Any:
    sent = {"content-type": "application/json", **(headers or {})}
    return api.client.post(path, content=body.encode(), headers=sent)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/api/v1/auth/signup",
            '{"email": "x@example.org", "username": "%s", "password": "correct horse battery"}',
        ),
        (
            "/api/v1/auth/signup",
            '{"email": "x@example.org", "username": "xavier", "password": "correct horse %s"}',
        ),
        ("/api/v1/auth/login", '{"username": "%s", "password": "x"}'),
        ("/api/v1/auth/refresh", '{"refresh_token": "%s"}'),
        ("/api/v1/auth/logout", '{"refresh_token": "%s"}'),
    ],
)
def test_a_lone_surrogate_before_login_is_422(api: Api, path: str, body: str) -> None:
    response = _raw_post(api, path, body % SURROGATE)

    assert response.status_code == 422, response.text
    assert response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/operations", '{"root_path": "{root}/%s"}'),
        ("/api/v1/operations", '{"root_path": "{root}", "template": "{name}%s"}'),
        ("/api/v1/operations", '{"root_path": "{root}", "exclude": ["%s"]}'),
        ("/api/v1/schedules", '{"root_path": "{root}", "cron": "0 3 * * 0", "timezone": "%s"}'),
        ("/api/v1/admin/users/{me}/roots", '{"root": "{root}/%s"}'),
    ],
)
def test_a_lone_surrogate_after_login_is_422(api: Api, tree: Path, path: str, body: str) -> None:
    admin = api.signup("admin")
    api.grant(admin, admin, tree / "alice")
    filled = body.replace("{root}", str(tree / "alice")) % SURROGATE

    response = _raw_post(api, path.replace("{me}", admin.id), filled, admin.headers)

    assert response.status_code == 422, response.text
    assert api.fake.started == []


@pytest.mark.parametrize(
    "loose",
    [
        {"dry_run": "no"},  # read as false, so the request applied (issue 12)
        {"dry_run": "false"},
        {"dry_run": 0},
        {"include_empty": "yes"},
        {"include_empty": 1},
        {"exclude": "*.tmp"},
        {"template": 7},
    ],
)
def test_operation_fields_are_not_coerced(
    api: Api, tree: Path, alice: User, loose: dict[str, Any]
) -> None:
    response = api.start(alice, tree / "alice", **loose)

    assert response.status_code == 422, response.text
    assert api.fake.started == []


@pytest.mark.parametrize(
    "loose",
    [
        {"interval_seconds": "3600"},
        {"interval_seconds": 3600.0},
        {"interval_seconds": True},
        {"interval_seconds": 3600, "active": "yes"},
        {"interval_seconds": 3600, "dry_run": "no"},
    ],
)
def test_schedule_fields_are_not_coerced(
    api: Api, tree: Path, alice: User, loose: dict[str, Any]
) -> None:
    body = {"root_path": str(tree / "alice"), **loose}

    response = api.client.post("/api/v1/schedules", json=body, headers=alice.headers)

    assert response.status_code == 422, response.text
    assert api.fake.schedule_list == []


def test_strict_booleans_still_take_json_booleans(api: Api, tree: Path, alice: User) -> None:
    api.fake.complete = False

    response = api.start(alice, tree / "alice", dry_run=False, include_empty=True)

    assert response.status_code == 202, response.text
    [(_, parameters)] = api.fake.started
    assert (parameters["dry_run"], parameters["options"]["include_empty"]) == (False, True)


def test_signup_fields_are_not_coerced(api: Api) -> None:
    body = {"email": "x@example.org", "username": "xavier", "password": PASSWORD, "full_name": 5}

    response = api.client.post("/api/v1/auth/signup", json=body)

    assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    ("template", "expected_message"),
    [
        ("{name:>4000000000}", "width of {name} is over 255"),
        ("{year:02x}/{name}", "not a format for a number"),
        ("{category:_>200}{ext:_>200}/{name}", "would be 400 bytes long"),
        ("{colour}/{name}", "unknown template field"),
        ("{day}{stem}", "drops the files' extensions"),
    ],
)
def test_templates_are_checked_when_posted(
    api: Api, tree: Path, alice: User, template: str, expected_message: str
) -> None:
    started = api.start(alice, tree / "alice", template=template)
    scheduled = api.client.post(
        "/api/v1/schedules",
        json={"root_path": str(tree / "alice"), "cron": "0 3 * * 0", "template": template},
        headers=alice.headers,
    )

    for response in (started, scheduled):
        assert response.status_code == 422, response.text
        assert expected_message in response.text
    assert (api.fake.started, api.fake.schedule_list) == ([], [])


def _request_schemas() -> list[type[Strict]]:
    found = [m for m in vars(schemas).values() if isinstance(m, type) and issubclass(m, Strict)]
    return [m for m in found if m is not Strict]


def _exact_fields() -> list[tuple[type[Strict], str, str]]:
    fields = []
    for model in _request_schemas():
        for name, info in model.model_fields.items():
            text = str(info.annotation)
            kind = "bool" if "bool" in text else "int" if "int" in text else None
            if kind is not None and "list" not in text and "dict" not in text:
                fields.append((model, name, kind))
    return fields


@pytest.mark.parametrize(
    ("model", "field", "kind"),
    _exact_fields(),
    ids=[f"{m.__name__}.{f}" for m, f, _ in _exact_fields()],
)
def test_every_boolean_and_integer_of_every_request_schema_is_strict(
    model: type[Strict], field: str, kind: str
) -> None:
    loose_values: list[object] = ["no", "true", 0, 1] if kind == "bool" else ["300", 300.0, True]
    for value in loose_values:
        with pytest.raises(ValidationError) as refused:
            model.model_validate({field: value})
        assert any(e["loc"] == (field,) for e in refused.value.errors()), (value, refused.value)


def test_the_strict_check_sees_every_request_schema() -> None:
    expected_fields = {
        ("OperationCreate", "dry_run"),
        ("OperationCreate", "include_empty"),
        ("ScheduleCreate", "interval_seconds"),
        ("ScheduleCreate", "active"),
    }
    assert expected_fields <= {(m.__name__, f) for m, f, _ in _exact_fields()}
