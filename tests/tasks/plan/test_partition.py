"""The plan in parts (tasks.plan.partition) equals the pure planner row for row: on generated
scans (the planner's own, and trees of duplicate groups that the fast path decides in DuckDB),
every option varied, and on the nasty and home trees through the real stages."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage import manifests
from storage.locations import DataStore
from storage.operations import PlanOptions
from storage.queries import workspace
from tasks.classify.categories import extension_of
from tasks.plan.facts import facts_table, load_stage_facts, stream_facts
from tasks.plan.fast import can_be_fast
from tasks.plan.layout import parse_layout
from tasks.plan.partition import plan_facts, plan_parts, plan_table
from tasks.plan.planner import FileFacts, PlanPolicy, plan_moves
from tasks.plan.stage import policy_for
from tests.tasks.plan.test_plan_reuse import plan_stages
from tests.tasks.plan.test_planner import LAYOUTS, SHOT, policy, scans
from tests.trees import make_home_tree, make_nasty_tree

EXAMPLES = int(os.environ.get("PARTITION_EXAMPLES", "60"))
# Layouts whose folders use the place fields or the tags (and so key the folder table on them).
PLACED = {
    "parent": ("category_year", "{category}/{parent}/{name}"),
    "relative": ("category_year", "{relative_dir}/{year}/{name}"),
    "artist": ("category_year", "{category}/{artist}/{album}/{name}"),
}
ALL_LAYOUTS = {**LAYOUTS, **PLACED}
# Layouts the fast path can take (the file keeps its name; folders do not depend on it).
FAST_LAYOUTS = sorted(n for n, (m, t) in ALL_LAYOUTS.items() if can_be_fast(parse_layout(m, t)))
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


# Duplicate trees: plain names that clash across folders (and with a conflict suffix), a
# sidecar pair, names that look like copies (tasks.plan.copy_names.copy_rank), a non-ASCII name
# and audio (residual neighbours), a quarantine folder already there; few contents over few
# inodes on two devices, so that groups hold copies, hard links of one inode, empty files
# (hashed or not) and ties of mtime for every --keep.
DUP_DIRS = (b"", b"a", b"A", b"b", b"a/c", b"Images/2019", b"Other/Unknown", b".duplicates/a")
DUP_NAMES = (
    *[b"x.jpg", b"X.jpg", b"x (1).jpg", b"x", b"y.png", b"IMG_1.jpg"] * 3,
    *[b"x - Copy.jpg", b"x copy.jpg", b"x-1.jpg", b"x(2).jpg", b"x (1)"],  # copies' names
    *[b"IMG_1.xmp", b"caf\xc3\xa9.jpg", b"song.mp3"],
)  # fmt: skip
DUP_CONTENT = {0: (0, manifests.EMPTY_DIGEST), 1: (7, b"one"), 2: (7, b"two"), 3: (100, b"3")}


@st.composite
def duplicate_scans(draw: st.DrawFn, pol: PlanPolicy) -> list[FileFacts]:
    """Files of few contents and inodes, some where the layout puts them (or their twin)."""
    inodes = draw(
        st.lists(
            st.tuples(
                st.sampled_from([1, 1, 1, 2]),  # dev
                st.sampled_from([0, 1, 1, 1, 2, 3, None]),  # content id; None: unhashed
                st.integers(0, 2),  # mtime: ties are frequent
                st.booleans(),  # an empty file's digest known (the stage adds it if asked)
                st.sampled_from([0o644, 0o644, 0o600]),  # one mode per inode: a link has one
                st.sampled_from(["0:0", "0:0", "0:0", "1000:100"]),  # and one owner
            ),
            min_size=2,
            max_size=6,
        )
    )
    entries = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["random", "random", "random", "placed", "placed-twin"]),
                st.sampled_from(DUP_DIRS),
                st.sampled_from(DUP_NAMES),
                st.integers(0, len(inodes) - 1),
                st.sampled_from(["images"] * 4 + ["other"] * 3 + ["audio"]),
                st.sampled_from([SHOT, SHOT, None]),
            ),
            min_size=2,
            max_size=16,
        )
    )
    files: dict[bytes, FileFacts] = {}
    for i, (where, directory, name, inode, category, date) in enumerate(entries):
        if where == "placed-twin" and i > 0:
            _, _, name, _, category, date = entries[i - 1]
        ext = extension_of(name)
        if where == "random":
            path = directory + b"/" + name if directory else name
        else:
            path = b"/".join(pol.layout.destination(category, date, name, ext))
        dev, content, mtime, hashed_empty, mode, owner = inodes[inode]
        size, digest = (1_000 + inode, None) if content is None else DUP_CONTENT[content]
        if content == 0 and not hashed_empty:
            digest = None
        if path not in files:
            files[path] = FileFacts(
                path, "file", size, mtime, dev, inode + 1, category, ext, date, digest,
                mode=mode, owner=owner,
            )  # fmt: skip
    return [f for p, f in files.items() if not any(q.startswith(p + b"/") for q in files)]


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


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    duplicates=st.sampled_from(["report", "quarantine", "hardlink"]),
    keep=st.sampled_from(["oldest", "newest", "shortest-path"]),
    layout=st.sampled_from(FAST_LAYOUTS),
    include_empty=st.booleans(),
    include_hidden=st.booleans(),
    albums=st.sampled_from(["tags", "off"]),
    keep_subfolders=st.sampled_from([False, False, True]),
    root_dev=st.sampled_from([None, 1]),
    data=st.data(),
)
def test_duplicate_groups_in_parts_equal_the_pure_planner(
    duplicates: str,
    keep: str,
    layout: str,
    include_empty: bool,
    include_hidden: bool,
    albums: str,
    keep_subfolders: bool,
    root_dev: int | None,
    data: st.DataObject,
) -> None:
    mode, template = ALL_LAYOUTS[layout]
    more: dict[str, Any] = {
        "include_hidden": include_hidden, "albums": albums, "keep_subfolders": keep_subfolders,
    }  # fmt: skip
    pol = policy(mode, template, duplicates, keep, include_empty, **more)
    files = data.draw(duplicate_scans(pol), label="files")
    if data.draw(st.booleans(), label="with the planner's own scan"):
        taken = {f.path for f in files}
        more_files = data.draw(scans(pol), label="more files")
        # Inodes of their own: a hard link shares size and content.
        files += [
            dataclasses.replace(f, ino=f.ino + 1_000)
            for f in more_files
            if f.path not in taken and f.kind != "dir"
        ]
        files = [f for f in files if not any(q.path.startswith(f.path + b"/") for q in files)]

    rows = plan_facts(files, pol, root_dev)

    assert rows == reference(files, pol, root_dev)


def _in_sql(files: list[FileFacts], pol: PlanPolicy) -> tuple[list[Any], int]:
    """The plan in parts, and how many rows the residual planned."""
    con = duckdb.connect()
    try:
        con.register("facts_arrow", facts_table(files))
        con.execute("CREATE TABLE facts AS SELECT * FROM facts_arrow")
        plan_parts(con, pol, None)
        rows = con.sql("SELECT * FROM plan_rows ORDER BY src").to_arrow_table()
        (residual,) = con.execute("SELECT count(*) FROM res").fetchall()[0]
        return rows.cast(manifests.PLAN).to_pylist(), residual
    finally:
        con.close()


@pytest.mark.parametrize(
    ("duplicates", "expected_copy"),
    [
        ("report", ("skip", "duplicate", b"b/x.jpg")),
        ("quarantine", ("quarantine", "duplicate-quarantined", b"b/x.jpg")),
        ("hardlink", ("hardlink", "duplicate-linked", b"b/x.jpg")),
    ],
)
def test_duplicate_groups_of_plain_files_are_decided_in_sql(
    duplicates: str, expected_copy: tuple[str, str, bytes]
) -> None:
    """The oldest is kept, ties by path; a copy is planned after the files that are not (so
    the kept b/x.jpg takes the destination a/x.jpg also wants); a hard link of the kept copy
    is no copy; the n-th other file of a destination is renamed."""
    one, two = b"one", b"two"
    files = [
        FileFacts(b"a/x.jpg", "file", 7, 5, 1, 1, "images", "jpg", SHOT, one),
        FileFacts(b"b/x.jpg", "file", 7, 3, 1, 2, "images", "jpg", SHOT, one),
        FileFacts(b"c/x.jpg", "file", 7, 3, 1, 2, "images", "jpg", SHOT, one),  # b's inode
        FileFacts(b"d/x.jpg", "file", 8, 3, 1, 4, "images", "jpg", SHOT, two),
        FileFacts(b"e/y.jpg", "file", 8, 3, 1, 5, "images", "jpg", SHOT, two),  # tie: d kept
    ]
    pol = policy(duplicates=duplicates)

    rows, residual = _in_sql(files, pol)

    assert residual == 0
    assert rows == reference(files, pol, None)
    got = {r["src"]: (r["action"], r["reason_code"], r["twin"]) for r in rows}
    assert got[b"a/x.jpg"] == expected_copy
    assert got[b"b/x.jpg"] == ("move", "duplicate-kept", None)
    assert got[b"c/x.jpg"] == ("skip", "duplicate", b"b/x.jpg")
    assert got[b"d/x.jpg"][:2] == ("move", "duplicate-kept")
    expected_e = "organized" if duplicates == "report" else expected_copy[1]  # nothing at y.jpg
    assert got[b"e/y.jpg"][1] == expected_e


def test_a_copy_of_another_mode_is_not_linked_in_sql() -> None:
    """The fast path leaves it as the pure planner does: a link has one mode."""
    files = [
        FileFacts(b"a/x.jpg", "file", 7, 1, 1, 1, "images", "jpg", SHOT, b"one", mode=0o644),
        FileFacts(b"b/x.jpg", "file", 7, 2, 1, 2, "images", "jpg", SHOT, b"one", mode=0o600),
        FileFacts(b"c/x.jpg", "file", 7, 3, 1, 3, "images", "jpg", SHOT, b"one", mode=0o644),
    ]
    pol = policy(duplicates="hardlink")

    rows, residual = _in_sql(files, pol)

    assert residual == 0
    assert rows == reference(files, pol, None)
    got = {r["src"]: (r["action"], r["reason_code"], r["dst"]) for r in rows}
    assert got == {
        b"a/x.jpg": ("move", "duplicate-kept", b"Images/2019/x.jpg"),
        b"b/x.jpg": ("skip", "not-linked", None),
        b"c/x.jpg": ("hardlink", "duplicate-linked", b"c/x.jpg"),
    }
    assert "mode 0600, the kept copy's 0644" in rows[1]["reason"]


def test_a_copy_of_another_owner_is_not_linked_in_sql() -> None:
    """The fast path leaves it as the pure planner does: a link has one owner (checked
    before the mode, as apply does); null owners (objects, older scans) are one owner."""

    def copy(
        path: bytes, ino: int, digest: bytes, owner: str | None, mode: int = 0o644
    ) -> FileFacts:
        size = 7 if digest == b"one" else 8
        return FileFacts(path, "file", size, ino, 1, ino, "images", "jpg", SHOT, digest,
                         mode=mode, owner=owner)  # fmt: skip

    files = [
        copy(b"a/x.jpg", 1, b"one", "0:0"),
        copy(b"b/x.jpg", 2, b"one", "1000:100", 0o600),
        copy(b"c/x.jpg", 3, b"one", "0:0"),
        copy(b"a/y.jpg", 4, b"two", None),
        copy(b"b/y.jpg", 5, b"two", None),
    ]
    pol = policy(duplicates="hardlink")

    rows, residual = _in_sql(files, pol)

    assert residual == 0
    assert rows == reference(files, pol, None)
    got = {r["src"]: (r["action"], r["reason_code"]) for r in rows}
    assert got == {
        b"a/x.jpg": ("move", "duplicate-kept"),
        b"b/x.jpg": ("skip", "not-linked"),
        b"c/x.jpg": ("hardlink", "duplicate-linked"),
        b"a/y.jpg": ("move", "duplicate-kept"),
        b"b/y.jpg": ("hardlink", "duplicate-linked"),
    }
    reason = next(r["reason"] for r in rows if r["src"] == b"b/x.jpg")
    assert reason == (
        "duplicate of a/x.jpg (kept: oldest): not linked: owned by 1000:100, the kept copy by"
        " 0:0 (a link has one owner)"
    )


def test_a_hidden_file_sorted_in_sql_says_it_stays_hidden() -> None:
    files = [
        FileFacts(b"in/.IMG_1.jpg", "file", 7, 1, 1, 1, "images", "jpg", SHOT, b"one"),
        FileFacts(b"in/.IMG_2.jpg", "file", 8, 1, 1, 2, "images", "jpg", SHOT, b"two"),
        FileFacts(b"Images/2019/.IMG_2.jpg", "file", 9, 1, 1, 3, "images", "jpg", SHOT, b"3"),
    ]
    pol = policy(include_hidden=True)

    rows, residual = _in_sql(files, pol)

    assert residual == 0
    assert rows == reference(files, pol, None)
    reasons = {r["src"]: r["reason"] for r in rows}
    assert reasons[b"in/.IMG_1.jpg"].endswith(
        "; keeps its name, so it stays hidden (a leading dot)"
    )
    assert reasons[b"in/.IMG_2.jpg"].endswith(
        "stays hidden (a leading dot); renamed: Images/2019/.IMG_2.jpg is taken"
    )


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
    with workspace(store) as con:
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


DOWNLOADS = [b"name (1).pdf", b"name (2).pdf", b"name - Copy.pdf", b"name(3).pdf", b"name-1.pdf"]
DOWNLOADS += [b"Copy of name.pdf", b"Copy (2) of name.pdf"]  # Windows XP, Google Drive
DOWNLOADS += [b"name-copy.pdf", b"name_copy 2.pdf"]  # weak: "hard_copy.pdf" is a name too


@pytest.mark.parametrize("keep", ["oldest", "newest", "shortest-path"])
@pytest.mark.parametrize("plain_first", [False, True])
def test_among_copies_of_equal_mtime_the_original_name_is_kept(
    keep: str, plain_first: bool
) -> None:
    """The tryout's downloads: equal mtimes, and "name (1).pdf" was kept (the first by path)
    while "name.pdf" was quarantined. Both planners keep the plain name, then a weak copy name
    ("-1") before a strong one, then by path."""
    names = [b"name.pdf", *DOWNLOADS] if plain_first else [*DOWNLOADS, b"name.pdf"]
    files = [
        FileFacts(b"Downloads/" + n, "file", 7, 5, 1, i + 1, "documents", "pdf", SHOT, b"one")
        for i, n in enumerate(names)
    ]
    pol = policy(duplicates="quarantine", keep=keep)

    rows, residual = _in_sql(files, pol)

    assert residual == 0  # decided on the fast path, in DuckDB
    assert rows == reference(files, pol, None)
    kept = [r["src"] for r in rows if r["action"] != "quarantine"]
    assert kept == [b"Downloads/name.pdf"]
    assert {r["twin"] for r in rows if r["action"] == "quarantine"} == {b"Downloads/name.pdf"}
    without_plain = [f for f in files if f.path != b"Downloads/name.pdf"]
    rows, _ = _in_sql(without_plain, pol)
    assert rows == reference(without_plain, pol, None)
    [kept_copy] = [r["src"] for r in rows if r["action"] != "quarantine"]
    assert kept_copy == b"Downloads/name-1.pdf"  # (also the shortest)


CASE_ONLY = "(names that differ only in case are one name on a case-insensitive disk)"


@pytest.mark.parametrize(
    ("paths", "expected_reason"),
    [
        # Two files want one name but for case: the first in the plan's order keeps it.
        (
            [b"a/Photo.JPG", b"b/photo.jpg"],
            "; renamed: Images/2019/photo.jpg is taken by Images/2019/Photo.JPG " + CASE_ONLY,
        ),
        # The name is held by a file already there (in place, kept).
        (
            [b"Images/2019/Photo.JPG", b"b/photo.jpg"],
            "; renamed: Images/2019/photo.jpg is taken by Images/2019/Photo.JPG " + CASE_ONLY,
        ),
        # The same name exactly: nothing about case to explain.
        ([b"a/photo.jpg", b"b/photo.jpg"], "; renamed: Images/2019/photo.jpg is taken"),
    ],
    ids=["claimed", "in-place", "same-case"],
)
def test_a_name_taken_but_for_case_is_said_so_by_both_planners(
    paths: list[bytes], expected_reason: str
) -> None:
    files = [
        FileFacts(path, "file", 7 + i, 3, 1, 10 + i, "images", "jpg", SHOT, bytes([i]))
        for i, path in enumerate(paths)
    ]
    pol = policy()

    rows, residual = _in_sql(files, pol)

    assert residual == 0  # the fast path's line, in DuckDB
    assert rows == reference(files, pol, None)  # and the planner's, the same
    renamed = {r["src"]: r for r in rows}[b"b/photo.jpg"]
    assert (renamed["dst"], renamed["reason_code"]) == (b"Images/2019/photo (1).jpg", "renamed")
    assert renamed["reason"].endswith(expected_reason)


def test_only_sidecar_pairs_and_albums_leave_the_fast_path() -> None:
    """The residual plans a sidecar pair, not the rest of its folder, and two tracks among
    more other files are no album: Mix/ stays in SQL but for the tracks whose destinations the
    pairs want, and the residual, shown those two alone, does not take them for an album."""
    kinds = {"mp3": "audio", "xmp": "other", "pdf": "documents", "png": "images"}
    paths = [
        *[b"Mix/song1.mp3", b"Mix/song2.mp3", b"Mix/a.pdf", b"Mix/b.pdf", b"Mix/c.pdf"],
        *[b"Cam/song1.mp3", b"Cam/song1.xmp", b"Cam/other.png", b"Cam/more.pdf"],
        *[b"Cam2/song2.mp3", b"Cam2/song2.xmp"],
    ]
    files = [
        FileFacts(p, "file", 10 + i, 3, 1, 10 + i, kinds[p[-3:].decode()], p[-3:].decode(), SHOT)
        for i, p in enumerate(paths)
    ]
    pol = policy()

    rows, residual = _in_sql(files, pol)

    assert rows == reference(files, pol, None)
    assert residual == 6  # the two pairs, and Mix's tracks that want their mains' names
    assert {r["reason_code"] for r in rows if r["src"].startswith(b"Mix/")} == {
        "organized", "renamed",
    }  # fmt: skip


NASTY_NAMES = [b"a/IMG.jpg", b"b/IMG.jpg", b"c/IMG (1).jpg", b"d/IMG (2).jpg"]


@pytest.mark.parametrize(
    ("paths", "expected_renamed"),
    [
        (NASTY_NAMES, b"Images/2019/IMG (3).jpg"),
        # "IMG (1).jpg" already where it goes; a non-ASCII path (the residual's) wants "(2)"
        (
            [b"Images/2019/IMG (1).jpg", b"a/IMG.jpg", b"b/IMG.jpg", "é/IMG (2).jpg".encode()],
            b"Images/2019/IMG (3).jpg",
        ),
        # the clash alone is plain; the residual's file wants the name its rename would take
        ([b"a/IMG.jpg", b"b/IMG.jpg", "é/IMG (1).jpg".encode()], b"Images/2019/IMG (2).jpg"),
    ],
    ids=["named-copies", "in-place-and-residual", "residual-wants-the-variant"],
)
def test_a_rename_takes_no_name_another_file_wants_in_both_planners(
    paths: list[bytes], expected_renamed: bytes
) -> None:
    files = [
        FileFacts(path, "file", 7 + i, 3, 1, 10 + i, "images", "jpg", SHOT, bytes([i]))
        for i, path in enumerate(paths)
    ]
    pol = policy()

    rows, _ = _in_sql(files, pol)

    assert rows == reference(files, pol, None)
    got = {r["src"]: (r["dst"], r["reason_code"]) for r in rows}
    assert got[b"b/IMG.jpg"] == (expected_renamed, "renamed")
    kept_names = [p for p in paths if b"(" in p]
    assert all(got[p][1] in ("organized", "already-in-place") for p in kept_names)


@pytest.mark.parametrize(
    ("paths", "expected_blocker"),
    [
        ([b"song.mp3", b"Audio/package.json"], b"Audio"),
        ([b"a/x.jpg", b"images/2019/Makefile", b"b/y.jpg"], b"images/2019"),  # but for case
        ([b"a/x.jpg", b"Images/.git/HEAD"], b"Images"),
    ],
)
def test_nothing_is_planned_into_a_unit_a_listing_shows_by_its_markers(
    paths: list[bytes], expected_blocker: bytes
) -> None:
    """An object listing has no folder rows: a project is its keys (Audio/package.json). The
    planner put song.mp3 at Audio/2019/song.mp3, inside that project; a local scan's folder
    row for it blocked the same move. Both planners now leave such a file where it is."""
    files = [
        FileFacts(p, "file", 10 + i, 0, 1, 1 + i, "audio" if p.endswith(b".mp3") else "images",
                  p.rpartition(b".")[2].decode() if b"." in p else "", SHOT, bytes([i]))
        for i, p in enumerate(paths)
    ]  # fmt: skip
    pol = policy()

    rows, _ = _in_sql(files, pol)

    assert rows == reference(files, pol, None)
    moved = [r["src"] for r in rows if r["action"] != "skip"]
    assert moved == []
    conflicts = [r for r in rows if r["reason_code"] == "conflict"]
    assert conflicts and all(
        f"and {expected_blocker.decode()} is a folder left alone" in r["reason"] for r in conflicts
    )
