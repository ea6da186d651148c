"""What is left alone: the rules by name and by contents, and the planner's guarantee over any
tree: nothing hidden (unless opted in) and nothing inside a project is ever moved."""

from __future__ import annotations

import os
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.leave_alone import (
    DOWNLOAD_SUFFIXES,
    JUNK_NAMES,
    PROJECT_FILES,
    PROJECT_SUFFIXES,
    TOOL_MARKERS,
    VCS_MARKERS,
    LeftAlone,
    by_contents,
    by_name,
    for_path,
    plain_file_name,
    units_by_markers,
)
from tasks.plan.layout import parse_layout
from tasks.plan.planner import FileFacts, PlanPolicy, plan_moves

MOVES = ("move", "quarantine", "hardlink")


@pytest.mark.parametrize(
    ("name", "is_dir", "include_hidden", "expected_code"),
    [
        (b".bashrc", False, False, "hidden"),
        # --include-hidden sorts hidden files people keep; dot-files that configure stay.
        (b".bashrc", False, True, "config"),
        (b".gitconfig", False, True, "config"),
        (b".tmux.conf", False, True, "config"),
        (b".gtkrc-2.0", False, True, "config"),
        (b".server.key", False, True, "config"),  # not a Keynote file
        (b".notes.txt", False, True, None),
        (b".IMG_1.JPG", False, True, None),
        (b".backup.tar.gz", False, True, None),
        (b".DS_Store", False, True, "junk"),  # junk stays junk when hidden entries are in
        (b"Thumbs.db", False, False, "junk"),
        (b"thumbs.db", False, False, "junk"),
        (b"DESKTOP.INI", False, False, "junk"),
        (b"._IMG_0001.jpg", False, True, "junk"),
        (b"movie.mkv.part", False, False, "download"),
        (b"setup.EXE.crdownload", False, False, "download"),
        (b"report.pdf.download", True, False, "download"),  # Safari's, a folder
        (b".hidden.part", False, True, "download"),  # not organized when hidden ones are in
        (b"partial.txt", False, False, None),
        (b"node_modules", True, False, "tool-folder"),
        (b"__pycache__", True, False, "tool-folder"),
        (b".venv", True, True, "tool-folder"),
        (b".cache", True, True, "tool-folder"),
        (b".Trash-1000", True, True, "tool-folder"),
        (b"$RECYCLE.BIN", True, False, "tool-folder"),
        (b"lost+found", True, False, "tool-folder"),
        (b".config", True, True, "tool-folder"),
        (b".ssh", True, True, "credentials"),
        (b".duplicates", True, True, "data-folder"),
        (b".hidden-photos", True, False, "hidden"),
        (b".hidden-photos", True, True, "config"),  # a dot-folder: settings or state
        (b".mozilla", True, True, "config"),
        (b"node_modules", False, False, None),  # a file of that name is just a file
        (b"Photos", True, False, None),
    ],
)
def test_rules_by_name(
    name: bytes, is_dir: bool, include_hidden: bool, expected_code: str | None
) -> None:
    rule = by_name(name, is_dir, include_hidden)

    assert (rule.code if rule else None) == expected_code


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ({b".git", b"src"}, LeftAlone("project", ".git")),
        ({b"setup.py", b"package.json"}, LeftAlone("project", "setup.py")),  # first listed
        ({b"pyproject.toml"}, LeftAlone("project", "pyproject.toml")),
        ({b"App.sln", b"readme.txt"}, LeftAlone("project", "App.sln")),
        ({b"Makefile", b"thesis.tex"}, LeftAlone("project", "Makefile")),
        ({b"pyvenv.cfg", b"bin"}, LeftAlone("tool-folder", "virtualenv, pyvenv.cfg")),
        ({b"CACHEDIR.TAG"}, LeftAlone("tool-folder", "cache, CACHEDIR.TAG")),
        ({b"prefect.db", b"prefect.db-wal"}, LeftAlone("data-folder", "Prefect home, prefect.db")),
        ({b"IMG_0001.jpg", b"notes.txt", b"package.json.bak"}, None),
        (set(), None),
    ],
)
def test_rules_by_contents(names: set[bytes], expected: LeftAlone | None) -> None:
    assert by_contents(names) == expected


# Names near the rules: their words in any case, a suffix, a prefix, bytes that are not UTF-8,
# letters whose casefold is ASCII (U+017F is "s", the Kelvin sign U+212A "k").
_WORDS = [*JUNK_NAMES, *DOWNLOAD_SUFFIXES, *PROJECT_FILES, *PROJECT_SUFFIXES, *TOOL_MARKERS]
_NEAR = st.one_of(
    st.sampled_from([w.encode() for w in [*_WORDS, *VCS_MARKERS]]),
    st.builds(
        lambda w, a, b, up: a + (w.upper() if up else w).encode() + b,
        st.sampled_from(_WORDS),
        st.sampled_from([b"", b".", b"._", b"x", b"\xff", "\u017f".encode()]),
        st.sampled_from([b"", b".jpg", b"\xe9", "\u212a".encode()]),
        st.booleans(),
    ),
    st.binary(min_size=1, max_size=12).filter(lambda n: b"/" not in n and b"\0" not in n),
    st.text(min_size=1, max_size=10).map(str.encode).filter(lambda n: b"/" not in n),
)


@settings(max_examples=500, deadline=None)
@given(_NEAR, st.booleans())
def test_the_walks_answer_for_a_file_name_is_by_names(name: bytes, include_hidden: bool) -> None:
    # The walk skips by_name where plain_file_name says a file's name is plain (no exclude).
    if plain_file_name(name):
        assert by_name(name, False, include_hidden) is None


def test_plain_file_names_are_the_common_case() -> None:
    assert plain_file_name(b"IMG_0001.jpg") and plain_file_name(b"report 2019.PDF")
    assert not plain_file_name(b".bashrc") and not plain_file_name(b"Thumbs.db")
    assert not plain_file_name(b"movie.mkv.PART") and not plain_file_name("é.jpg".encode())


@settings(max_examples=500, deadline=None)
@given(st.lists(_NEAR, max_size=6))
def test_rules_by_contents_on_the_bytes_agree_with_the_rules_on_the_text(
    names: list[bytes],
) -> None:
    texts = {n.decode("utf-8", "surrogateescape") for n in names}
    slow = any(t.endswith(PROJECT_SUFFIXES) for t in texts) or any(
        m in texts for m in (*VCS_MARKERS, *PROJECT_FILES, *TOOL_MARKERS, "prefect.db")
    )
    assert (by_contents(names) is not None) == slow


def test_units_are_found_from_a_flat_listing() -> None:
    keys = [
        b"Code/app/src/main.py",
        b"Code/app/package.json",
        b"Code/lib/.git/HEAD",
        b"Code/lib/lib.c",
        b"env/pyvenv.cfg",
        b"Photos/a.jpg",
        b"package.json.txt",
    ]

    units = units_by_markers(keys)

    assert units == {
        b"Code/app": LeftAlone("project", "package.json"),
        b"Code/lib": LeftAlone("project", ".git"),
        b"env": LeftAlone("tool-folder", "virtualenv, pyvenv.cfg"),
    }


def test_the_outermost_folder_left_alone_names_the_unit() -> None:
    assert for_path(b"a/node_modules/x/.cache/y.js", False, True) == (
        b"a/node_modules",
        LeftAlone("tool-folder", "node_modules"),
    )
    assert for_path(b"a/b/.notes.txt", False, False) == (
        b"a/b/.notes.txt",
        LeftAlone("hidden", ".notes.txt"),
    )
    assert for_path(b"a/b/notes.txt", False, False) is None


# --- whatever the tree ------------------------------------------------------------------------

COMPONENTS = (
    b"a", b"b", b"Photos", b".hidden", b".config", b"node_modules", b".git", b"src",
    b"Projects", b"Audio", b"\xff", b"deep",
)  # fmt: skip
NAMES = (
    b"x.jpg", b"y.txt", b"song.mp3", b".bashrc", b"package.json", b"Makefile", b"pyvenv.cfg",
    b"Cargo.toml", b".DS_Store", b"._x.jpg", b"notes.md", b"IMG_1.xmp", b"IMG_1.jpg",
)  # fmt: skip
CATEGORIES = {b"jpg": "images", b"mp3": "audio", b"txt": "documents"}


def _project_dirs(paths: list[bytes]) -> set[bytes]:
    """Folders that hold a project marker, worked out here with no help from the rules."""
    out = set()
    for path in paths:
        parts = path.split(b"/")
        if parts[-1] in (b"package.json", b"Makefile", b"Cargo.toml"):
            out.add(b"/".join(parts[:-1]))
        out.update(b"/".join(parts[:i]) for i, p in enumerate(parts[:-1]) if p == b".git")
    return out


@st.composite
def trees(draw: st.DrawFn) -> list[FileFacts]:
    paths = draw(
        st.lists(
            st.builds(
                lambda dirs, name: b"/".join([*dirs, name]),
                st.lists(st.sampled_from(COMPONENTS), max_size=4),
                st.sampled_from(NAMES),
            ),
            min_size=1,
            max_size=25,
            unique=True,
        )
    )
    paths = [p for p in paths if not any(q.startswith(p + b"/") for q in paths)]
    digests = draw(st.lists(st.sampled_from([b"d1", b"d2", None]), min_size=len(paths)))
    out = []
    for i, (path, digest) in enumerate(zip(paths, digests, strict=False)):
        ext = path.rpartition(b".")[2] if b"." in os.path.basename(path)[1:] else b""
        out.append(
            FileFacts(
                path=path,
                kind="file",
                size=10,
                mtime_ns=i,
                dev=1,
                ino=i + 1,
                category=CATEGORIES.get(ext, "other"),
                ext=ext.decode(),
                date=datetime(2020, 1, 2),
                digest=digest,
                date_source="mtime",
            )
        )
    return out


@settings(max_examples=int(os.environ.get("PLAN_EXAMPLES", "150")), deadline=None)
@given(
    files=trees(),
    include_hidden=st.booleans(),
    duplicates=st.sampled_from(["report", "quarantine", "hardlink"]),
    albums=st.sampled_from(["tags", "folder", "off"]),
    keep_subfolders=st.booleans(),
    template=st.sampled_from([None, "{relative_dir}/{category}/{name}", "{parent}/{name}"]),
)
def test_no_hidden_entry_and_no_file_inside_a_project_ever_moves(
    files: list[FileFacts],
    include_hidden: bool,
    duplicates: str,
    albums: str,
    keep_subfolders: bool,
    template: str | None,
) -> None:
    policy = PlanPolicy(
        layout=parse_layout("category_year", template),
        duplicates=duplicates,
        include_hidden=include_hidden,
        albums=albums,
        keep_subfolders=keep_subfolders,
    )
    projects = _project_dirs([f.path for f in files])

    plan = plan_moves(files, policy)

    for m in plan:
        parts = m.src.split(b"/")
        hidden = any(p.startswith(b".") for p in parts)
        in_project = any(b"/".join(parts[:i]) in projects for i in range(len(parts)))
        if (hidden and not include_hidden) or in_project:
            assert m.action not in MOVES, m
        if m.action in MOVES and m.action != "hardlink":
            assert m.dst is not None
            dst_parts = m.dst.split(b"/")
            # Never into a project or a folder left alone (quarantine: fileorg's own folder).
            assert not any(b"/".join(dst_parts[:i]) in projects for i in range(len(dst_parts)))
