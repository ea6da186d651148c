"""The organize options for real home folders, through the API: passed to the flow as given,
refused with 422 when malformed, and 400 for what an object-store root cannot do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import Api, User
from tests.conftest import S3Env

OPTIONS = {
    "include_hidden": True,
    "projects": "move",
    "albums": "folder",
    "keep_subfolders": True,
    "undated": "folder",
    "keep_empty_folders": True,
}


def test_the_options_reach_the_flow_as_given(api: Api, tree: Path, alice: User) -> None:
    api.fake.complete = False

    response = api.start(alice, tree / "alice", **OPTIONS)

    assert response.status_code == 202, response.text
    [(_, parameters)] = api.fake.started
    assert {k: parameters["options"][k] for k in OPTIONS} == OPTIONS


def test_the_defaults_leave_hidden_entries_and_projects_alone(
    api: Api, tree: Path, alice: User
) -> None:
    api.fake.complete = False

    api.started(alice, tree / "alice")

    [(_, parameters)] = api.fake.started
    assert {k: parameters["options"][k] for k in OPTIONS} == {
        "include_hidden": False,
        "projects": "leave",
        "albums": "tags",
        "keep_subfolders": False,
        "undated": "mtime",
        "keep_empty_folders": False,
    }


@pytest.mark.parametrize(
    "bad",
    [
        {"projects": "split"},
        {"albums": "artist"},
        {"undated": "today"},
        {"include_hidden": "yes"},
        {"keep_subfolders": 1},
        {"keep_empty_folders": "no"},
    ],
)
def test_malformed_options_are_422(api: Api, tree: Path, alice: User, bad: dict[str, Any]) -> None:
    response = api.start(alice, tree / "alice", **bad)

    assert response.status_code == 422, response.text
    assert api.fake.started == []


def test_moving_projects_on_an_object_root_is_400_before_any_run(api: Api, s3: S3Env) -> None:
    s3.bucket("media")
    admin, bob = api.signup("admin"), api.signup("bob")
    api.grant(admin, bob, "s3://media/home/bob")

    response = api.start(bob, "s3://media/home/bob", projects="move")

    assert response.status_code == 400, response.text
    assert "projects 'move' is not possible on an object-store root" in response.json()["detail"]
    assert api.fake.started == []
