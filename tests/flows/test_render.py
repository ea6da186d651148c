"""What the CLI's summary and report tables show for the edge cases of a tree: an empty tree
has no empty table, and a reason that names a path is escaped as the paths are."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from flows.cli import render, results


@pytest.fixture
def printed(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    text = io.StringIO()
    monkeypatch.setattr(render, "out", Console(file=text, width=120, highlight=False))
    return text


def _report(by_category: dict[str, Any], left: list[dict[str, Any]]) -> dict[str, Any]:
    plan = dict.fromkeys(("moves", "quarantine", "hardlink", "unchanged", "conflicts"), 0)
    return {
        "files": sum(c["files"] for c in by_category.values()),
        "bytes": sum(c["bytes"] for c in by_category.values()),
        "duplicates": {"groups": 0, "wasted_bytes": 0, "top_groups": []},
        "plan": {**plan, "skipped": len(left)},
        "errors": {"count": 0},
        "by_category": by_category,
        "stages": {"scan": {"seconds": 0.1, "files": 0}},
        "left_alone": {"count": len(left), "items": left},
    }


def test_an_empty_tree_prints_no_empty_category_table(printed: io.StringIO) -> None:
    render.summary(_report({}, []))

    assert "Summary" in printed.getvalue() and "Stages" in printed.getvalue()
    assert "By category" not in printed.getvalue()


def test_a_tree_with_files_prints_its_categories(printed: io.StringIO) -> None:
    render.summary(_report({"images": {"files": 2, "bytes": 10}}, []))

    assert "By category" in printed.getvalue() and "images" in printed.getvalue()


def test_a_left_alone_reason_naming_a_path_is_escaped(printed: io.StringIO) -> None:
    reason = "left alone: the target of a symlink (by bell\x07\nlink)"
    left = [{"path": "a.txt", "reason": reason, "files": 1}]
    render.report_details(_report({"documents": {"files": 1, "bytes": 1}}, left))

    assert "(by bell\\x07\\nlink)" in printed.getvalue()
    assert "\x07" not in printed.getvalue()


def test_the_summary_counts_what_is_left_alone_beside_the_files_to_organize(
    printed: io.StringIO,
) -> None:
    """A root that is a project: nothing to organize, its two loose files left alone where
    they are and two folders left whole; the summary said `files 0` above a tree of 2."""
    report = _report({}, [])
    unit = {"path": "", "reason": "left alone: project (.git): the root itself"}
    report["left_alone"] = {
        "count": 1,
        "files": 2,
        "bytes": 18,
        "folders": 2,
        "items": [{**unit, "files": 2, "bytes": 18, "folders": 2}],
    }

    render.summary(report)
    render.report_details(report)

    words = " ".join(printed.getvalue().split())
    assert "files to organize │ 0 │ 0 B" in words
    assert "left alone │ 2 │ 18 B, 2 folders not entered" in words
    root = "(the root) │ left alone: project (.git): the root itself │ 2 (+2 folders not entered)"
    assert root in words


def test_the_tree_after_apply_says_how_many_of_its_files_stay_left_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows.cli import views
    from storage.previews import Folder

    text = io.StringIO()
    monkeypatch.setattr(views, "err", Console(file=text, width=120, highlight=False))

    views.preview([Folder(b"", files=5, bytes=10, arriving=2, left_alone=3)])

    assert "After apply: 5 files, 10 B (2 moved into place, 3 left alone where they are)" in (
        text.getvalue()
    )


def test_name_conflicts_say_how_many_were_renamed_and_how_many_stay(
    printed: io.StringIO,
) -> None:
    """A file `Documents` where two files need the folder `Documents/`: they stay (reason
    `conflict`), and the summary said `conflicts (renamed) 2` of files nothing renamed."""
    report = _report({"documents": {"files": 3, "bytes": 3}}, [])
    report["plan"]["conflicts"] = 3
    report["by_reason"] = {"renamed": 1, "conflict": 2}

    render.summary(report)

    words = " ".join(printed.getvalue().split())
    assert "name conflicts │ 3 │ 1 renamed, 2 left where they are" in words
    assert "(renamed)" not in words


def test_the_root_is_escaped_in_the_run_line_and_the_apply_question() -> None:
    # A root whose name is not UTF-8 printed as '/tmp/odd root \udce9\udcff' (the fsdecode
    # escapes, which no table shows) and one with a newline on two lines: shown as `ls -b`
    # shows them, as every name in a table is.
    from flows.cli import run
    from storage.operations import OperationRecord

    root = "/tmp/odd root \udce9\udcff/new\nline"
    record = OperationRecord(id="1a2b3c4d", root=root, summary={"moves": 2})

    question = run._question(record, "1a2b3c4d")
    line = run._announce("1a2b3c4d", root)

    for text in (question, line):
        assert "/tmp/odd root \\xe9\\xff/new\\nline" in text
        assert "\udce9" not in text and "\n" not in text
    assert question == "Apply plan 1a2b3c4d to /tmp/odd root \\xe9\\xff/new\\nline (2 moves)?"


def test_a_rollback_lists_the_folders_it_did_not_put_back(monkeypatch: pytest.MonkeyPatch) -> None:
    text = io.StringIO()
    monkeypatch.setattr(results, "err", Console(file=text, width=120, highlight=False))
    folders = [{"path": "caf\udce9", "reason": "not empty: it holds [b]new\n.txt"}]
    result = {"folders_kept": 3, "folders_not_done": folders}

    results._folders_not_done(result)

    assert text.getvalue() == (
        "\n3 folders not as before apply; the first 1:\n"
        "  caf\\xe9/  not empty: it holds [b]new\\n.txt\n"
    )


@pytest.mark.parametrize(
    ("name", "expected_shown"),
    [
        ("caf\u00e9.txt", "caf\u00e9.txt"),  # NFC: as it is
        ("cafe\u0301.txt", "cafe\\u0301.txt"),  # NFD: the combining accent escaped
        ("\u212b.txt", "\\u212b.txt"),  # the Angstrom sign, which NFC replaces
        ("\u1112\u1161\u11ab.txt", "\\u1112\\u1161\\u11ab.txt"),  # Hangul, decomposed
        ("na\u00efve\u0301.txt", "na\u00efve\\u0301.txt"),  # only what NFC would change
    ],
)
def test_a_name_not_in_nfc_shows_its_decomposed_characters_escaped(
    name: str, expected_shown: str
) -> None:
    """Two files whose names differ only in normalization looked the same in every table."""
    assert render.escaped(name) == expected_shown
    assert render.shown(name.encode()) == expected_shown


def test_the_summary_says_why_duplicates_in_subfolders_are_not_linked(
    printed: io.StringIO,
) -> None:
    """--duplicates hardlink --keep-subfolders: the tryout read 'quarantine / hard link 0 / 0'
    and 'already in place 4' of four copies that were only kept in their subfolders."""
    report = _report({"documents": {"files": 5, "bytes": 20}}, [])
    report["plan"].update(moves=1, unchanged=4)
    report["by_reason"] = {"organized": 1, "subfolder": 4}
    report["duplicates"].update(groups=2, in_subfolders=4)
    report["options"] = {"duplicates": "hardlink", "keep_subfolders": True}

    render.summary(report)

    words = " ".join(printed.getvalue().split())
    assert "hard link │ 0 / 0 │ 4 files of duplicate groups in subfolders stay" in words
    assert "already in place │ 0 │" in words
    assert "kept in subfolders │ 4 │ --keep-subfolders sorts the top level only" in words


def test_one_file_in_subfolders_stays_as_it_is(printed: io.StringIO) -> None:
    report = _report({"documents": {"files": 2, "bytes": 20}}, [])
    report["duplicates"].update(groups=1, in_subfolders=1)
    report["options"] = {"duplicates": "quarantine", "keep_subfolders": True}

    render.summary(report)

    assert "1 file of duplicate groups in subfolders stays as it is" in " ".join(
        printed.getvalue().split()
    )


def test_the_summary_says_what_left_alone_and_skipped_count(printed: io.StringIO) -> None:
    left = [{"path": "node_modules", "reason": "left alone: tool folder", "files": 0}]
    report = {**_report({}, left), "operation_id": "5977044a-0000"}

    render.summary(report)

    words = " ".join(printed.getvalue().split())
    assert "left alone: the files a rule keeps where they are, with their bytes." in words
    assert "skipped: every entry the plan leaves where it is (those files, each folder" in words
    assert "fileorg plan 5977044a --action skip" in words
