"""What users type: bad values are one line and exit 2 (never an empty table or a library's
text), roots too broad are refused unless asked for, ids can be short, and plans fit 80
columns. Every command runs as a subprocess, side by side, once per module."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from rich.cells import cell_len

from flows.cli.views import middle
from storage import operations
from storage.locations import DataStore
from tests.flows.cli_helpers import Cli, Ran, planned, write_tree
from tests.trees import make_home_tree, snapshot

LONG = "Family Photos/2019 Summer holiday in the mountains with everyone/Day 3 - the lake"
FILES = {
    f"{LONG}/IMG_20190712_101500 the whole family on the boat.jpg": b"\xff\xd8\xff\xe0 boat",
    f"{LONG}/IMG_20190712_101501 the whole family on the boat.jpg": b"\xff\xd8\xff\xe0 boat 2",
    "inbox/[draft] notes.txt": b"notes",
    "inbox/report.pdf": b"%PDF-1.4 report",
}
TWIN_A = "abcd1111-0000-4000-8000-000000000001"
TWIN_B = "abcd2222-0000-4000-8000-000000000002"

BAD: dict[str, tuple[list[str], str]] = {
    "empty root": (["organize", ""], "the root is empty"),
    "blank root": (["organize", "   "], "the root is empty"),
    "the whole disk": (["organize", "/"], "/ is a system folder"),
    "a system folder": (["organize", "/usr"], "/usr is a system folder"),
    "inside a system folder": (["organize", "/etc"], "organize a folder of your files instead"),
    "a system folder asked for": (
        ["organize", "/usr", "--i-mean-it"],  # the tryout's: 92,282 moves of programs planned
        "/usr is a system folder",
    ),
    "the whole home": (["organize", "{home}"], "is your whole home folder"),
    "above the home": (["organize", "{base}"], "holds your whole home folder"),
    "home schedule": (["schedule", "add", "{home}", "--every", "3600"], "--i-mean-it"),
    "a project's subfolder scheduled": (  # its every run would fail on this line
        ["schedule", "add", "{home}/Code/myapp/src", "--every", "3600"],
        "{home}/Code/myapp/src is inside {home}/Code/myapp, which is left alone (project: ",
    ),
    # What a walk from higher up leaves alone is not organized when it is the root either.
    "a project's subfolder": (
        ["organize", "{home}/Code/myapp/src"],
        "{home}/Code/myapp/src is inside {home}/Code/myapp, which is left alone (project: "
        ".git): organize a folder outside it",
    ),
    "credentials": (["organize", "{home}/.ssh"], "is left alone (credentials: .ssh)"),
    "a tool folder": (
        ["organize", "{home}/node_modules/left-pad"],
        "is inside {home}/node_modules, which is left alone (tool or state folder",
    ),
    "a hidden folder": (
        ["organize", "{home}/.cache/thumbnails"],
        "is left alone (tool or state folder: cache, .cache)",
    ),
    "the data folder": (
        ["organize", "{base}/data"],
        "{base}/data is left alone (application data: fileorg data folder)",
    ),
    "dry run and apply": (["organize", "{root}", "--dry-run", "--apply"], "opposite things"),
    "unknown duplicates": (
        ["organize", "{root}", "--duplicates", "delete"],
        "--duplicates: 'delete' is not one of 'report', 'quarantine', 'hardlink'",
    ),
    "unknown keep": (["organize", "{root}", "--keep", "best"], "--keep: 'best' is not one of"),
    "unknown action": (
        ["plan", "{op}", "--action", "mvoe"],
        "unknown action 'mvoe': use move, keep, skip, quarantine or hardlink",
    ),
    "unknown outcome": (
        ["plan", "{op}", "--outcome", "lost"],
        "unknown outcome 'lost': use applied, skipped, conflict, failed, unfinished,",
    ),
    "zero limit": (["plan", "{op}", "--limit", "0"], "--limit must be 1 or more (got 0)"),
    "negative limit": (["files", "{op}", "--limit", "-5"], "--limit must be 1 or more (got -5)"),
    "negative offset": (["duplicates", "{op}", "--offset", "-1"], "--offset must be 0 or more"),
    "limit not a number": (["plan", "{op}", "--limit", "ten"], "--limit: expected a whole number"),
    "unknown category": (["files", "{op}", "--category", "pictures"], "use images, videos"),
    "unknown sort": (["files", "{op}", "--sort", "colour"], "use path, size, date or name"),
    "sizes the wrong way": (["files", "{op}", "--min-size", "9", "--max-size", "1"], "more than"),
    "unknown status": (["operations", "--status", "done"], "unknown status 'done': use pending"),
    "ambiguous prefix": (["plan", "abcd"], "id prefix 'abcd' matches 2 operations"),
    "unknown prefix": (["report", "ffff0000"], "no operation with id ffff0000"),
    "bad cron": (["schedule", "add", "{root}", "--cron", "0 3 31 2 *"], "never fires"),
    "seconds cron": (["schedule", "add", "{root}", "--cron", "* * * * * *"], "has 6 fields"),
    "bad timezone": (
        ["schedule", "add", "{root}", "--cron", "0 3 * * 0", "--timezone", "Mars/Base"],
        "unknown timezone 'Mars/Base'",
    ),
    "zero interval": (["schedule", "add", "{root}", "--every", "0"], "--every must be 1 second"),
    "unknown option": (["plan", "{op}", "--colour"], "no such option: --colour"),
    # Click's guesses only when close (it offered --i-mean-it for --limit, --version for
    # --json), and the command's own help where the command line names one.
    "an option before its command": (
        ["--json", "plan", "{op}"],
        "before the command: --json (it goes after it: fileorg plan ... --json) "
        "(see fileorg plan --help)",
    ),
    "no close option": (
        ["organize", "{root}", "--limit", "0"],
        "error: no such option: --limit (see fileorg organize --help)",
    ),
    "a close option": (["plan", "{op}", "--wdie"], "--wdie; did you mean --wide?"),
    "an option without its value": (
        ["organize", "{root}", "--mode"],
        "see fileorg organize --help",
    ),
    "missing argument": (["plan"], "Missing argument"),
    # --yes as apply takes it (a script's apply ... --yes; rollback ... --yes failed at the undo)
    "rollback of a plan, --yes": (["rollback", "{op}", "--yes"], "was never applied"),
}
GOOD: dict[str, list[str]] = {
    "plan": ["plan", "{op}"],
    "plan wide": ["plan", "{op}", "--wide"],
    "plan by prefix": ["plan", "{op8}", "--json"],
    "plan last": ["plan", "last", "--json"],
    "nothing with that outcome": ["plan", "{op}", "--outcome", "conflict"],
    "operations": ["operations"],
    "home with --i-mean-it": ["organize", "{home}", "--i-mean-it"],
}


@pytest.fixture(scope="module")
def runs(
    tmp_path_factory: pytest.TempPathFactory, prefect_server: str
) -> dict[str, tuple[Ran, dict[str, str]]]:
    base = tmp_path_factory.mktemp("input")
    write_tree(base / "root", FILES)
    make_home_tree(base / "home")
    env = {k: v for k, v in os.environ.items() if k not in ("FILEORG_DEBUG", "COLUMNS")}
    env.update(
        FILEORG_DATA_URL=str(base / "data"),  # outside the home folder, as an operator's
        PREFECT_API_URL=prefect_server,
        HOME=str(base / "home"),
        PREFECT_HOME=str(base / "prefect"),  # Prefect's own state, not the user's files
    )
    cli = Cli(env)
    for twin in (TWIN_A, TWIN_B):
        planned(cli.store, base / "root", operation_id=twin)
    record = planned(cli.store, base / "root")  # the newest: `last`
    names = {
        "base": str(base),
        "root": str(base / "root"),
        "home": str(base / "home"),
        "op": record.id,
        "op8": record.id[:8],
        "home_before": json.dumps(sorted(os.fsdecode(p) for p in snapshot(base / "home"))),
    }
    commands = {**{k: v[0] for k, v in BAD.items()}, **GOOD}
    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = {
            case: pool.submit(cli.run, *(a.format(**names) for a in argv))
            for case, argv in commands.items()
        }
        return {case: (f.result(), names) for case, f in futures.items()}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_and_status_2(
    runs: dict[str, tuple[Ran, dict[str, str]]], case: str
) -> None:
    ran, names = runs[case]
    expected_words = BAD[case][1].format(**names)

    assert ran.returncode == 2, ran.stderr
    assert len(ran.stderr.splitlines()) == 1, ran.stderr
    assert ran.stderr.startswith("error: ")
    assert expected_words in ran.stderr
    assert "Traceback" not in ran.stderr and "╭" not in ran.stderr
    assert "Value error" not in ran.stderr and "Input should" not in ran.stderr
    assert ran.stdout == ""


def test_refused_roots_start_no_operation(runs: dict[str, tuple[Ran, dict[str, str]]]) -> None:
    store = DataStore(str(Path(runs["plan"][1]["base"]) / "data"))
    roots = {r.root for r in operations.list_all(store)}

    assert roots <= {runs["plan"][1]["root"], runs["plan"][1]["home"]}
    assert [r.root for r in operations.list_all(store)].count(runs["plan"][1]["home"]) == 1


def test_the_plan_fits_80_columns(runs: dict[str, tuple[Ran, dict[str, str]]]) -> None:
    ran, _ = runs["plan"]
    lines = ran.stdout.splitlines()

    assert ran.returncode == 0, ran.stderr
    assert len(lines) == 1 + len(FILES)  # a header and every row, none wrapped
    assert max(cell_len(line.rstrip()) for line in lines) <= 80
    assert "…" in ran.stdout
    # Four columns share 80 cells, so a path gets about 26: the end of its file name survives
    # (its top folder only where it fits in half the cells: test_middle_keeps_a_short_top_folder).
    assert "Fami…" in ran.stdout
    assert "on the boat.jpg " in ran.stdout
    assert "inbox/[draft] notes.txt" in ran.stdout  # brackets are text, not markup


def test_wide_shows_whole_paths(runs: dict[str, tuple[Ran, dict[str, str]]]) -> None:
    """Every path whole, folded inside its column: the tryout's --wide rows were 650 cells
    on one line, which the terminal wrapped across every column."""
    ran, _ = runs["plan wide"]
    header, *lines = ran.stdout.splitlines()
    destination, action = header.index("destination"), header.index("action")
    reason = header.index("reason")
    sources: list[str] = []
    for line in lines:  # a row starts on the line that names its action
        if line[action:reason].strip():
            sources.append("")
        sources[-1] += line[:destination].replace(" ", "")

    assert ran.returncode == 0, ran.stderr
    assert max(cell_len(line.rstrip()) for line in [header, *lines]) <= 80
    assert len(lines) > len(FILES)  # the long paths take more than a line
    assert sorted(sources) == sorted(rel.replace(" ", "") for rel in FILES)
    assert "…" not in ran.stdout


@pytest.mark.parametrize("case", ["plan by prefix", "plan last"])
def test_short_ids_and_last_name_the_operation(
    runs: dict[str, tuple[Ran, dict[str, str]]], case: str
) -> None:
    ran, names = runs[case]

    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["operation_id"] == names["op"]


def test_no_rows_is_a_sentence_not_an_empty_table(
    runs: dict[str, tuple[Ran, dict[str, str]]],
) -> None:
    ran, _ = runs["nothing with that outcome"]

    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == ""
    assert ran.stderr.strip() == "no planned files with outcome conflict"


def test_operations_lists_short_ids(runs: dict[str, tuple[Ran, dict[str, str]]]) -> None:
    ran, names = runs["operations"]

    assert ran.returncode == 0, ran.stderr
    assert names["op8"] in ran.stdout and names["op"] not in ran.stdout
    assert TWIN_A[:8] in ran.stdout  # two ids share 4 characters, not 8


def test_the_whole_home_is_planned_when_asked_for(
    runs: dict[str, tuple[Ran, dict[str, str]]],
) -> None:
    ran, names = runs["home with --i-mean-it"]
    home = Path(names["home"])

    assert ran.returncode == 0, ran.stderr
    assert "nothing changed" in ran.stderr
    assert json.dumps(sorted(os.fsdecode(p) for p in snapshot(home))) == names["home_before"]


@pytest.mark.parametrize("width", [30, 40, 60])
def test_middle_keeps_a_short_top_folder_and_the_end_of_the_name(width: int) -> None:
    path = f"{LONG}/IMG_20190712_101500 the whole family on the boat.jpg"
    short = middle(path, width)

    assert cell_len(short) == width
    assert short.startswith("Family Photos/…")
    assert short.endswith("on the boat.jpg")


def test_middle_leaves_a_path_that_fits_whole() -> None:
    assert middle("inbox/report.pdf", 16) == "inbox/report.pdf"
