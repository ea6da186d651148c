"""The `fileorg` console script as a user runs it: a subprocess, one JSON document per command.

`python -m flows.cli` does not work (the package has no __main__), so the tests run the
console script installed next to the interpreter running them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.trees import (
    expected_duplicate_inodes,
    make_nasty_tree,
    make_unreadable,
    reachable_files,
    snapshot,
)

FILEORG = Path(sys.executable).parent / "fileorg"
Arg = str | bytes | Path


@dataclass(frozen=True)
class Cli:
    env: dict[str, str]

    def run(self, *args: Arg) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([FILEORG, *args], env=self.env, capture_output=True, timeout=120)

    def json(self, *args: Arg) -> Any:
        result = self.run(*args, "--json")
        assert result.returncode == 0, result.stderr.decode(errors="replace")
        # One document: json.loads refuses anything after it.
        return json.loads(result.stdout)


@dataclass(frozen=True)
class Organized:
    cli: Cli
    root: Path
    document: dict[str, Any]

    @property
    def operation_id(self) -> str:
        return str(self.document["operation_id"])


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory, prefect_server: str) -> Cli:
    data = tmp_path_factory.mktemp("cli-data")
    env = {k: v for k, v in os.environ.items() if k != "FILEORG_DEBUG"}
    return Cli({**env, "FILEORG_DATA_URL": str(data), "PREFECT_API_URL": prefect_server})


@pytest.fixture(scope="module")
def organized(cli: Cli, tmp_path_factory: pytest.TempPathFactory) -> Organized:
    """`fileorg organize --dry-run --json` once, on the nasty tree."""
    root = tmp_path_factory.mktemp("cli") / "arbre"
    make_nasty_tree(root)
    make_unreadable(root)
    return Organized(cli, root, cli.json("organize", root, "--dry-run"))


def test_organize_prints_one_document_with_the_operation_id(organized: Organized) -> None:
    document = organized.document

    assert str(uuid.UUID(organized.operation_id)) == organized.operation_id
    assert document["status"] == "planned"
    assert document["report"]["operation_id"] == organized.operation_id
    assert os.fsencode(document["report"]["root"]) == os.fsencode(organized.root)


def test_report_json_is_what_organize_printed(organized: Organized) -> None:
    report = organized.cli.json("report", organized.operation_id)

    assert report == organized.document["report"]


def test_the_report_in_words_shows_what_its_help_promises(organized: Organized) -> None:
    """Per category and year, duplicates, what was left alone and why, errors: the text report
    is the JSON's top rows, not only its summary."""
    report = organized.document["report"]
    top = report["duplicates"]["top_groups"][0]
    left = report["left_alone"]["items"][0]
    ran = organized.cli.run("report", organized.operation_id)
    text = " ".join(ran.stdout.decode().split())  # rich wraps long cells: compare the words

    assert ran.returncode == 0, ran.stderr
    assert report["by_year"] and left and top  # the nasty tree has all three
    for title in ("Summary", "By category", "By year", "Largest duplicate groups", "Left alone"):
        assert title in text
    assert all(year in text for year in report["by_year"])
    assert f"Left alone ({report['left_alone']['count']:,})" in text
    assert left["reason"] in text
    assert "Problems" in text and report["errors"]["items"][0]["stage"] in text


def test_plan_json_agrees_with_the_report(organized: Organized) -> None:
    plan = organized.cli.json("plan", organized.operation_id, "--limit", "100000")
    counted = organized.document["report"]["plan"]
    actions = Counter(item["action"] for item in plan["items"])

    assert plan["operation_id"] == organized.operation_id
    assert plan["total"] == len(plan["items"]) == organized.document["report"]["entries"]
    assert actions["move"] == counted["moves"]
    assert actions["skip"] == counted["skipped"]


def test_plan_json_round_trips_non_utf8_names(organized: Organized) -> None:
    plan = organized.cli.json("plan", organized.operation_id, "--limit", "100000")
    dst_of = {os.fsencode(i["src"]): i["dst"] and os.fsencode(i["dst"]) for i in plan["items"]}

    assert dst_of[b"caf\xe9.txt"] == b"Documents/2019/caf\xe9.txt"
    assert dst_of[b"na\xefve \xff dir/r\xe9sum\xe9.doc"] == b"Documents/2019/r\xe9sum\xe9.doc"


def test_duplicates_json_lists_the_paths_of_each_group(organized: Organized) -> None:
    duplicates = organized.cli.json("duplicates", organized.operation_id, "--limit", "1000")
    root = os.fsencode(organized.root)
    inode_groups = {
        frozenset(os.lstat(root + b"/" + os.fsencode(p)).st_ino for p in group["paths"])
        for group in duplicates["groups"]
    }
    summary = organized.document["report"]["duplicates"]

    assert inode_groups == expected_duplicate_inodes(snapshot(organized.root))
    assert duplicates["total"] == len(duplicates["groups"]) == summary["groups"]
    assert sum(g["wasted_bytes"] for g in duplicates["groups"]) == summary["wasted_bytes"]
    assert [g["paths"] for g in duplicates["groups"]] == [g["paths"] for g in summary["top_groups"]]
    assert [b"docs/resume copy.doc", b"na\xefve \xff dir/r\xe9sum\xe9.doc"] in [
        [os.fsencode(p) for p in g["paths"]] for g in duplicates["groups"]
    ]


def test_files_json_round_trips_every_name(organized: Organized) -> None:
    files = organized.cli.json("files", organized.operation_id, "--limit", "100000")

    assert files["total"] == organized.document["report"]["files"]
    assert {os.fsencode(item["path"]) for item in files["items"]} == set(
        reachable_files(snapshot(organized.root))
    )


@pytest.mark.parametrize(
    ("command", "key", "limit", "order"),
    [
        ("files", "items", "4", ["--sort", "size", "--desc"]),
        ("files", "items", "2", ["--ext", "jpg"]),  # a filter: the positions kept
        ("duplicates", "groups", "1", []),
    ],
)
def test_listings_page_on_by_cursor_to_every_row(
    organized: Organized, command: str, key: str, limit: str, order: list[str]
) -> None:
    """Following next_cursor from the first page lists every row once, in the order --all
    lists them (from the listing manifest the organize built), and ends with null."""
    op = organized.operation_id
    every = organized.cli.json(command, op, *order, "--all")
    pages = [organized.cli.json(command, op, *order, "--limit", limit)]
    while pages[-1]["next_cursor"] is not None and len(pages) <= len(every[key]):
        following = ["--cursor", pages[-1]["next_cursor"]]
        pages.append(organized.cli.json(command, op, *order, "--limit", limit, *following))

    assert len(every[key]) > int(limit)  # more than one page
    assert [row for page in pages for row in page[key]] == every[key]
    assert pages[-1]["next_cursor"] is None and every["next_cursor"] is None
    assert {page["total"] for page in pages} == {every["total"]}


def test_operations_json_lists_the_operation(organized: Organized) -> None:
    listed = organized.cli.json("operations")
    (record,) = [r for r in listed["operations"] if r["id"] == organized.operation_id]

    assert record["status"] == "planned"
    assert record["dry_run"] is True
    assert record["summary"]["files"] == organized.document["report"]["files"]
    assert os.fsencode(record["root"]) == os.fsencode(organized.root)


# --- bad input: one line on stderr, exit status 2 -----------------------------------------------

UNKNOWN_ID = "0b0e5d1c-56c4-4c5e-9f38-000000000000"
BAD_INPUT: dict[str, Sequence[str]] = {
    "missing root": ["organize", "{tmp}/missing", "--dry-run"],
    "root is a file": ["organize", "{tmp}/a file", "--dry-run"],
    "unknown mode": ["organize", "{tmp}", "--dry-run", "--mode", "by-colour"],
    "unknown template field": ["organize", "{tmp}", "--dry-run", "--template", "{{colour}}/x"],
    "template width": ["organize", "{tmp}", "--dry-run", "--template", "{{name:>4000000000}}"],
    "template spec": ["organize", "{tmp}", "--dry-run", "--template", "{{year:02x}}/{{name}}"],
    "template name length": ["organize", "{tmp}", "--template", "{{ext:_>200}}{{ext:_>200}}"],
    "template that drops the extension": ["organize", "{tmp}", "--template", "{{day}}{{stem}}"],
    "malformed id to organize": ["organize", "{tmp}", "--dry-run", "--id", "not-a-uuid"],
    "empty exclude pattern": ["organize", "{tmp}", "--exclude", ""],  # the API's 422 too
    "exclude pattern with no closing ]": ["organize", "{tmp}", "--exclude", "["],  # and 422
    "exclude pattern with a /": ["organize", "{tmp}", "--exclude", "a/b"],
    "unknown id to plan": ["plan", UNKNOWN_ID],
    "unknown id to duplicates": ["duplicates", UNKNOWN_ID, "--json"],
    "malformed id to files": ["files", "../../etc"],
}


@pytest.fixture(scope="module")
def bad_runs(
    cli: Cli, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, subprocess.CompletedProcess[bytes]]:
    """Every bad-input command, run side by side (each one is a second of imports)."""
    tmp = tmp_path_factory.mktemp("bad-input")
    (tmp / "a file").write_bytes(b"x")
    with ThreadPoolExecutor(max_workers=len(BAD_INPUT)) as pool:
        futures = {
            case: pool.submit(cli.run, *(a.format(tmp=tmp) for a in argv))
            for case, argv in BAD_INPUT.items()
        }
        return {case: future.result() for case, future in futures.items()}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_one_line_and_status_2(
    bad_runs: dict[str, subprocess.CompletedProcess[bytes]], case: str
) -> None:
    result = bad_runs[case]
    stderr = result.stderr.decode(errors="replace")

    assert result.returncode == 2, stderr
    assert len(stderr.splitlines()) == 1, stderr
    assert stderr.startswith("error: ")
    assert "Traceback" not in stderr
    assert result.stdout == b""


@pytest.mark.parametrize(
    ("count", "noun", "expected_phrase"),
    [
        (1, "folder", "1 folder"),
        (0, "folder", "0 folders"),
        (2, "more folder", "2 more folders"),
        (1, "file", "1 file"),
        (1_000, "file", "1,000 files"),
    ],
)
def test_counts_are_singular_for_one(count: int, noun: str, expected_phrase: str) -> None:
    from flows.cli.render import counted

    assert counted(count, noun) == expected_phrase
