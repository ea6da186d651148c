"""A file a symlink in the root points at is left alone (`link-target`), so apply never leaves
a link dangling: relative and absolute targets, a chain of links, a path through a linked
folder, and links that leave the root, through the real stages, then apply."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storage.operations import PlanOptions
from tasks.links import link_target, resolve_link
from tests.apply_helpers import Operation

ROOTS = (b"/data/root", b"/real/root")


@pytest.mark.parametrize(
    ("link", "target", "expected_path"),
    [
        (b"a/l", b"x.jpg", b"a/x.jpg"),
        (b"a/l", b"../b/./x.jpg", b"b/x.jpg"),
        (b"l", b"/data/root/b/x.jpg", b"b/x.jpg"),
        (b"l", b"/real/root//b/x.jpg", b"b/x.jpg"),
        (b"l", b"/data/rootless/x.jpg", None),  # a sibling whose name starts the same
        (b"l", b"/elsewhere/x.jpg", None),
        (b"a/l", b"../../x.jpg", None),  # out of the root
        (b"a/l", b"..", None),  # the root itself
    ],
)
def test_a_target_is_resolved_by_its_words_inside_the_root(
    link: bytes, target: bytes, expected_path: bytes | None
) -> None:
    assert link_target(link, target, ROOTS) == expected_path


def test_a_chain_of_links_and_a_linked_folder_on_the_way_resolve_to_the_entry() -> None:
    links = {b"l1": b"l2", b"l2": b"pics/x.jpg", b"pics": b"Pictures/2020", b"loop": b"loop"}

    assert resolve_link(b"l1", links, ROOTS) == b"Pictures/2020/x.jpg"
    assert resolve_link(b"loop", links, ROOTS) is None


def make_linked_tree(root: Path) -> dict[str, str]:
    """Files and the links naming them; each link's path -> what it must still read."""
    (root / "docs").mkdir(parents=True)
    (root / "shots").mkdir()
    (root / "music").mkdir()
    (root / "inbox" / "scans").mkdir(parents=True)
    files = {
        "docs/report.pdf": "%PDF-1.4 report",
        "docs/plain.pdf": "%PDF-1.4 plain, no link names it",
        "shots/a.png": "png a",
        "shots/b.png": "png b",
        "music/song.mp3": "ID3 song",
        "inbox/scans/only.pdf": "%PDF-1.4 the one file of a linked folder",
    }
    for path, text in files.items():
        (root / path).write_text(text)
    os.symlink("docs/report.pdf", root / "latest-report")  # relative
    os.symlink(root / "music" / "song.mp3", root / "docs" / "song")  # absolute
    os.symlink("shots", root / "shots-link")  # a folder: what it holds may move
    os.symlink("../shots-link/a.png", root / "docs" / "a-shot")  # through the linked folder
    os.symlink("latest-report", root / "chained")  # a link to a link
    os.symlink("/etc/hostname", root / "outside")  # out of the root: nothing to keep
    os.symlink("inbox/scans", root / "scans")  # a folder its moves empty: it must stay
    return {
        "latest-report": "%PDF-1.4 report",
        "docs/song": "ID3 song",
        "docs/a-shot": "png a",
        "chained": "%PDF-1.4 report",
    }


def test_files_a_link_names_stay_and_every_link_still_resolves_after_apply(
    tmp_path: Path,
) -> None:
    expected_reads = make_linked_tree(tmp_path / "root")
    op = Operation(tmp_path)
    op.plan()
    rows = op.rows()

    expected_left = {
        b"docs/report.pdf": "chained",  # the first of its links by path
        b"music/song.mp3": "docs/song",
        b"shots/a.png": "docs/a-shot",
    }
    for path, link in expected_left.items():
        row = rows[path]
        assert (row["action"], row["reason_code"]) == ("skip", "link-target"), row
        assert row["reason"] == f"left alone: the target of a symlink (by {link})", row
    assert rows[b"docs/plain.pdf"]["action"] == "move"  # the rule is no blanket
    assert rows[b"shots/b.png"]["action"] == "move"  # nor is a linked folder frozen

    done = op.apply()

    assert done["done"] >= 1  # something did move: the links were at risk
    assert not (tmp_path / "root" / "docs" / "plain.pdf").exists()
    assert not (tmp_path / "root" / "shots" / "b.png").exists()
    assert not (tmp_path / "root" / "inbox" / "scans" / "only.pdf").exists()
    assert (tmp_path / "root" / "scans").is_dir()  # emptied, and kept for its link
    for link, expected_text in expected_reads.items():
        assert (tmp_path / "root" / link).read_text() == expected_text, link
    for dirpath, dirnames, filenames in os.walk(tmp_path / "root"):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path.is_symlink() and name != "outside":
                assert path.exists(), f"{path} dangles"


def test_a_tree_without_links_plans_as_before(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "a.pdf").write_text("%PDF-1.4 a")
    op = Operation(tmp_path, PlanOptions())
    op.plan()

    assert op.rows()[b"a.pdf"]["action"] == "move"
