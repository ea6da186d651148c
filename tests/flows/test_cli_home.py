"""`fileorg organize` on a real home folder, as a user types it (a subprocess of the console
script, against the session's Prefect server): what is left alone and why, projects kept or
moved whole (applied and rolled back), albums, undated files, --keep, and exact reasons."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from storage.manifests import LEFT_ALONE_CODES
from tests.apply_helpers import differences
from tests.trees import (
    HOME_ALBUM,
    HOME_LEFT_ALONE,
    HOME_PHOTO_COPIES,
    HOME_PROJECT,
    make_home_tree,
    snapshot,
)

FILEORG = Path(sys.executable).parent / "fileorg"
MOVES = ("move", "quarantine", "hardlink")


class Cli:
    def __init__(self, data: Path, prefect_server: str) -> None:
        env = {k: v for k, v in os.environ.items() if k != "FILEORG_DEBUG"}
        # A wide terminal, so that the summary's lines are not folded.
        self.env = {**env, "FILEORG_DATA_URL": str(data), "PREFECT_API_URL": prefect_server}
        self.env["COLUMNS"] = "200"

    def run(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [FILEORG, *args], env=self.env, capture_output=True, text=True, timeout=180
        )

    def json(self, *args: str | Path) -> Any:
        result = self.run(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def organize(self, root: Path, *options: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The organize document and the plan's rows by source path (`fileorg plan`)."""
        document = self.json("organize", root, "--dry-run", *options)
        listing = self.json("plan", document["operation_id"], "--limit", "100000")
        assert listing["total"] == len(listing["items"])
        return document, {row["src"]: row for row in listing["items"]}


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory, prefect_server: str) -> Cli:
    return Cli(tmp_path_factory.mktemp("home-data"), prefect_server)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("home") / "alex"
    make_home_tree(root)
    return root


@pytest.fixture(scope="module")
def default_plan(cli: Cli, home: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    return cli.organize(home)


def test_a_dry_run_leaves_alone_what_a_person_would_and_lists_it_with_reasons(
    default_plan: tuple[dict[str, Any], dict[str, Any]], home: Path
) -> None:
    document, rows = default_plan
    left = document["report"]["left_alone"]

    listed = {item["path"]: item["reason_code"] for item in left["items"]}
    assert listed == {os.fsdecode(p): code for p, code in HOME_LEFT_ALONE.items()}
    assert left["count"] == len(HOME_LEFT_ALONE)
    project = next(i for i in left["items"] if i["path"] == os.fsdecode(HOME_PROJECT))
    assert (project["reason"], project["entered"]) == ("left alone: project (.git)", False)
    moved = [src for src, row in rows.items() if row["action"] in MOVES]
    assert moved, rows
    assert not [p for p in moved if any(part.startswith(".") for part in p.split("/"))]
    assert not [p for p in moved if p.startswith(os.fsdecode(HOME_PROJECT) + "/")]
    assert not [p for p in moved if p.startswith(("node_modules/", "prefect-home/"))]


def test_the_summary_names_the_exact_reasons_for_what_stays(
    default_plan: tuple[dict[str, Any], dict[str, Any]], cli: Cli, home: Path
) -> None:
    document, rows = default_plan
    by_reason = document["report"]["by_reason"]
    assert by_reason == dict(sorted(Counter(r["reason_code"] for r in rows.values()).items()))

    result = cli.run("organize", home, "--dry-run")

    assert result.returncode == 0, result.stderr
    stays = [*LEFT_ALONE_CODES, "duplicate", "not-linked", "conflict"]
    expected = ", ".join(f"{code} {by_reason[code]}" for code in stays if code in by_reason)
    assert expected.startswith("hidden 2, junk 5, tool-folder 11, credentials 1, ")
    assert expected in result.stdout, result.stdout
    assert "symlinks, excluded, unreadable" not in result.stdout


def test_every_file_ends_organized_or_stays_with_its_reason(
    default_plan: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    _, rows = default_plan

    for row in rows.values():
        assert row["reason_code"], row
        if row["action"] in ("skip", "keep"):
            assert row["dst"] is None and row["reason"], row
    photo = rows["Photos/IMG_0001.jpg"]
    assert (photo["reason_code"], photo["reason"]) == (
        "duplicate-kept",
        "images by .jpg, EXIF 2015-05-07; kept copy (oldest) of 2",
    )
    copy = rows[os.fsdecode(HOME_PHOTO_COPIES[b"Photos/IMG_0001.jpg"])]
    assert (copy["action"], copy["reason_code"], copy["twin"]) == (
        "skip",
        "duplicate",
        "Photos/IMG_0001.jpg",
    )
    assert rows["Photos/IMG_20190412_153000.jpg"]["reason"].endswith(
        "date from file name 2019-04-12"
    )
    track = rows[os.fsdecode(HOME_ALBUM) + "/01 - First.mp3"]
    assert track["dst"] == "Audio/The Artist/The Album/01 - First.mp3"


def test_keep_newest_and_undated_folder_from_the_command_line(cli: Cli, home: Path) -> None:
    _, rows = cli.organize(home, "--keep", "newest", "--undated", "folder")

    backup = os.fsdecode(HOME_PHOTO_COPIES[b"Photos/IMG_0001.jpg"])
    assert (rows[backup]["action"], rows[backup]["reason_code"]) == ("move", "duplicate-kept")
    assert rows["Photos/IMG_0001.jpg"]["reason_code"] == "duplicate"
    assert rows["misc/ideas.md"]["dst"] == "Documents/Undated/ideas.md"


def test_a_project_moved_whole_is_applied_and_rolled_back_exactly(cli: Cli, tmp_path: Path) -> None:
    root = tmp_path / "sam"
    make_home_tree(root)
    before = snapshot(root)
    document, rows = cli.organize(root, "--projects", "move")
    project = rows[os.fsdecode(HOME_PROJECT)]
    assert (project["action"], project["kind"], project["dst"]) == (
        "move",
        "dir",
        "Projects/myapp",
    )
    inode = os.lstat(root / os.fsdecode(HOME_PROJECT)).st_ino

    applied = cli.json("apply", document["operation_id"])

    assert applied["status"] == "applied", applied
    assert os.lstat(root / "Projects" / "myapp").st_ino == inode
    assert (root / "Projects/myapp/docs/logo.png").is_file()
    assert (root / ".ssh/id_rsa").is_file() and (root / "node_modules/left-pad").is_dir()
    rolled = cli.json("rollback", document["operation_id"])
    assert rolled["status"] == "rolled_back", rolled
    assert differences(before, snapshot(root)) == []


def test_moving_projects_on_a_bucket_is_refused_in_one_line(cli: Cli) -> None:
    result = cli.run("organize", "s3://some-bucket/home", "--projects", "move", "--dry-run")

    assert result.returncode == 2, result
    assert "projects 'move' is not possible on an object-store root" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def folders(snap: dict[bytes, Any]) -> dict[bytes, tuple[int, int]]:
    return {path: (e.mode, e.mtime_ns) for path, e in snap.items() if e.kind == "dir"}


def test_apply_removes_the_folders_it_emptied_and_rollback_brings_them_back(
    cli: Cli, tmp_path: Path
) -> None:
    """Issue 11: no skeleton of the old tree after apply; rollback gives back every folder
    with its mode and times, the ones apply only wrote into and the root included."""
    root = tmp_path / "kim"
    make_home_tree(root)
    (root / "Empty before").mkdir()
    before = snapshot(root)

    applied = cli.json("organize", root, "--apply")

    assert applied["status"] == "applied", applied
    after = snapshot(root)
    assert b"misc" in before and b"misc" not in after  # held only ideas.md, which moved
    assert b"Empty before" in after  # empty before apply: not apply's to remove
    assert b"Photos/Thumbs.db" in after  # junk left alone keeps its folder
    assert b".ssh/id_rsa" in after and b"Code/myapp/.git" in after
    emptied = {p for p in folders(before) if p not in after}
    assert emptied and not any(p.startswith(b".") for p in emptied)
    rolled = cli.json("rollback", applied["operation_id"])
    assert rolled["status"] == "rolled_back", rolled
    assert rolled["rollback"]["folders_recreated"] == len(emptied)
    again = snapshot(root)
    assert differences(before, again) == []
    assert folders(again) == folders(before)
