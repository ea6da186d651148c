"""Whole answers for scripts: `--all` and `--jsonl` on plan, files, duplicates and operations;
the human view keeps paging. Operations are written straight into a data folder (Parquet shards
of the manifest schemas), so that a listing can be larger than a real tree would be here."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from storage import manifests, operations
from storage.locations import DataStore

FILEORG = Path(sys.executable).parent / "fileorg"
PAGE = 50


def _planned(data: Path, rows: int) -> str:
    """An operation whose plan has `rows` moves, written as the planner writes its shards."""
    store = DataStore(str(data))
    op = str(uuid.uuid4())
    operations.save(store, operations.OperationRecord(id=op, root="/tree", status="planned"))
    per_shard = 100_000
    for shard, start in enumerate(range(0, rows, per_shard)):
        index = range(start, min(rows, start + per_shard))
        n = len(index)
        columns: dict[str, list[Any]] = {
            "src": [b"inbox/%09d photo from the trip.jpg" % i for i in index],
            "dst": [b"Images/2019/%09d photo from the trip.jpg" % i for i in index],
            "action": ["move"] * n,
            "reason": ["category_year"] * n,
            "size": list(index),
            "mtime_ns": list(index),
            "dev": [1] * n,
            "ino": list(index),
            "category": ["images"] * n,
            "year": [2019] * n,
            "digest": [None] * n,
            "link_to": [None] * n,
            "reason_code": ["organized"] * n,
            "kind": ["file"] * n,
            "unit": [None] * n,
            "twin": [None] * n,
            "date_source": ["exif"] * n,
        }
        table = pa.Table.from_pydict(columns, schema=manifests.PLAN)
        path = manifests.shard_path(store.operation_dir(op), "plan", shard)
        manifests.write_table(store, path, table)
    return op


def _fileorg(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(FILEORG), *args], capture_output=True, timeout=300)


def test_the_human_view_pages_and_all_or_jsonl_give_every_row(data_dir: Path) -> None:
    op = _planned(data_dir, 120)

    table = _fileorg("plan", op)
    page = json.loads(_fileorg("plan", op, "--json").stdout)
    every = json.loads(_fileorg("plan", op, "--json", "--all").stdout)
    lines = _fileorg("plan", op, "--jsonl")
    rows = [json.loads(line) for line in lines.stdout.splitlines()]
    offset = [
        json.loads(line)
        for line in _fileorg("plan", op, "--jsonl", "--offset", "100").stdout.splitlines()
    ]

    assert table.returncode == 0, table.stderr
    assert table.stdout.count(b"inbox/") == PAGE
    assert b"rows 1-50 of 120" in table.stderr
    assert (page["total"], len(page["items"])) == (120, PAGE)
    assert (every["total"], len(every["items"])) == (120, 120)
    assert lines.returncode == 0, lines.stderr
    assert rows == every["items"]
    assert rows[:PAGE] == page["items"]
    assert offset == rows[100:]
    assert rows[0] == {
        "src": "inbox/000000000 photo from the trip.jpg",
        "dst": "Images/2019/000000000 photo from the trip.jpg",
        "action": "move",
        "reason": "category_year",
        "size": 0,
        "category": "images",
        "year": 2019,
        "link_to": None,
        "reason_code": "organized",
        "kind": "file",
        "unit": None,
        "twin": None,
        "date_source": "exif",
        "apply_outcome": None,  # not applied yet
        "rollback_outcome": None,
        "outcome_reason": None,
    }


def test_a_cursor_continues_after_the_last_row_of_its_page(data_dir: Path) -> None:
    op = _planned(data_dir, 120)

    table = _fileorg("plan", op)
    first = json.loads(_fileorg("plan", op, "--json").stdout)
    second = json.loads(_fileorg("plan", op, "--json", "--cursor", first["next_cursor"]).stdout)
    on = _fileorg("plan", op, "--cursor", first["next_cursor"], "--limit", "20")
    third = json.loads(
        _fileorg("plan", op, "--json", "--limit", "30", "--cursor", second["next_cursor"]).stdout
    )
    every = json.loads(_fileorg("plan", op, "--json", "--all").stdout)

    assert first["items"] + second["items"] + third["items"] == every["items"]
    assert isinstance(second["next_cursor"], str) and third["next_cursor"] is None
    assert every["next_cursor"] is None
    expected_hint = f"rows 1-50 of 120; next: --cursor {first['next_cursor']} (or --offset 50)"
    assert table.stderr.decode().splitlines()[-1] == f"{expected_hint}, or --all"
    assert on.returncode == 0, on.stderr
    assert on.stdout.count(b"inbox/") == 20
    assert on.stderr.decode().splitlines()[-1].startswith("20 of 120 rows; next: --cursor ")


@pytest.mark.parametrize(
    ("args", "expected_line"),
    [
        (["--cursor", "abcde"], "error: the cursor is not one this service made"),
        (["--cursor", "bm90LWEtY3Vyc29yLWF0LWFsbA"], "error: the cursor does not belong"),
        (["--action", "keep", "--cursor", "FIRST"], "error: the cursor does not belong"),
        (["--offset", "5", "--cursor", "FIRST"], "error: --cursor and --offset: choose one"),
        (["--jsonl", "--cursor", "FIRST"], "error: --cursor and --jsonl: choose one"),
        (["--all", "--cursor", "FIRST"], "error: --cursor and --all: choose one"),
    ],
)
def test_a_bad_cursor_is_one_line_and_status_2(
    data_dir: Path, args: list[str], expected_line: str
) -> None:
    """Malformed, edited, made for other filters, or with what it cannot go with."""
    op = _planned(data_dir, 60)
    first = json.loads(_fileorg("plan", op, "--json").stdout)["next_cursor"]

    done = _fileorg("plan", op, *[first if a == "FIRST" else a for a in args])

    assert done.returncode == 2, done.stderr
    assert done.stderr.decode().startswith(expected_line)
    assert done.stderr.count(b"\n") == 1 and done.stdout == b""


def test_an_offset_past_the_last_row_says_so(data_dir: Path) -> None:
    op = _planned(data_dir, 6)

    shown = _fileorg("plan", op, "--offset", "99999")

    assert shown.returncode == 0, shown.stderr
    assert b"--offset 99999 is past the last row: there are 6" in shown.stderr
    assert b"rows 100000-99999" not in shown.stderr  # what it said before


def test_operations_say_whose_each_is_once_an_api_user_has_one(data_dir: Path) -> None:
    """The API's runs share the data folder: the table says which are an API user's, and
    `last` names the CLI's own newest (storage.operations.resolve_id)."""
    store = DataStore(str(data_dir))
    mine = _planned(data_dir, 1)
    theirs = str(uuid.uuid4())
    record = operations.OperationRecord(id=theirs, root="/srv/alice", status="planned")
    record.owner = "7d0c5e1a-0000-4000-8000-00000000000a"
    operations.save(store, record)  # the newest of all

    wide = {**os.environ, "COLUMNS": "160"}  # a row on one line each
    table = subprocess.run(
        [str(FILEORG), "operations"], capture_output=True, timeout=300, env=wide
    ).stdout.decode()
    plan = json.loads(_fileorg("plan", "last", "--json").stdout)

    cells = [
        [cell.strip() for cell in re.split("[│┃]", line)[1:-1]]
        for line in table.splitlines()
        if line.lstrip().startswith(("│", "┃"))
    ]
    header, *rows = cells
    assert header[-1] == "by"
    assert {row[3]: row[-1] for row in rows} == {
        "/srv/alice": "API user 7d0c5e1a",
        "/tree": "CLI",
    }
    assert plan["operation_id"] == mine


@pytest.mark.parametrize("command", ["plan", "files", "duplicates", "operations"])
def test_json_and_jsonl_together_is_one_line_and_status_2(data_dir: Path, command: str) -> None:
    op = _planned(data_dir, 3)
    args = [] if command == "operations" else [op]

    done = _fileorg(command, *args, "--json", "--jsonl")

    assert done.returncode == 2, done.stderr
    assert done.stderr == b"error: --json and --jsonl: choose one\n"
    assert done.stdout == b""


# Runs fileorg from a small interpreter: a child's peak memory counts the pages of the process
# it was forked from, and pytest's are many.
MEASURE = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
assert done.returncode == 0, done.stderr.decode()
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
print(peak, done.stdout.count(b"\\n"))
"""


def _peak_rss_mib(*args: str) -> tuple[int, int]:
    """fileorg's peak resident memory in MiB, and the lines it printed."""
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(FILEORG), *args], capture_output=True, timeout=300
    )
    assert done.returncode == 0, done.stderr.decode()
    peak, lines = done.stdout.split()
    return int(peak), int(lines)


def test_jsonl_streams_in_bounded_memory(data_dir: Path) -> None:
    """Ten times the rows: --jsonl holds a batch at a time (DuckDB's sort under it spills past
    STREAM_MEMORY), while one --json document of every row grows with the rows."""
    small, large = _planned(data_dir, 10_000), _planned(data_dir, 100_000)
    # MiB: DuckDB's sort of 100,000 rows of 17 columns and Parquet buffers (under its
    # STREAM_MEMORY limit of 128 MB); the rows printed are ~200 MiB more as one document.
    bound = 96

    jsonl_small, small_lines = _peak_rss_mib("plan", small, "--jsonl")
    jsonl_large, large_lines = _peak_rss_mib("plan", large, "--jsonl")
    whole_small, _ = _peak_rss_mib("plan", small, "--json", "--all")
    whole_large, _ = _peak_rss_mib("plan", large, "--json", "--all")

    assert (small_lines, large_lines) == (10_000, 100_000)
    assert whole_large - whole_small > bound  # the measurement sees a listing held in memory
    assert jsonl_large - jsonl_small < bound, (jsonl_small, jsonl_large, whole_small, whole_large)


# Names that would split a table's row, ring the bell, recolour the terminal or be read as
# rich markup (the tryout: a newline in a name split the plan's rows).
ODD = {
    "inbox/two\nlines.txt": b"one",
    "inbox/copy of two\nlines.txt": b"one",
    "inbox/bell\x07.txt": b"bell",
    "inbox/esc\x1b[31mred.txt": b"esc",
    "inbox/[/]odd.txt": b"markup",
    "inbox/sep\u2028line.txt": b"separator",
}


def _wide_sources(text: str) -> list[str]:
    """The source of each row of `plan --wide`, its column's lines joined without their
    spaces (a value folds inside its column at a space, or within a word): a row starts on
    the line that names its action."""
    header, *lines = text.splitlines()
    destination, action, reason = (header.index(c) for c in ("destination", "action", "reason"))
    sources: list[str] = []
    for line in lines:
        if line[action:reason].strip():
            sources.append("")
        sources[-1] += line[:destination].replace(" ", "")
    return sources


def test_control_characters_in_names_are_escaped_in_tables_not_in_json(
    data_dir: Path, tmp_path: Path
) -> None:
    from tests.flows.cli_helpers import planned, write_tree

    write_tree(tmp_path / "root", ODD)
    op = planned(DataStore(str(data_dir)), tmp_path / "root").id
    expected_shown = [
        "two\\nlines.txt", "copy of two\\nlines.txt", "bell\\x07.txt", "esc\\x1b[31mred.txt",
        "[/]odd.txt", "sep\\u2028line.txt",
    ]  # fmt: skip

    for command in (["plan", op, "--wide"], ["plan", op], ["files", op], ["duplicates", op]):
        ran = _fileorg(*command)
        assert ran.returncode == 0, (command, ran.stderr)
        text = ran.stdout.decode()
        assert not any(c in text for c in "\x07\x1b\u2028"), (command, text)
        rows = [line for line in text.splitlines() if "inbox/" in line]
        if command[0] in ("plan", "files"):  # every file, each on its one row
            assert len(rows) == len(ODD), (command, text)
        if "--wide" in command:  # whole paths, folded in their column: each name as escaped
            sources = _wide_sources(text)
            for name in expected_shown:
                assert sources.count(f"inbox/{name}".replace(" ", "")) == 1, (command, text)
        if command[0] == "files":  # whole paths on one line: each name as escaped
            for name in expected_shown:
                assert len([r for r in rows if f"inbox/{name}" in r]) == 1, (command, text)
    assert "copy of two\\nlines.txt" in _fileorg("duplicates", op).stdout.decode()
    listed = json.loads(_fileorg("plan", op, "--json").stdout)["items"]
    assert {i["src"] for i in listed} == set(ODD)  # JSON keeps every name exact


# Pairs that would look the same if a backslash were not escaped: a bell against the four
# characters `\x07`, a byte that is not UTF-8 against the four characters `\xe9`.
LOOKALIKES = {
    b"inbox/bell\x07.txt": ("bell\\x07.txt", b"1"),
    b"inbox/bell\\x07.txt": ("bell\\\\x07.txt", b"2"),
    b"inbox/caf\xe9.txt": ("caf\\xe9.txt", b"3"),
    b"inbox/caf\\xe9.txt": ("caf\\\\xe9.txt", b"4"),
    # NFC and NFD: one name to the eye, two files; the decomposed one's accent is escaped.
    "inbox/caf\u00e9.txt".encode(): ("caf\u00e9.txt", b"5"),
    b"inbox/cafe\xcc\x81.txt": ("cafe\\u0301.txt", b"6"),
}


def test_a_backslash_in_a_name_is_escaped_in_tables_as_ls_b_does(
    data_dir: Path, tmp_path: Path
) -> None:
    from tests.flows.cli_helpers import planned

    root = tmp_path / "root"
    (root / "inbox").mkdir(parents=True)
    for name, (_shown, content) in LOOKALIKES.items():
        (root / os.fsdecode(name)).write_bytes(content)
    op = planned(DataStore(str(data_dir)), root).id
    expected_shown = {f"inbox/{shown}" for shown, _content in LOOKALIKES.values()}

    for command in (["plan", op, "--wide"], ["files", op]):
        ran = _fileorg(*command)
        assert ran.returncode == 0, (command, ran.stderr)
        cells = {cell for line in ran.stdout.decode().splitlines() for cell in line.split()}
        assert expected_shown <= cells, (command, ran.stdout.decode())
    listed = json.loads(_fileorg("plan", op, "--json").stdout)["items"]
    assert {i["src"] for i in listed} == {os.fsdecode(name) for name in LOOKALIKES}
