"""The organize flow on the nasty tree, in-process under the session's Prefect server."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from flows.organize import organize_flow
from storage import operations, queries
from storage.errors import InvalidPlanOptions, RootError
from storage.locations import DataStore
from storage.operations import PlanOptions
from storage.paths import to_param
from storage.settings import get_settings
from tests.trees import (
    BIG,
    PREFIX_BYTES,
    UNREADABLE_DIR,
    Entry,
    expected_duplicate_inodes,
    make_nasty_tree,
    make_unreadable,
    outside_dir,
    reachable_files,
    snapshot,
)

Inode = tuple[int, int]


@dataclass(frozen=True)
class Organized:
    """One dry run of the nasty tree, shared by the tests that only read its results."""

    root: Path
    store: DataStore
    operation_id: str
    flow_run_id: uuid.UUID
    report: dict[str, Any]
    before: dict[bytes, Entry]
    outside_before: dict[bytes, Entry]

    @property
    def op_dir(self) -> str:
        return self.store.operation_dir(self.operation_id)

    def plan(self) -> dict[bytes, dict[str, Any]]:
        rows, _ = queries.plan_rows(self.store, self.op_dir, limit=None)
        return {row["src"]: row for row in rows}


def _organize_nasty(base: Path, options: PlanOptions) -> Organized:
    root = base / "root"
    make_nasty_tree(root)
    make_unreadable(root)
    data = base / "data"
    data.mkdir()
    before, outside_before = snapshot(root), snapshot(outside_dir(root))
    operation_id = str(uuid.uuid4())
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FILEORG_DATA_URL", str(data))
        get_settings.cache_clear()
        try:
            state = organize_flow(
                operation_id=operation_id, root=str(root), options=options, return_state=True
            )
        finally:
            get_settings.cache_clear()
    return Organized(
        root=root,
        store=DataStore(str(data)),
        operation_id=operation_id,
        flow_run_id=state.state_details.flow_run_id,
        report=state.result(),
        before=before,
        outside_before=outside_before,
    )


@pytest.fixture(scope="module")
def organize_nasty(
    tmp_path_factory: pytest.TempPathFactory, prefect_server: str
) -> Iterator[Callable[[bool], Organized]]:
    """Organized nasty trees, one per include_empty setting, each made once per module."""
    made: dict[bool, Organized] = {}

    def get(include_empty: bool) -> Organized:
        if include_empty not in made:
            base = tmp_path_factory.mktemp("organized")
            made[include_empty] = _organize_nasty(base, PlanOptions(include_empty=include_empty))
        return made[include_empty]

    yield get


@pytest.fixture
def organized(organize_nasty: Callable[[bool], Organized]) -> Organized:
    return organize_nasty(False)


def organize(root: Path, **options: Any) -> tuple[str, dict[str, Any]]:
    """A dry run in the data folder of the `data_dir` fixture."""
    operation_id = str(uuid.uuid4())
    report = organize_flow(
        operation_id=operation_id, root=to_param(str(root)), options=PlanOptions(**options)
    )
    return operation_id, report


# --- duplicates against jdupes, fdupes and rmlint ---------------------------------------------

# Hard links are where the tools differ, so groups are compared by their distinct inodes:
# jdupes and fdupes list one name per inode by default ("linked files are not duplicates, for
# safety") and never report a group made of links alone; rmlint lists every name, and also a
# group of links alone (links/solo.dat); our query lists every name and counts copies by inode.
# The set of distinct (dev, ino) per group, dropping groups with a single inode, is what all
# four agree on. Empty files: jdupes skips them unless -z, fdupes counts them unless -n, rmlint
# reports them as lint of their own (never a duplicate group) and so only joins the default case.
REFERENCE_TOOLS: dict[tuple[str, bool], list[str]] = {
    ("jdupes", False): ["jdupes", "-r", "-q"],
    ("jdupes", True): ["jdupes", "-r", "-q", "-z"],
    ("fdupes", False): ["fdupes", "-r", "-q", "-n"],
    ("fdupes", True): ["fdupes", "-r", "-q"],
    ("rmlint", False): ["rmlint", "-T", "df", "-o", "fdupes"],
}


def require_tool(name: str) -> None:
    if shutil.which(name) is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is required in CI (apt-get install {name})")
        pytest.skip(f"{name} is not installed")


def reference_groups(argv: list[str], root: Path, cwd: Path) -> list[list[bytes]]:
    """Groups from fdupes-style output (one path a line, groups split by blank lines)."""
    # cwd outside the root: rmlint may write its own files into the working directory.
    result = subprocess.run([*argv, str(root)], cwd=cwd, capture_output=True, check=True)
    groups: list[list[bytes]] = [[]]
    for line in result.stdout.split(b"\n"):
        if line:
            groups[-1].append(line)
        elif groups[-1]:
            groups.append([])
    return [g for g in groups if g]


def by_inode(groups: list[list[bytes]]) -> set[frozenset[Inode]]:
    out = set()
    for paths in groups:
        inodes = frozenset((st.st_dev, st.st_ino) for st in map(os.lstat, paths))
        if len(inodes) > 1:
            out.add(inodes)
    return out


def our_groups(run: Organized) -> list[list[bytes]]:
    record = operations.load(run.store, run.operation_id)
    rows, total = queries.duplicate_groups(
        run.store, run.op_dir, record.options.include_empty, limit=None
    )
    assert total == len(rows)
    root = os.fsencode(run.root)
    return [[root + b"/" + p for p in row["paths"]] for row in rows]


def snapshot_groups(run: Organized, include_empty: bool) -> set[frozenset[Inode]]:
    dev = os.lstat(run.root).st_dev
    return {
        frozenset((dev, ino) for ino in group)
        for group in expected_duplicate_inodes(run.before, include_empty)
    }


@pytest.mark.parametrize(
    ("tool", "include_empty", "expected_groups"),
    [
        ("jdupes", False, 6),
        ("jdupes", True, 7),
        ("fdupes", False, 6),
        ("fdupes", True, 7),
        ("rmlint", False, 6),
    ],
)
def test_duplicate_groups_agree_with_reference_tool(
    organize_nasty: Callable[[bool], Organized],
    tmp_path: Path,
    tool: str,
    include_empty: bool,
    expected_groups: int,
) -> None:
    require_tool(tool)
    run = organize_nasty(include_empty)

    ours = by_inode(our_groups(run))
    theirs = by_inode(reference_groups(REFERENCE_TOOLS[tool, include_empty], run.root, tmp_path))

    assert ours == theirs
    assert ours == snapshot_groups(run, include_empty)
    assert len(ours) == expected_groups


def test_hard_links_are_listed_but_counted_once(organized: Organized) -> None:
    rows, _ = queries.duplicate_groups(organized.store, organized.op_dir, limit=None)
    linked = next(r for r in rows if b"links/original.dat" in r["paths"])

    assert linked["paths"] == [
        b"links/hardlink.dat",
        b"links/original.dat",
        b"links/separate copy.dat",
    ]
    assert linked["copies"] == 2
    assert linked["wasted_bytes"] == linked["size"]
    assert not any(b"links/solo.dat" in r["paths"] for r in rows)


# --- dry run ------------------------------------------------------------------------------------


def test_planning_ends_with_the_listing_manifest_the_pages_read(organized: Organized) -> None:
    store = organized.store
    op_dir = store.operation_dir(organized.operation_id)
    built = queries.listing_info(store, op_dir)

    assert built is not None
    files, files_total = queries.file_rows(store, op_dir, limit=500, sort="size", descending=True)
    plan, plan_total = queries.plan_rows(store, op_dir, limit=500)
    groups, groups_total = queries.duplicate_groups(store, op_dir, limit=500)
    assert (built["files"], built["plan"], built["duplicates"]) == (
        files_total,
        plan_total,
        groups_total,
    )
    assert queries.files_page(store, op_dir, 500, sort="size", descending=True).rows == files
    assert queries.plan_page(store, op_dir, 500).rows == plan
    assert queries.duplicates_page(store, op_dir, 500).rows == groups


def test_dry_run_changes_nothing(organized: Organized) -> None:
    # Paths, content, modes, mtimes, inodes and link counts of every entry, the root included.
    assert snapshot(organized.root) == organized.before
    assert snapshot(outside_dir(organized.root)) == organized.outside_before


def test_dry_run_writes_only_inside_its_operation_folder(organized: Organized) -> None:
    written = {p.name for p in Path(organized.store.operations_dir()).iterdir()}

    assert written == {organized.operation_id}


# --- the plan -----------------------------------------------------------------------------------


def test_plan_has_one_row_per_reachable_entry(organized: Organized) -> None:
    plan = organized.plan()
    reachable = {
        path
        for path, entry in organized.before.items()
        if entry.kind in ("file", "symlink") and not path.startswith(b"deep/")
    }
    errors = {src for src, row in plan.items() if src.startswith(b"deep/")}

    assert set(plan) == reachable | errors
    assert len(errors) == 1


def test_plan_destinations_are_unique_relative_and_new(organized: Organized) -> None:
    existing = {os.fsdecode(p).casefold() for p in organized.before}
    destinations = [row["dst"] for row in organized.plan().values() if row["dst"] is not None]
    folded = Counter(os.fsdecode(d).casefold() for d in destinations)

    assert destinations
    assert [d for d, n in folded.items() if n > 1] == []
    assert [d for d in folded if d in existing] == []
    for dst in destinations:
        parts = dst.split(b"/")
        assert not dst.startswith(b"/")
        assert not {b"", b".", b".."} & set(parts), dst
        assert max(len(p) for p in parts) <= 255, dst


def test_plan_skips_every_symlink(organized: Organized) -> None:
    plan = organized.plan()
    symlinks = [p for p, e in organized.before.items() if e.kind == "symlink"]

    assert len(symlinks) == 4
    assert {(plan[p]["action"], plan[p]["dst"]) for p in symlinks} == {("skip", None)}


def test_sidecar_follows_its_main_file(organized: Organized) -> None:
    plan = organized.plan()
    main_dst = plan[b"camera/IMG_0001.jpg"]["dst"]
    sidecar_dst = plan[b"camera/IMG_0001.xmp"]["dst"]

    assert sidecar_dst == main_dst.rpartition(b".")[0] + b".xmp"


def test_case_only_twins_get_distinct_destinations(organized: Organized) -> None:
    plan = organized.plan()
    upper, lower = plan[b"photos/Photo.JPG"], plan[b"photos/photo.jpg"]

    assert os.fsdecode(upper["dst"]).casefold() != os.fsdecode(lower["dst"]).casefold()
    # The plan goes in byte order: "Photo.JPG" (0x50) keeps its name, "photo.jpg" yields.
    assert (upper["reason_code"], lower["reason_code"]) == ("organized", "renamed")
    assert lower["reason"].endswith(
        "; renamed: Images/2019/photo.jpg is taken by Images/2019/Photo.JPG (names that differ"
        " only in case are one name on a case-insensitive disk)"
    )


@pytest.mark.parametrize(
    ("src", "expected_dst"),
    [
        (b"caf\xe9.txt", b"Documents/2019/caf\xe9.txt"),
        (b"na\xefve \xff dir/r\xe9sum\xe9.doc", b"Documents/2019/r\xe9sum\xe9.doc"),
        (b"docs/2020-01-15 invoice.pdf", b"Documents/2020/2020-01-15 invoice.pdf"),
        (
            b"Screenshot 2021-03-04 at 10.11.12.png",
            b"Images/2021/Screenshot 2021-03-04 at 10.11.12.png",
        ),
        (b"misc/picture", b"Images/2019/picture"),
        (b"long/" + b"L" * 250 + b".txt", b"Documents/2019/" + b"L" * 250 + b".txt"),
    ],
)
def test_plan_destination(organized: Organized, src: bytes, expected_dst: bytes) -> None:
    assert organized.plan()[src]["dst"] == expected_dst


def test_operation_record_is_planned_with_every_stage_timed(organized: Organized) -> None:
    record = operations.load(organized.store, organized.operation_id)

    assert record.status == "planned"
    assert record.dry_run is True
    assert set(record.stages) >= {"scan", "classify", "prefix", "hash", "plan", "report"}
    assert all(timing.seconds is not None for timing in record.stages.values())
    assert record.summary["duplicate_groups"] == organized.report["duplicates"]["groups"]


def test_unreadable_entry_is_reported_not_fatal(organized: Organized) -> None:
    record = operations.load(organized.store, organized.operation_id)
    errors = organized.report["errors"]
    (error_src,) = [src for src in organized.plan() if src.startswith(b"deep/")]

    assert record.status == "planned"
    assert errors["count"] == len(errors["items"]) == 1
    assert errors["items"][0]["path"] == os.fsdecode(error_src)
    assert UNREADABLE_DIR.startswith(error_src)
    assert organized.plan()[error_src]["action"] == "skip"


# --- hash cache ---------------------------------------------------------------------------------


def hash_rows(data_dir: Path, operation_id: str, stage: str) -> list[dict[str, Any]]:
    """The rows of one hash pass, read straight from its Parquet shards."""
    parts = sorted((data_dir / "operations" / operation_id / stage).glob("part-*.parquet"))
    return [row for part in parts for row in pq.read_table(part).to_pylist()]


def test_second_run_reads_nothing_and_a_changed_file_is_read_again(
    tmp_path: Path, data_dir: Path
) -> None:
    root = tmp_path / "root"
    make_nasty_tree(root)
    store = DataStore(str(data_dir))
    first, _ = organize(root)
    second, _ = organize(root)

    first_record, second_record = operations.load(store, first), operations.load(store, second)
    assert first_record.stages["prefix"].bytes > 0
    assert first_record.stages["hash"].bytes > 0
    for stage in ("prefix", "hash"):
        rows = hash_rows(data_dir, second, stage)
        assert rows
        assert {r["cached"] for r in rows} == {True}
        assert second_record.stages[stage].bytes == 0

    # Same size, new content (now equal to big/other.mp4), new mtime, same inode.
    changed = root / "big" / "video copy.mp4"
    changed.write_bytes((root / "big" / "other.mp4").read_bytes())
    os.utime(changed, ns=(1_700_000_000 * 10**9,) * 2)
    changed_inode = (os.lstat(changed).st_dev, os.lstat(changed).st_ino)
    third, report = organize(root)

    third_record = operations.load(store, third)
    for stage, expected_bytes in (("prefix", PREFIX_BYTES), ("hash", BIG)):
        read = {(r["dev"], r["ino"]) for r in hash_rows(data_dir, third, stage) if not r["cached"]}
        assert read == {changed_inode}
        assert third_record.stages[stage].bytes == expected_bytes
    rows, _ = queries.duplicate_groups(store, store.operation_dir(third), limit=None)
    big_groups = [r["paths"] for r in rows if r["paths"][0].startswith(b"big/")]
    assert big_groups == [[b"big/other.mp4", b"big/video copy.mp4"]]
    assert report["duplicates"]["groups"] == len(expected_duplicate_inodes(snapshot(root)))


# --- the report ---------------------------------------------------------------------------------


def test_report_counts_agree_with_the_tree_and_the_queries(organized: Organized) -> None:
    report = organized.report
    files = reachable_files(organized.before)
    rows, _ = queries.duplicate_groups(organized.store, organized.op_dir, limit=None)
    groups = expected_duplicate_inodes(organized.before)
    size_of = {e.ino: e.size for e in files.values()}
    plan_actions = Counter(row["action"] for row in organized.plan().values())

    assert report["files"] == len(files)
    assert report["bytes"] == sum(e.size for e in files.values())
    for table in ("by_category", "by_year"):
        assert sum(s["files"] for s in report[table].values()) == len(files)
        assert sum(s["bytes"] for s in report[table].values()) == report["bytes"]
    assert report["duplicates"]["groups"] == len(rows) == len(groups)
    assert report["duplicates"]["files"] == sum(r["copies"] for r in rows)
    assert report["duplicates"]["wasted_bytes"] == sum(r["wasted_bytes"] for r in rows)
    assert report["duplicates"]["wasted_bytes"] == sum(
        size_of[next(iter(g))] * (len(g) - 1) for g in groups
    )
    assert report["plan"]["moves"] == plan_actions["move"]
    assert report["plan"]["skipped"] == plan_actions["skip"]
    assert sum(plan_actions.values()) == report["entries"]


@pytest.mark.parametrize(
    ("category", "expected_files"),
    [("videos", 3), ("images", 6), ("documents", 15)],
)
def test_report_counts_per_category(
    organized: Organized, category: str, expected_files: int
) -> None:
    assert organized.report["by_category"][category]["files"] == expected_files


def test_report_is_published_as_a_prefect_artifact(organized: Organized) -> None:
    key = f"report-{organized.operation_id}"
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )

    (artifact,) = artifacts
    assert artifact.type == "markdown"
    assert artifact.flow_run_id == organized.flow_run_id
    assert organized.operation_id in str(artifact.data)
    # Names that are not UTF-8 are shown with \xNN escapes: the markdown stays valid UTF-8.
    assert "na\\xefve \\xff dir/r\\xe9sum\\xe9.doc" in str(artifact.data)


def test_progress_is_published_as_a_prefect_progress_artifact_that_ends_at_100(
    organized: Organized,
) -> None:
    key = f"progress-{organized.operation_id}"
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )

    (artifact,) = artifacts
    assert (artifact.type, artifact.flow_run_id) == ("progress", organized.flow_run_id)
    assert artifact.data == 100.0


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "expected_error"),
    [
        ("missing root", RootError),
        ("root is a file", RootError),
        ("unknown mode", InvalidPlanOptions),
        ("unknown template field", InvalidPlanOptions),
    ],
)
def test_bad_input_raises_a_user_error(
    tmp_path: Path, data_dir: Path, case: str, expected_error: type[Exception]
) -> None:
    (tmp_path / "a file").write_bytes(b"x")
    root, options = {
        "missing root": (tmp_path / "missing", PlanOptions()),
        "root is a file": (tmp_path / "a file", PlanOptions()),
        "unknown mode": (tmp_path, PlanOptions(mode="by-colour")),
        "unknown template field": (tmp_path, PlanOptions(template="{colour}/{name}")),
    }[case]

    with pytest.raises(expected_error) as caught:
        organize_flow(operation_id=str(uuid.uuid4()), root=str(root), options=options)

    assert "\n" not in str(caught.value)


def test_a_root_whose_name_is_not_utf8_can_be_organized(tmp_path: Path, data_dir: Path) -> None:
    root = tmp_path / os.fsdecode(b"arbre-\xe9t\xe9")
    root.mkdir()
    (root / "a.txt").write_bytes(b"a")

    _, report = organize(root)

    assert os.fsencode(report["root"]) == os.fsencode(root)


def test_the_resulting_tree_counts_the_files_the_summary_counts(organized: Organized) -> None:
    from storage.previews import resulting_tree

    plan = organized.plan()
    assert {row["kind"] for row in plan.values()} - {"file"}  # links, folders, errors too

    total = resulting_tree(organized.store, organized.op_dir)[0]

    assert (total.files, total.bytes) == (organized.report["files"], organized.report["bytes"])


def _put(root: Path, *paths: str) -> None:
    for path in paths:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(path.encode())


@pytest.mark.parametrize(
    ("paths", "expected_files", "expected_left_alone", "expected_root_unit"),
    [
        # A project beside loose files: the project is not entered, two loose files are left
        # alone by their names (hidden, junk), two are organized.
        (
            ["proj/.git/HEAD", "proj/src/main.py", "photo.jpg", "notes.txt", ".h.txt", ".DS_Store"],
            2,
            {"files": 2, "bytes": len(".h.txt.DS_Store"), "folders": 1},
            None,
        ),
        # The root is the project: its entries are listed (two files, two folders not entered)
        # and nothing is organized; the summary said 0 files, the tree 2, the unit 4 "files".
        (
            [".git/HEAD", "src/main.py", "photo.jpg", "notes.txt"],
            0,
            {"files": 2, "bytes": len("photo.jpgnotes.txt"), "folders": 2},
            {"files": 2, "bytes": len("photo.jpgnotes.txt"), "folders": 2},
        ),
    ],
    ids=["project-inside", "project-root"],
)
def test_the_summary_the_left_alone_listing_and_the_tree_count_the_same_files(
    tmp_path: Path,
    data_dir: Path,
    paths: list[str],
    expected_files: int,
    expected_left_alone: dict[str, int],
    expected_root_unit: dict[str, int] | None,
) -> None:
    from storage.previews import resulting_tree

    root = tmp_path / "tree"
    _put(root, *paths)

    operation_id, report = organize(root)

    left = report["left_alone"]
    assert report["files"] == expected_files
    assert {k: left[k] for k in expected_left_alone} == expected_left_alone
    units = {item["path"]: item for item in left["items"]}
    if expected_root_unit is not None:
        assert {k: units[""][k] for k in expected_root_unit} == expected_root_unit
    assert sum(u["files"] or 0 for u in units.values()) == left["files"]
    total = resulting_tree(
        DataStore(str(data_dir)), DataStore(str(data_dir)).operation_dir(operation_id)
    )[0]
    # The tree after apply holds the files organized and those left alone where they are.
    assert (total.files, total.bytes) == (
        report["files"] + left["files"],
        report["bytes"] + left["bytes"],
    )
    assert total.left_alone == left["files"]
