"""A plan of a real home folder (tests/trees.make_home_tree), through the real stages (scan,
classify, hash, plan as plain functions): what is left alone and why, projects kept whole,
albums, undated files, duplicates and the reasons in words."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from storage import manifests, queries
from storage.operations import PlanOptions
from tests.apply_helpers import Operation
from tests.trees import (
    HOME_ALBUM,
    HOME_LEFT_ALONE,
    HOME_PHOTO_COPIES,
    HOME_PROJECT,
    HOME_TAXES,
    HOME_UNDATED,
    HOME_UNTAGGED_ALBUM,
    make_home_tree,
)

MOVES = ("move", "quarantine", "hardlink")


def planned(tmp_path: Path, **options: Any) -> tuple[Operation, dict[bytes, dict[str, Any]]]:
    make_home_tree(tmp_path / "root")
    op = Operation(tmp_path, PlanOptions(**options))
    op.plan()
    return op, op.rows()


def test_everything_a_person_would_not_touch_is_left_alone_with_its_reason(
    tmp_path: Path,
) -> None:
    _, rows = planned(tmp_path)

    for path, expected_code in HOME_LEFT_ALONE.items():
        row = rows[path]
        assert (row["action"], row["reason_code"]) == ("skip", expected_code), row
        assert row["reason"].startswith("left alone: "), row
    assert rows[HOME_PROJECT]["reason"] == "left alone: project (.git)"
    assert rows[HOME_PROJECT]["kind"] == "dir"
    # Nothing under a folder left alone was even listed: the scan did not go in.
    folders = [p for p, code in HOME_LEFT_ALONE.items() if rows[p]["kind"] == "dir"]
    assert not [p for p in rows for f in folders if p.startswith(f + b"/")]
    moved = [p for p, r in rows.items() if r["action"] in MOVES]
    assert not [p for p in moved if any(part.startswith(b".") for part in p.split(b"/"))]


def test_hidden_entries_are_organized_only_when_opted_in_and_never_state_or_junk(
    tmp_path: Path,
) -> None:
    """--include-hidden sorts the hidden files people keep (".notes.txt"); a home's dot-files
    and dot-folders configure it (the tryout's .bashrc went to Other/2015/): they stay."""
    make_home_tree(tmp_path / "root")
    for rel in (".notes.txt", "Photos/.IMG_9.jpg", ".gitconfig", ".tmux.conf", ".server.key"):
        (tmp_path / "root" / rel).write_bytes(b"kept\n" + rel.encode())
    firefox = tmp_path / "root/.mozilla/firefox/x"
    firefox.mkdir(parents=True)
    (firefox / "places.sqlite").write_bytes(b"SQLite format 3\x00")
    (firefox / "icon.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    op = Operation(tmp_path, PlanOptions(include_hidden=True))
    op.plan()
    rows = op.rows()

    assert rows[b".notes.txt"]["action"] == "move"
    assert rows[b"Photos/.IMG_9.jpg"]["action"] == "move"
    for config in (b".bashrc", b".profile", b".gitconfig", b".tmux.conf", b".server.key"):
        assert (rows[config]["action"], rows[config]["reason_code"]) == ("skip", "config")
        assert rows[config]["reason"] == f"left alone: configuration ({config.decode()})"
    assert (rows[b".mozilla"]["kind"], rows[b".mozilla"]["reason_code"]) == ("dir", "config")
    assert not [p for p in rows if p.startswith(b".mozilla/")]  # not entered
    for still in (b".ssh", b".config", b".venv", b".cache", b".Trash-0", b".DS_Store"):
        assert rows[still]["action"] == "skip", rows[still]
    assert rows[b"Photos/._IMG_0001.jpg"]["reason_code"] == "junk"


def test_a_whole_home_keeps_its_program_folders_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The root is a whole home (tmp_path stands for /home): what programs keep at its top
    under names that are not hidden (macOS's Library, snaps' data, ~/bin) stays whole, where
    their pictures and archives were sorted into Images/ and Archives/ before; the rest of
    the home is organized as before."""
    monkeypatch.setattr("storage.roots.HOME_PARENTS", (str(tmp_path),))
    root = tmp_path / "root"
    make_home_tree(root)
    for rel in ("Library/Application Support/App/cover.jpg", "snap/firefox/common/x.png"):
        (root / rel).parent.mkdir(parents=True)
        (root / rel).write_bytes(b"\x89PNG\r\n\x1a\n" + rel.encode())
    (root / "bin").mkdir()
    (root / "bin/backup.sh").write_bytes(b"#!/bin/sh\n")
    op = Operation(tmp_path, PlanOptions())
    op.plan()
    rows = op.rows()

    for folder in (b"Library", b"snap", b"bin"):
        row = rows[folder]
        assert (row["kind"], row["action"], row["reason_code"]) == ("dir", "skip", "data-folder")
        assert row["reason"] == f"left alone: application data (a home's {folder.decode()})"
        assert not [p for p in rows if p.startswith(folder + b"/")]  # not entered
    assert rows[b"Downloads/manual.pdf"]["action"] == "move"  # the home's own files


def test_a_project_moves_whole_when_asked(tmp_path: Path) -> None:
    _, rows = planned(tmp_path, projects="move")

    row = rows[HOME_PROJECT]
    assert (row["action"], row["kind"], row["dst"]) == ("move", "dir", b"Projects/myapp")
    assert (row["reason_code"], row["reason"]) == ("project-moved", "project (.git), moved whole")
    assert rows[b"Code/rusty"]["dst"] == b"Projects/rusty"


def test_the_left_alone_query_lists_each_unit_once(tmp_path: Path) -> None:
    op, _ = planned(tmp_path)

    units, total = queries.left_alone(op.store, op.op_dir, limit=None)
    by_path = {u["path"]: u for u in units}

    assert total == len(units) == len(HOME_LEFT_ALONE)
    assert {p: u["reason_code"] for p, u in by_path.items()} == HOME_LEFT_ALONE
    node = by_path[b"node_modules"]
    assert (node["files"], node["bytes"], node["entered"]) == (None, None, False)
    bashrc = by_path[b".bashrc"]
    assert (bashrc["files"], bashrc["bytes"], bashrc["entered"]) == (
        1,
        len(b"alias ll='ls -l'\n"),
        True,
    )
    projects, count = queries.left_alone(op.store, op.op_dir, reason_code="project")
    assert [u["path"] for u in projects] == [b"Code/myapp", b"Code/rusty"] and count == 2


def test_plan_rows_filter_by_reason_code(tmp_path: Path) -> None:
    op, rows = planned(tmp_path)

    junk, total = queries.plan_rows(op.store, op.op_dir, reason_code=["junk", "symlink"])

    expected = sorted(p for p, r in rows.items() if r["reason_code"] in ("junk", "symlink"))
    assert [r["src"] for r in junk] == expected and total == len(expected) == 6


@pytest.mark.parametrize(
    ("albums", "expected_folder"),
    [
        ("tags", b"Audio/The Artist/The Album"),
        ("folder", b"Audio/2020/The Album"),
    ],
)
def test_an_album_moves_as_one_folder_with_its_cover(
    tmp_path: Path, albums: str, expected_folder: bytes
) -> None:
    _, rows = planned(tmp_path, albums=albums)

    album = {p: r for p, r in rows.items() if p.startswith(HOME_ALBUM + b"/")}
    moved = {p: r for p, r in album.items() if r["action"] == "move"}
    assert len(moved) == 4  # three tracks and the cover; .DS_Store stays, junk
    for path, row in moved.items():
        assert row["dst"] == expected_folder + b"/" + os.path.basename(path)
        assert row["reason_code"] == "album"
    demo = rows[HOME_UNTAGGED_ALBUM + b"/01 - take 1.mp3"]
    if albums == "tags":  # no tags: the folders name it
        assert demo["dst"] == b"Audio/Garage Band/Demo Tape/01 - take 1.mp3"
        assert demo["reason"] == "album Garage Band/Demo Tape (folder names)"


def test_albums_off_sorts_tracks_like_any_file(tmp_path: Path) -> None:
    _, rows = planned(tmp_path, albums="off")

    assert rows[HOME_ALBUM + b"/01 - First.mp3"]["dst"] == b"Audio/2020/01 - First.mp3"
    assert rows[HOME_ALBUM + b"/cover.jpg"]["dst"] == b"Images/2020/cover.jpg"


def test_keep_subfolders_sorts_only_the_top_level(tmp_path: Path) -> None:
    make_home_tree(tmp_path / "root")
    (tmp_path / "root" / "loose.pdf").write_bytes(b"%PDF-1.4 loose")
    op = Operation(tmp_path, PlanOptions(keep_subfolders=True))
    op.plan()
    rows = op.rows()

    for name in (b"receipts.csv", b"return.pdf"):
        row = rows[HOME_TAXES + b"/" + name]
        assert (row["action"], row["reason_code"]) == ("keep", "subfolder")
    assert rows[b"loose.pdf"]["action"] == "move"
    assert rows[b"loose.pdf"]["dst"].startswith(b"Documents/")


@pytest.mark.parametrize(
    ("undated", "expected_dst", "expected_reason"),
    [
        ("mtime", b"Documents/2021/ideas.md", "documents by .md, date from mtime 2021-06-01"),
        (
            "folder",
            b"Documents/Undated/ideas.md",
            "documents by .md, no date but mtime 2021-06-01: undated (--undated folder)",
        ),
    ],
)
def test_undated_files_are_dated_honestly(
    tmp_path: Path, undated: str, expected_dst: bytes, expected_reason: str
) -> None:
    _, rows = planned(tmp_path, undated=undated)

    row = rows[b"misc/ideas.md"]
    assert (row["dst"], row["reason"], row["date_source"]) == (
        expected_dst,
        expected_reason,
        "mtime",
    )
    for path in HOME_UNDATED:
        assert rows[path]["date_source"] == "mtime"


def test_the_reason_says_the_rule(tmp_path: Path) -> None:
    _, rows = planned(tmp_path)

    expected = {
        b"Photos/IMG_0002.jpg": ("organized", "images by .jpg, EXIF 2016-08-01"),
        b"Photos/IMG_20190412_153000.jpg": (
            "organized",
            "images by .jpg, date from file name 2019-04-12",
        ),
        b"Photos/IMG_0001.jpg": (
            "duplicate-kept",
            "images by .jpg, EXIF 2015-05-07; kept copy (oldest) of 2",
        ),
        b"Backup/Photos/IMG_0001.jpg": (
            "duplicate",
            "duplicate of Photos/IMG_0001.jpg, which goes to Images/2015/IMG_0001.jpg",
        ),
    }
    assert {p: (rows[p]["reason_code"], rows[p]["reason"]) for p in expected} == expected
    assert set(manifests.REASON_CODES) >= {r["reason_code"] for r in rows.values()}


@pytest.mark.parametrize("duplicates", ["report", "quarantine", "hardlink"])
@pytest.mark.parametrize(
    ("keep", "expected_kept"),
    [("oldest", b"Photos/IMG_0001.jpg"), ("newest", b"Backup/Photos/IMG_0001.jpg")],
)
def test_keep_names_the_kept_copy_in_every_duplicates_mode(
    tmp_path: Path, duplicates: str, keep: str, expected_kept: bytes
) -> None:
    _, rows = planned(tmp_path, duplicates=duplicates, keep=keep)

    (other,) = {b"Photos/IMG_0001.jpg", HOME_PHOTO_COPIES[b"Photos/IMG_0001.jpg"]} - {expected_kept}
    kept = rows[expected_kept]
    assert (kept["action"], kept["reason_code"], kept["dst"]) == (
        "move",
        "duplicate-kept",
        b"Images/2015/IMG_0001.jpg",
    )
    expected_other = {
        "report": ("skip", "duplicate"),
        "quarantine": ("quarantine", "duplicate-quarantined"),
        "hardlink": ("hardlink", "duplicate-linked"),
    }[duplicates]
    assert (rows[other]["action"], rows[other]["reason_code"]) == expected_other
    assert rows[other]["twin"] == expected_kept
