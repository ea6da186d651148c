"""The plan in parts (tasks.plan.partition) equals the pure planner row for row: on generated
scans, every option varied, and on the nasty tree through the real stages."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage import manifests
from storage.locations import DataStore
from storage.operations import PlanOptions
from storage.queries import connect
from tasks.plan.facts import load_stage_facts, stream_facts
from tasks.plan.partition import plan_facts, plan_parts, plan_table
from tasks.plan.planner import FileFacts, PlanPolicy, plan_moves
from tasks.plan.stage import policy_for
from tests.tasks.plan.test_plan_reuse import plan_stages
from tests.tasks.plan.test_planner import LAYOUTS, policy, scans
from tests.trees import make_home_tree, make_nasty_tree

EXAMPLES = int(os.environ.get("PARTITION_EXAMPLES", "60"))
# Layouts whose folders use the place fields or the tags (and so key the folder table on them).
PLACED = {
    "parent": ("category_year", "{category}/{parent}/{name}"),
    "relative": ("category_year", "{relative_dir}/{year}/{name}"),
    "artist": ("category_year", "{category}/{artist}/{album}/{name}"),
}
ALL_LAYOUTS = {**LAYOUTS, **PLACED}
TAGS = (None, "Band", "band", "Bänd", "AC/DC")


def reference(files: list[FileFacts], pol: PlanPolicy, root_dev: int | None) -> list[Any]:
    return plan_table(plan_moves(files, pol, root_dev)).to_pylist()


@st.composite
def tagged(draw: st.DrawFn, files: list[FileFacts]) -> list[FileFacts]:
    """Some files made audio with tags, date sources drawn (for --undated folder)."""
    out = []
    for f in files:
        if f.kind == "file" and draw(st.booleans()):
            f = dataclasses.replace(
                f, category="audio", artist=draw(st.sampled_from(TAGS)),
                album=draw(st.sampled_from(TAGS)),
            )  # fmt: skip
        source = draw(st.sampled_from(["", "exif", "mtime", "none", "filename"]))
        out.append(dataclasses.replace(f, date_source=source if f.kind == "file" else ""))
    return out


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    duplicates=st.sampled_from(["report", "quarantine", "hardlink"]),
    keep=st.sampled_from(["oldest", "newest", "shortest-path"]),
    layout=st.sampled_from(sorted(ALL_LAYOUTS)),
    include_empty=st.booleans(),
    include_hidden=st.booleans(),
    projects=st.sampled_from(["leave", "move"]),
    albums=st.sampled_from(["tags", "folder", "off"]),
    keep_subfolders=st.booleans(),
    undated=st.sampled_from(["mtime", "folder"]),
    folders_move=st.booleans(),
    root_dev=st.sampled_from([None, 1, 2]),
    exclude=st.sampled_from([(), ("*.txt",), ("in", "*.JPG")]),
    data=st.data(),
)
def test_the_plan_in_parts_equals_the_pure_planner(
    duplicates: str,
    keep: str,
    layout: str,
    include_empty: bool,
    include_hidden: bool,
    projects: str,
    albums: str,
    keep_subfolders: bool,
    undated: str,
    folders_move: bool,
    root_dev: int | None,
    exclude: tuple[str, ...],
    data: st.DataObject,
) -> None:
    mode, template = ALL_LAYOUTS[layout]
    more: dict[str, Any] = {
        "include_hidden": include_hidden, "projects": projects, "albums": albums,
        "keep_subfolders": keep_subfolders, "undated": undated, "folders_move": folders_move,
    }  # fmt: skip
    pol = policy(mode, template, duplicates, keep, include_empty, exclude, **more)
    files = data.draw(scans(pol).flatmap(tagged), label="files")

    rows = plan_facts(files, pol, root_dev)

    assert rows == reference(files, pol, root_dev)


def test_rows_of_every_part_are_planned_once() -> None:
    pol = policy()
    files = [
        FileFacts(b"a.jpg", "file", 10, category="images", ext="jpg"),
        FileFacts(b"x/a.jpg", "file", 11, ino=2, category="images", ext="jpg"),
        FileFacts(b"Images/Unknown/b.jpg", "file", 12, ino=3, category="images", ext="jpg"),
        FileFacts(b"caf\xc3\xa9.jpg", "file", 13, ino=4, category="images", ext="jpg"),
        FileFacts(b".hidden", "file", 14, ino=5),
        FileFacts(b"link", "symlink", ino=6),
    ]

    rows = plan_facts(files, pol)

    assert [(r["src"], r["action"], r["reason_code"]) for r in rows] == [
        (b".hidden", "skip", "hidden"),
        (b"Images/Unknown/b.jpg", "keep", "already-in-place"),
        (b"a.jpg", "move", "organized"),
        (b"caf\xc3\xa9.jpg", "move", "organized"),
        (b"link", "skip", "symlink"),
        (b"x/a.jpg", "move", "renamed"),
    ]
    assert set(manifests.PLAN.names) == set(rows[0])


@pytest.fixture(scope="module", params=[make_nasty_tree, make_home_tree])
def scanned(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[DataStore, str]:
    """A real tree through scan, classify, hash and the plan stage (the default options)."""
    base = tmp_path_factory.mktemp("tree")
    store = DataStore(str(base / "data"))
    request.param(base / "root")
    op_dir, counts = plan_stages(store, base / "root", PlanOptions(), None)
    rows = [r for p in manifests.shard_paths(store, op_dir, "plan")
            for r in manifests.read_table(store, p).to_pylist()]  # fmt: skip
    assert rows == _planned(store, op_dir, PlanOptions())[1]
    assert counts["entries"] == len(rows)
    return store, op_dir


def _planned(store: DataStore, op_dir: str, options: PlanOptions) -> tuple[list[Any], list[Any]]:
    """The plan in parts and the pure planner's, on the facts the stage reads."""
    root_dev = (manifests.done_info(store, op_dir, "scan") or {}).get("root_dev")
    pol = policy_for(options)
    with connect(store) as con:
        load_stage_facts(con, store, op_dir, options.include_empty)
        files = [f for batch in stream_facts(con, "SELECT * FROM facts") for f in batch]
        plan_parts(con, pol, root_dev)
        rows = con.sql("SELECT * FROM plan_rows ORDER BY src").to_arrow_table()
    return rows.cast(manifests.PLAN).to_pylist(), reference(files, pol, root_dev)


@pytest.mark.parametrize(
    "options",
    [
        PlanOptions(duplicates="report"),
        PlanOptions(duplicates="quarantine", include_hidden=True, undated="folder"),
        PlanOptions(duplicates="hardlink", keep="newest", include_empty=True),
        PlanOptions(mode="year_month", keep_subfolders=True, projects="move"),
        PlanOptions(template="{category}/{parent}/{name}", albums="folder"),
        PlanOptions(mode="extension", albums="off", exclude=["*.txt"]),
    ],
    ids=[
        "report",
        "quarantine-hidden-undated",
        "hardlink-empty",
        "year-month-top",
        "parent",
        "ext",
    ],
)
def test_real_trees_are_planned_as_the_pure_planner_does(
    scanned: tuple[DataStore, str], options: PlanOptions
) -> None:
    store, op_dir = scanned

    in_parts, expected = _planned(store, op_dir, options)

    assert in_parts == expected
