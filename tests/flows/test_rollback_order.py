"""Rollbacks newest first (storage.rollback_order), as a user meets it with the real CLI: two
applies on one tree (the second in another layout, moving the first one's files again), then
a rollback of the first. Before, it ran: most items refused, a few restored, a mixed tree
(the tryout). Now it is refused in one line naming the newer operation, changing nothing;
newest first, both rollbacks restore the tree exactly; --force runs it anyway."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.apply_helpers import differences
from tests.flows.cli_helpers import Cli, write_tree
from tests.trees import snapshot

FILES = {
    "inbox/a.txt": b"alpha",
    "inbox/b.jpg": b"bravo",
    "inbox/deeper/c.pdf": b"charlie",
    "d.txt": b"delta",
}


@pytest.fixture
def cli(tmp_path: Path, prefect_server: str) -> Cli:
    env = {k: v for k, v in os.environ.items() if k != "FILEORG_DEBUG"}
    return Cli(
        {**env, "FILEORG_DATA_URL": str(tmp_path / "data"), "PREFECT_API_URL": prefect_server}
    )


def applied(cli: Cli, root: Path, *options: str) -> str:
    ran = cli.run("organize", root, *options, "--apply", "--json")
    assert ran.returncode == 0, ran.stderr
    return str(json.loads(ran.stdout)["operation_id"])


def test_the_older_of_two_applies_is_not_rolled_back_first(cli: Cli, tmp_path: Path) -> None:
    root = tmp_path / "root"
    write_tree(root, FILES)
    before = snapshot(root)
    first = applied(cli, root, "--mode", "year_month")
    second = applied(cli, root, "--mode", "category")
    after_both = snapshot(root)
    assert after_both != before  # the second moved the first one's files again

    refused = cli.run("rollback", first)

    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.startswith(f"error: operation {second} (applied, ")
    assert refused.stderr.endswith(
        f") moved files under {os.path.realpath(root)} after {first} was applied: roll it"
        f" back first (fileorg rollback {second}), or add --force\n"
    )
    assert refused.stdout == ""
    assert snapshot(root) == after_both  # nothing changed
    for op in (second, first):  # newest first: each undone exactly
        ran = cli.run("rollback", op)
        assert ran.returncode == 0, ran.stderr
    assert differences(before, snapshot(root)) == []  # a round trip's folders are new inodes


def test_a_plan_never_applied_says_so_with_a_newer_apply_on_top(cli: Cli, tmp_path: Path) -> None:
    """Not "moved files after X was applied: roll it back first": X never was (the tryout)."""
    root = tmp_path / "root"
    write_tree(root, FILES)
    planned = cli.run("organize", root, "--dry-run", "--json")
    assert planned.returncode == 0, planned.stderr
    never = str(json.loads(planned.stdout)["operation_id"])
    applied(cli, root, "--mode", "category")
    after = snapshot(root)

    refused = cli.run("rollback", never)

    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr == f"error: operation {never} was never applied: nothing to roll back\n"
    assert snapshot(root) == after


def test_force_rolls_back_under_a_newer_apply(cli: Cli, tmp_path: Path) -> None:
    root = tmp_path / "root"
    write_tree(root, FILES)
    first = applied(cli, root, "--mode", "year_month")
    applied(cli, root, "--mode", "category")

    forced = cli.run("rollback", first, "--force")

    assert "roll it back first" not in forced.stderr
    assert forced.returncode == 3, forced.stderr  # what it finds moved again is refused
    assert "Rollback incomplete" in forced.stdout
