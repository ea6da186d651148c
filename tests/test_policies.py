"""The plan's policies are spelled once (storage.operations): the API's request schema, the
CLI's option choices and the layout modes offer exactly those values, so a value added in one
place only fails here."""

from __future__ import annotations

from typing import Any, get_args, get_type_hints

import pytest

from api.schemas import OperationCreate, ScheduleCreate
from flows.cli import run, schedule
from storage import operations
from storage.operations import PlanOptions
from tasks.plan.layout import MODES

# PlanOptions field -> (its storage alias, the API request field, the CLI options that offer it)
POLICIES: dict[str, tuple[Any, str, tuple[Any, ...]]] = {
    "duplicates": (operations.DuplicatesPolicy, "duplicates", (run.organize, schedule.add)),
    "keep": (operations.KeepPolicy, "keep", (run.organize, schedule.add)),
    "projects": (operations.ProjectsPolicy, "projects", (run.organize,)),
    "albums": (operations.AlbumsPolicy, "albums", (run.organize,)),
    "undated": (operations.UndatedPolicy, "undated", (run.organize,)),
}


def _schema_values(model: type[OperationCreate], field: str) -> list[str]:
    schema = model.model_json_schema()
    found = schema["properties"][field]
    if "$ref" in found:
        found = schema["$defs"][found["$ref"].rsplit("/", 1)[1]]
    values: list[str] = found["enum"]
    return values


@pytest.mark.parametrize("field", sorted(POLICIES))
def test_plan_options_use_the_policy(field: str) -> None:
    alias, _, _ = POLICIES[field]
    expected_values = get_args(alias)
    assert get_args(PlanOptions.model_fields[field].annotation) == expected_values


@pytest.mark.parametrize("model", [OperationCreate, ScheduleCreate])
@pytest.mark.parametrize("field", sorted(POLICIES))
def test_the_api_offers_the_policy(model: type[OperationCreate], field: str) -> None:
    alias, api_field, _ = POLICIES[field]
    expected_values = list(get_args(alias))
    assert _schema_values(model, api_field) == expected_values


@pytest.mark.parametrize("field", sorted(POLICIES))
def test_the_cli_offers_the_policy(field: str) -> None:
    alias, _, commands = POLICIES[field]
    expected_values = get_args(alias)
    for command in commands:  # typer offers a Literal's values as the option's choices
        assert get_args(get_type_hints(command)[field]) == expected_values, command.__name__


def test_layout_modes_are_the_planner_modes() -> None:
    expected_modes = list(MODES)
    assert list(get_args(operations.LayoutMode)) == expected_modes
    assert _schema_values(OperationCreate, "organization_mode") == expected_modes
