"""Nothing changes files unasked, every outcome is shown, stale plans are refused: the
`fileorg` console script as a user runs it, in a script and on a real terminal (a pty).

Each scenario is a short story on its own tree and data folder (a few commands in order);
the stories run side by side once per module (each command pays a second or more of
imports and a flow run), and the tests below read what each one saw.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from storage import operations
from storage.operations import PlanOptions
from tests.apply_helpers import differences, plan_rows
from tests.flows.cli_helpers import Cli, Ran, planned, write_tree
from tests.trees import snapshot

FILES = {
    "inbox/a.txt": b"alpha",
    "inbox/b.txt": b"bravo",
    "inbox/c.txt": b"charlie",
    "inbox/deeper/d.txt": b"delta",
    "old/copy of a.txt": b"alpha",
    "e.txt": b"echo",
}
Story = dict[str, Any]
SCENARIOS: dict[str, Callable[[Cli, Path], Story]] = {}


def scenario(fn: Callable[[Cli, Path], Story]) -> Callable[[Cli, Path], Story]:
    SCENARIOS[fn.__name__] = fn
    return fn


@pytest.fixture(scope="module")
def stories(
    tmp_path_factory: pytest.TempPathFactory, prefect_server: str
) -> dict[str, Story | BaseException]:
    env = {k: v for k, v in os.environ.items() if k != "FILEORG_DEBUG"}
    # Made here, not in the threads: pytest makes a worker's base folder at the first mktemp,
    # removing what was there, and two threads doing that at once removed each other's work
    # (`rm_rf ... Directory not empty` at this fixture's set-up, when it came first in a worker).
    bases = {name: tmp_path_factory.mktemp(name) for name in SCENARIOS}

    def tell(name: str) -> Story | BaseException:
        base = bases[name]
        write_tree(base / "root", FILES)
        cli = Cli(
            {**env, "FILEORG_DATA_URL": str(base / "data"), "PREFECT_API_URL": prefect_server}
        )
        try:
            return SCENARIOS[name](cli, base / "root")
        except BaseException as exc:  # raised again by the test that reads this story
            return exc

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(SCENARIOS, pool.map(tell, SCENARIOS), strict=True))


def story(stories: dict[str, Story | BaseException], name: str) -> Story:
    told = stories[name]
    if isinstance(told, BaseException):
        raise told
    return told


def status(cli: Cli, operation_id: str) -> str:
    return operations.load(cli.store, operation_id).status


def one_line(ran: Ran) -> str:
    assert len(ran.stderr.splitlines()) == 1, ran.stderr
    assert ran.stderr.startswith("error: ") and "Traceback" not in ran.stderr
    return ran.stderr


def listed(cli: Cli, stderr: str, outcome: str) -> list[tuple[str, str]]:
    """Run the command the output printed to list every file of `outcome`."""
    (line,) = [ln for ln in stderr.splitlines() if ln.rstrip().endswith(f"--outcome {outcome}")]
    argv = shlex.split(line.split(": ", 1)[1])
    assert argv[0] == "fileorg"
    ran = cli.run(*argv[1:], "--json")
    assert ran.returncode == 0, ran.stderr
    return [(i["src"], i["outcome_reason"]) for i in json.loads(ran.stdout)["items"]]


# --- organize only plans; --apply and apply ID are the explicit requests ----------------------


@scenario
def plain_organize(cli: Cli, root: Path) -> Story:
    before = snapshot(root)
    ran = cli.run("organize", root)
    return {"cli": cli, "ran": ran, "changed": snapshot(root) != before}


def test_organize_only_plans(stories: dict[str, Story | BaseException]) -> None:
    """`--dry-run` stays accepted (tests/flows/test_cli.py runs it): it is the default now."""
    told = story(stories, "plain_organize")
    ran = told["ran"]
    (record,) = operations.list_all(told["cli"].store)

    assert ran.returncode == 0, ran.stderr
    assert "nothing changed" in ran.stderr and "fileorg apply" in ran.stderr
    assert "After apply" in ran.stderr  # the tree it would leave
    assert record.status == "planned"
    assert record.summary["moves"] > 0  # there was something it could have moved
    assert not told["changed"]


@scenario
def script_apply(cli: Cli, root: Path) -> Story:
    before = snapshot(root)
    ran = cli.run("organize", root, "--apply", "--json")
    during = snapshot(root)
    undone = cli.run("rollback", json.loads(ran.stdout)["operation_id"], "--json")
    return {
        "ran": ran,
        "undone": undone,
        "before": before,
        "during": during,
        "after": snapshot(root),
    }


def test_organize_apply_in_a_script_goes_ahead_and_rollback_undoes_it(
    stories: dict[str, Story | BaseException],
) -> None:
    told = story(stories, "script_apply")
    ran, undone = told["ran"], told["undone"]
    document = json.loads(ran.stdout)

    assert ran.returncode == 0, ran.stderr
    assert "[y/N]" not in ran.stderr
    assert document["status"] == "applied"
    assert document["apply"]["done"] == document["report"]["plan"]["moves"] > 0
    assert document["not_done"] == {"counts": {}, "first": []}
    assert told["during"] != told["before"]
    assert undone.returncode == 0, undone.stderr
    assert json.loads(undone.stdout)["status"] == "rolled_back"
    assert differences(told["before"], told["after"]) == []


ANSWERS = {"yes": b"y\n", "no": b"n\n", "eof": None}


def _terminal_story(answer: bytes | None) -> Callable[[Cli, Path], Story]:
    def tell(cli: Cli, root: Path) -> Story:
        record = planned(cli.store, root)
        before = snapshot(root)
        shown = cli.on_terminal("apply", record.id, answer=answer)
        return {
            "shown": shown,
            "record": record,
            "status": status(cli, record.id),
            "changed": snapshot(root) != before,
        }

    return tell


for _name, _answer in ANSWERS.items():
    SCENARIOS[f"terminal_{_name}"] = _terminal_story(_answer)


@pytest.mark.parametrize("answer", list(ANSWERS))
def test_apply_asks_on_a_terminal(stories: dict[str, Story | BaseException], answer: str) -> None:
    told = story(stories, f"terminal_{answer}")
    shown, record = told["shown"], told["record"]
    expected_applied = answer == "yes"

    assert shown.asked, shown.output
    assert "After apply" in shown.output  # the tree it would leave, before the question
    assert f"Apply plan {record.id[:8]} to {record.root}" in shown.output
    assert shown.returncode == (0 if expected_applied else 1), shown.output
    assert told["status"] == ("applied" if expected_applied else "planned")
    assert told["changed"] is expected_applied
    if not expected_applied:
        assert "not applied: nothing changed" in shown.output


@scenario
def terminal_yes_flag(cli: Cli, root: Path) -> Story:
    record = planned(cli.store, root)
    shown = cli.on_terminal("apply", record.id[:8], "--yes", answer=b"n\n")
    return {"shown": shown, "status": status(cli, record.id)}


def test_yes_skips_the_question_on_a_terminal(stories: dict[str, Story | BaseException]) -> None:
    told = story(stories, "terminal_yes_flag")

    assert not told["shown"].asked, told["shown"].output
    assert told["shown"].returncode == 0, told["shown"].output
    assert told["status"] == "applied"


@scenario
def terminal_organize_apply(cli: Cli, root: Path) -> Story:
    before = snapshot(root)
    shown = cli.on_terminal("organize", root, "--apply", answer=b"n\n")
    return {
        "shown": shown,
        "changed": snapshot(root) != before,
        "records": operations.list_all(cli.store),
    }


def test_organize_apply_on_a_terminal_asks_after_planning(
    stories: dict[str, Story | BaseException],
) -> None:
    told = story(stories, "terminal_organize_apply")
    shown = told["shown"]

    assert shown.asked, shown.output
    assert shown.output.index("Summary") < shown.output.index("After apply")
    assert shown.output.index("After apply") < shown.output.index("[y/N]")
    assert shown.returncode == 1
    assert not told["changed"]
    assert [r.status for r in told["records"]] == ["planned"]  # the plan stays, to apply later


# --- outcomes per file; partial apply and incomplete rollback exit 3 -------------------------


@scenario
def partial_apply(cli: Cli, root: Path) -> Story:
    record = planned(cli.store, root)
    dst = {r["src"]: r["dst"] for r in plan_rows(cli.store, cli.store.operation_dir(record.id))}
    with open(root / "inbox/a.txt", "ab") as fh:
        fh.write(b" changed")
    (root / "inbox/b.txt").unlink()
    taken = root / os.fsdecode(dst[b"inbox/c.txt"])
    taken.parent.mkdir(parents=True, exist_ok=True)
    taken.write_bytes(b"someone else's c.txt")
    ran = cli.run("apply", record.id)
    return {
        "ran": ran,
        "status": status(cli, record.id),
        "skipped": listed(cli, ran.stderr, "skipped"),
        "conflict": listed(cli, ran.stderr, "conflict"),
    }


def test_a_partial_apply_exits_3_and_names_each_file(
    stories: dict[str, Story | BaseException],
) -> None:
    told = story(stories, "partial_apply")
    ran = told["ran"]

    assert ran.returncode == 3, ran.stderr
    assert "Partly applied" in ran.stdout
    assert "3 files not applied:" in ran.stderr
    for name, reason in (
        ("inbox/a.txt", "changed since scan"),
        ("inbox/b.txt", "vanished since scan"),
        ("inbox/c.txt", "conflict: destination exists"),
    ):
        assert re.search(rf"{re.escape(name)} .* {re.escape(reason)}", ran.stderr), ran.stderr
    assert told["status"] == "partial"
    assert told["skipped"] == [
        ("inbox/a.txt", "changed since scan"),
        ("inbox/b.txt", "vanished since scan"),
    ]
    assert told["conflict"] == [("inbox/c.txt", "conflict: destination exists")]


@scenario
def one_folder_emptied(cli: Cli, root: Path) -> Story:
    alone = root.parent / "alone"
    write_tree(alone, {"only/a.txt": b"alpha"})
    record = planned(cli.store, alone)
    return {"ran": cli.run("apply", record.id), "after": sorted(os.listdir(alone))}


def test_one_emptied_folder_is_one_folder(stories: dict[str, Story | BaseException]) -> None:
    """The tryout's apply said "removed 1 folders"."""
    told = story(stories, "one_folder_emptied")
    ran = told["ran"]

    assert ran.returncode == 0, ran.stderr
    assert "only" not in told["after"]  # the situation: apply emptied and removed one folder
    assert "removed 1 folder apply emptied" in ran.stderr, ran.stderr


@scenario
def apply_after_plan_skips(cli: Cli, root: Path) -> Story:
    skips = root.parent / "skips"
    write_tree(skips, {"inbox/a.txt": b"alpha", "inbox/b.txt": b"bravo", ".hidden": b"h"})
    write_tree(skips, {".DS_Store": b"junk"})
    record = planned(cli.store, skips)
    with open(skips / "inbox/a.txt", "ab") as fh:
        fh.write(b" changed")
    ran = cli.run("apply", record.id)
    return {"ran": ran, "plan_skipped": record.summary["skipped"], "cli": cli}


def test_the_skipped_hint_counts_what_its_listing_lists(
    stories: dict[str, Story | BaseException],
) -> None:
    """The plan's skipped rows (left alone: hidden, junk) are listed by --outcome skipped once
    applied, beside the file apply skipped; the hint's count is the listing's."""
    told = story(stories, "apply_after_plan_skips")
    ran = told["ran"]

    assert told["plan_skipped"] == 2  # the situation: the plan skipped .hidden and .DS_Store
    assert ran.returncode == 3, ran.stderr
    assert "1 file not applied:" in ran.stderr
    assert "all 3 skipped:" in ran.stderr, ran.stderr
    assert sorted(src for src, _ in listed(told["cli"], ran.stderr, "skipped")) == [
        ".DS_Store", ".hidden", "inbox/a.txt",
    ]  # fmt: skip


@scenario
def incomplete_rollback(cli: Cli, root: Path) -> Story:
    record = planned(cli.store, root)
    applied = cli.run("apply", record.id)
    (root / "e.txt").write_bytes(b"a new e.txt where the old one was")
    ran = cli.run("rollback", record.id[:8])
    return {
        "applied": applied,
        "ran": ran,
        "status": status(cli, record.id),
        "refused": listed(cli, ran.stderr, "refused"),
    }


def test_an_incomplete_rollback_exits_3_and_names_each_file(
    stories: dict[str, Story | BaseException],
) -> None:
    told = story(stories, "incomplete_rollback")
    ran = told["ran"]

    assert told["applied"].returncode == 0, told["applied"].stderr
    assert ran.returncode == 3, ran.stderr
    assert "Rollback incomplete" in ran.stdout
    assert re.search(r"e\.txt .* its original path is taken", ran.stderr), ran.stderr
    assert told["status"] == "rollback_incomplete"
    assert told["refused"] == [("e.txt", "its original path is taken")]


@scenario
def every_move_failed(cli: Cli, root: Path) -> Story:
    record = planned(cli.store, root, PlanOptions(mode="category"))
    for rel in FILES:
        with open(root / rel, "ab") as fh:
            fh.write(b"!")
    ran = cli.run("apply", record.id)
    return {
        "ran": ran,
        "moves": record.summary["moves"],
        "after": operations.load(cli.store, record.id),
    }


def test_an_apply_whose_every_move_failed_is_not_success(
    stories: dict[str, Story | BaseException],
) -> None:
    told = story(stories, "every_move_failed")
    ran, after = told["ran"], told["after"]

    assert told["moves"] > 0
    assert ran.returncode == 3, ran.stderr
    assert "Nothing applied" in ran.stdout
    assert f"{told['moves']} files not applied" in ran.stderr
    assert after.status == "partial"
    assert after.summary["apply"]["done"] == 0
    assert after.summary["apply"]["changed"] == told["moves"]


@scenario
def hardlink_edited_copy(cli: Cli, root: Path) -> Story:
    """Issue 12 point 5 as a user meets it: one byte of a planned copy changed in place, its
    size kept and its mtime put back, then `fileorg apply`."""
    record = planned(cli.store, root, PlanOptions(mode="category", duplicates="hardlink"))
    rows = plan_rows(cli.store, cli.store.operation_dir(record.id))
    (rel,) = [os.fsdecode(r["src"]) for r in rows if r["action"] == "hardlink"]
    copy = root / rel
    st = os.lstat(copy)
    copy.write_bytes(b"Alpha")
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns))
    ran = cli.run("apply", record.id)
    return {
        "ran": ran,
        "rel": rel,
        "bytes": copy.read_bytes(),
        "nlink": os.lstat(copy).st_nlink,
        "skipped": listed(cli, ran.stderr, "skipped"),
    }


def test_a_copy_edited_in_place_is_not_replaced_by_a_link(
    stories: dict[str, Story | BaseException],
) -> None:
    told = story(stories, "hardlink_edited_copy")
    ran = told["ran"]
    reason = "content changed since scan: not linked"

    assert ran.returncode == 3, ran.stderr
    assert (told["bytes"], told["nlink"]) == (b"Alpha", 1)
    assert "1 file not applied:" in ran.stderr and told["rel"] in ran.stderr
    assert told["skipped"] == [(told["rel"], reason)]


# --- stale plans and --id ---------------------------------------------------------------------


def _stale_story(sub: str) -> Callable[[Cli, Path], Story]:
    def tell(cli: Cli, root: Path) -> Story:
        older = planned(cli.store, root / sub if sub else root)
        newer = planned(cli.store, root)
        applied = cli.run("apply", newer.id)
        before = snapshot(root)
        refused = cli.run("apply", older.id)
        unchanged = snapshot(root) == before
        forced = cli.run("apply", older.id, "--force", "--json") if not sub else None
        return {
            "newer": newer,
            "applied": applied,
            "refused": refused,
            "unchanged": unchanged,
            "forced": forced,
        }

    return tell


SCENARIOS["stale_same_root"] = _stale_story("")
SCENARIOS["stale_overlapping_root"] = _stale_story("inbox")


@pytest.mark.parametrize("name", ["stale_same_root", "stale_overlapping_root"])
def test_a_plan_made_stale_by_another_apply_is_refused(
    stories: dict[str, Story | BaseException], name: str
) -> None:
    told = story(stories, name)
    refused, forced = told["refused"], told["forced"]

    assert told["applied"].returncode == 0, told["applied"].stderr
    assert refused.returncode == 2
    assert f"operation {told['newer'].id} (applied" in one_line(refused)
    assert "stale" in refused.stderr and "--force" in refused.stderr
    assert told["unchanged"]
    if forced is not None:
        assert forced.returncode == 3, forced.stderr  # the re-checks hold: nothing is lost
        assert json.loads(forced.stdout)["apply"]["vanished"] > 0


@scenario
def other_request(cli: Cli, root: Path) -> Story:
    record = planned(cli.store, root, PlanOptions(mode="category"))
    other = root.parent / "other"
    other.mkdir()
    return {
        "record": record,
        "other": other,
        "elsewhere": cli.run("organize", other, "--id", record.id),
        "options": cli.run("organize", root, "--id", record.id[:8]),
        "applied": cli.run("apply", "last"),
        "again": cli.run("apply", "last"),
        "rolled": cli.run("rollback", "last"),
        "twice": cli.run("rollback", "last"),
    }


def test_id_with_another_root_or_other_options_is_refused(
    stories: dict[str, Story | BaseException],
) -> None:
    told = story(stories, "other_request")
    record = told["record"]

    assert told["elsewhere"].returncode == 2
    assert f"organizes {record.root}, not {told['other']}" in one_line(told["elsewhere"])
    assert told["options"].returncode == 2
    assert "was planned with --mode category (not category_year)" in one_line(told["options"])


def test_repeating_a_finished_apply_or_rollback_is_refused(
    stories: dict[str, Story | BaseException],
) -> None:
    told = story(stories, "other_request")

    assert told["applied"].returncode == 0, told["applied"].stderr
    assert told["again"].returncode == 2
    assert "is already applied: nothing to do" in one_line(told["again"])
    assert told["rolled"].returncode == 0, told["rolled"].stderr
    assert told["twice"].returncode == 2
    assert "is already rolled back: nothing to undo" in one_line(told["twice"])
