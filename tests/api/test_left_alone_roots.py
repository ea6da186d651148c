"""A root inside what fileorg leaves alone (a project, a node_modules, a hidden folder, a
system folder) is refused when the operation or schedule is asked for, with the CLI's line
(storage.leave_alone.root_refusal): before, the API answered 202 and the run failed later
with that line as its error, or a schedule failed every time it fired."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.conftest import Api, User

SCHEDULE = {"cron": "0 3 * * 0"}


@pytest.fixture
def kept(tree: Path) -> Path:
    """Folders inside alice's grant that a walk from her root would leave alone."""
    alice = tree / "alice"
    for folder in (
        "code/app/.git",
        "code/app/src/pkg",
        "web/node_modules/left-pad",
        ".stash/old",
        "usb/System Volume Information/x",
    ):
        (alice / folder).mkdir(parents=True)
    return alice


@pytest.mark.parametrize(
    ("where", "expected_line"),
    [
        ("code/app/src/pkg", "{a}/code/app/src/pkg is inside {a}/code/app, which is left alone"
         " (project: .git): organize a folder outside it"),
        ("web/node_modules/left-pad", "is inside {a}/web/node_modules, which is left alone"
         " (tool or state folder: node_modules)"),
        (".stash/old", "is inside {a}/.stash, which is left alone (hidden: .stash):"
         " organize a folder outside it (include_hidden organizes hidden folders)"),
        ("usb/System Volume Information/x", "which is left alone (tool or state folder:"
         " system folder, System Volume Information)"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("endpoint", ["/api/v1/operations", "/api/v1/schedules"])
def test_a_root_in_what_fileorg_leaves_alone_is_refused_with_the_clis_line(
    api: Api, kept: Path, alice: User, where: str, expected_line: str, endpoint: str
) -> None:
    body = {"root_path": str(kept / where), **(SCHEDULE if "schedules" in endpoint else {})}

    response = api.client.post(endpoint, json=body, headers=alice.headers)

    assert response.status_code == 400, response.text
    assert expected_line.format(a=kept) in response.json()["detail"]
    assert (api.fake.started, api.fake.schedule_list) == ([], [])
    listed = api.client.get("/api/v1/operations", headers=alice.headers).json()
    assert listed["count"] == 0  # no row left behind either


def test_the_same_roots_are_accepted_once_nothing_above_leaves_them_alone(
    api: Api, kept: Path, alice: User
) -> None:
    assert api.started(alice, kept / "code/app")  # a project root: the walk leaves it whole
    assert api.started(alice, kept / ".stash/old", include_hidden=True)  # hidden, asked for
    assert len(api.fake.started) == 2
