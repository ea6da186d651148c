"""A re-run on an unchanged tree copies the previous operation's listing manifest (its plan was
reused, so every input of the manifest is equal) instead of building it again: the copy is
what a build would write, under a build id of its own; anything changed builds afresh."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from storage import queries
from storage.locations import DataStore
from storage.operations import PlanOptions
from storage.queries import listing_manifest
from tasks.stages import listing_task
from tests.tasks.plan.test_plan_reuse import make_tree, plan_stages


def listing_rows(store: DataStore, op_dir: str) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every file of the operation's listing manifest, by file name."""
    paths = store.glob(f"{op_dir}/{listing_manifest.FOLDER}/*.parquet")
    assert paths
    return {
        path.rsplit("/", 1)[-1]: duckdb.sql(f"SELECT * FROM '{path}'").fetchall() for path in paths
    }


def test_an_unchanged_tree_copies_the_listing_a_build_would_write(tmp_path: Path) -> None:
    store = DataStore(str(tmp_path / "data"))
    make_tree(tmp_path / "root")
    first_dir, _ = plan_stages(store, tmp_path / "root", PlanOptions(), None)
    first = listing_task.fn(store, first_dir, False)
    second_dir, planned = plan_stages(store, tmp_path / "root", PlanOptions(), first_dir)
    assert planned["reused_from"] == first_dir.rsplit("/", 1)[-1]  # the case under test

    copied = listing_task.fn(store, second_dir, False)

    assert copied["copied_from"] == first_dir.rsplit("/", 1)[-1]
    assert copied["build"] != first["build"]
    assert {k: v for k, v in copied.items() if k not in ("build", "copied_from")} == {
        k: v for k, v in first.items() if k != "build"
    }
    assert queries.listing_info(store, second_dir) == copied
    rows = listing_rows(store, second_dir)
    store.remove(f"{second_dir}/{listing_manifest.FOLDER}")
    rebuilt = queries.build_listing(store, second_dir, include_empty=False)
    assert "copied_from" not in rebuilt
    assert listing_rows(store, second_dir) == rows
    assert rows["files-path.parquet"]  # the tree's files are in it


def test_a_changed_tree_or_other_options_build_afresh(tmp_path: Path) -> None:
    store = DataStore(str(tmp_path / "data"))
    root = tmp_path / "root"
    make_tree(root)
    first_dir, _ = plan_stages(store, root, PlanOptions(), None)
    listing_task.fn(store, first_dir, False)

    # The same plan, but the manifest asked for with the other include_empty: built.
    same_dir, planned = plan_stages(store, root, PlanOptions(), first_dir)
    assert "reused_from" in planned
    assert "copied_from" not in listing_task.fn(store, same_dir, True)
    # A changed file: the plan is not reused, so neither is the manifest.
    os.utime(root / "notes.txt", ns=(10**18, 10**18))
    changed_dir, planned = plan_stages(store, root, PlanOptions(), first_dir)
    assert "reused_from" not in planned
    built = listing_task.fn(store, changed_dir, False)
    assert "copied_from" not in built
    mtimes = dict(
        duckdb.sql(
            "SELECT path, mtime_ns FROM "
            f"'{store.glob(f'{changed_dir}/listing/files-path.parquet')[0]}'"
        ).fetchall()
    )
    assert mtimes[b"notes.txt"] == 10**18


def test_a_source_whose_manifest_never_finished_is_not_copied(tmp_path: Path) -> None:
    store = DataStore(str(tmp_path / "data"))
    make_tree(tmp_path / "root")
    first_dir, _ = plan_stages(store, tmp_path / "root", PlanOptions(), None)
    listing_task.fn(store, first_dir, False)
    store.remove(f"{first_dir}/{listing_manifest.FOLDER}/{listing_manifest.DONE}")  # a crash
    second_dir, planned = plan_stages(store, tmp_path / "root", PlanOptions(), first_dir)
    assert planned["reused_from"]

    built = listing_task.fn(store, second_dir, False)

    assert "copied_from" not in built
    assert listing_rows(store, second_dir)["files-path.parquet"]
