"""What is left alone, and why (DESIGN rule 7): rules by name and by what a folder holds.

The local scan, the object listing and the planner all ask these functions, so they agree
(and the CLI, the flow and the API ask root_refusal whether a root lies in what they leave alone):

* by name: OS junk (`.DS_Store`, `Thumbs.db`, `desktop.ini`, `._*`), unfinished downloads
  (`*.part`, `*.crdownload`, Safari's `*.download` folders...), tool and state folders
  (`node_modules`, `__pycache__`, virtualenvs, caches, trash, `lost+found`, VCS data, the XDG
  `.config` and `.local`), credentials (`.ssh`, `.gnupg`), fileorg's own folders, and hidden
  entries (a name starting with a dot) unless hidden entries are opted in;
* by contents: a folder holding a project marker (`.git`, `pyproject.toml`, `package.json`,
  `Makefile`, `*.sln`...) is a project, one holding `pyvenv.cfg` or `CACHEDIR.TAG` is a tool
  folder, one holding `prefect.db` is a Prefect home.

Opting in to hidden entries (`include_hidden`) organizes the hidden files people keep: a
photo, a video, music, a document, a spreadsheet, a presentation, an archive or an ebook
by its extension (`.notes.txt`, `.IMG_1.jpg`). Every other hidden entry stays, as `config`:
a dot-file without such an extension configures something (`.bashrc`, `.profile`,
`.gitconfig`, `.tmux.conf`, `.face`), and a dot-folder holds settings or state (`.mozilla`,
`.aws`, `.vscode`), not files to sort; a home's top level is made of them. Junk, tool and
state folders, credentials and projects stay too: a user who asks for `.notes.txt` to be
sorted does not want `.bashrc`, `.ssh/id_rsa` or `.config/` moved, ever. A false positive
leaves a folder where it is (visible in the report); a false negative would tear it apart,
so the lists err on the side of leaving alone.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
import stat
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from storage.extensions import RULES
from storage.file_flags import flags_of, refusing


@dataclass(frozen=True, slots=True)
class LeftAlone:
    code: str  # a reason code (storage.manifests.REASON_CODES)
    detail: str  # what the rule saw, for people: "node_modules", "pyproject.toml"

    @property
    def what(self) -> str:
        return _WHAT.get(self.code, self.code)

    def reason(self) -> str:
        return f"left alone: {self.what} ({self.detail})"


_WHAT = {
    "hidden": "hidden",
    "config": "configuration",
    "junk": "OS junk",
    "download": "an unfinished download",
    "tool-folder": "tool or state folder",
    "credentials": "credentials",
    "data-folder": "application data",
    "project": "project",
    "excluded": "excluded",
    "unreadable": "unreadable",
    "link-target": "the target of a symlink",
    "read-only-folder": "in a folder the scanning user cannot change",
}

JUNK_NAMES = frozenset(
    {".ds_store", "thumbs.db", "ehthumbs.db", "ehthumbs_vista.db", "desktop.ini", ".directory"}
    | {"icon\r", ".localized", ".apdisk"}
)
TOOL_FOLDERS: dict[str, str] = {
    "node_modules": "node_modules",
    "__pycache__": "__pycache__",
    ".venv": "virtualenv",
    "venv": "virtualenv",
    ".tox": "tox",
    ".nox": "nox",
    ".mypy_cache": "cache",
    ".pytest_cache": "cache",
    ".ruff_cache": "cache",
    ".cache": "cache",
    ".config": "application settings",
    ".local": "application data",
    ".Trash": "trash",
    ".Trashes": "trash",
    "$RECYCLE.BIN": "trash",
    "RECYCLER": "trash",
    "lost+found": "lost+found",
    "System Volume Information": "system folder",
    ".Spotlight-V100": "system folder",
    ".fseventsd": "system folder",
    ".TemporaryItems": "system folder",
    ".DocumentRevisions-V100": "system folder",
    ".AppleDouble": "system folder",
}
# What a browser or a downloader is still writing (or gave up on), under its final name less
# this suffix: moved, it breaks the download in progress, and the file is not whole anyway.
DOWNLOAD_SUFFIXES = (
    ".part", ".partial", ".crdownload", ".opdownload", ".download", ".!qb", ".!ut", ".aria2",
)  # fmt: skip
# The hidden files include_hidden sorts: kinds of files people keep, by extension. Not "key"
# (Keynote's, and a TLS key's: ".server.key"), nor code and fonts (".eslintrc.js").
PERSONAL_EXTENSIONS = frozenset().union(
    *(RULES[kind] for kind in ("images", "videos", "audio", "documents", "spreadsheets")),
    *(RULES[kind] for kind in ("presentations", "archives", "ebooks")),
) - {"key"}
CREDENTIAL_FOLDERS = frozenset({".ssh", ".gnupg", ".password-store", ".pki"})
OWN_FOLDERS: dict[str, str] = {".duplicates": "fileorg quarantine", ".fileorg": "fileorg"}

# A folder holding one of these is a unit. Markers that are folders themselves (.git) are
# found as path components; the rest by their file names.
VCS_MARKERS = (".git", ".hg", ".svn", ".bzr", "_darcs", ".fslckout", ".jj")
PROJECT_FILES = (
    "pyproject.toml", "setup.py", "setup.cfg", "package.json", "Cargo.toml", "go.mod",
    "CMakeLists.txt", "pom.xml", "build.gradle", "build.gradle.kts", "settings.gradle",
    "Gemfile", "composer.json", "Makefile", "GNUmakefile", "makefile", "meson.build", "mix.exs",
    "Package.swift", "pubspec.yaml", "build.sbt", "deno.json", "stack.yaml", "dune-project",
    "configure.ac", "SConstruct", "WORKSPACE", "BUILD.bazel", "flake.nix",
)  # fmt: skip
PROJECT_SUFFIXES = (
    ".sln", ".csproj", ".fsproj", ".vbproj", ".vcxproj", ".cabal", ".Rproj", ".xcodeproj",
    ".xcworkspace",
)  # fmt: skip
TOOL_MARKERS: dict[str, str] = {
    "pyvenv.cfg": "virtualenv, pyvenv.cfg",
    "conda-meta": "conda environment, conda-meta",
    "CACHEDIR.TAG": "cache, CACHEDIR.TAG",
}
DATA_MARKERS: dict[str, str] = {"prefect.db": "Prefect home, prefect.db"}
_PROJECT_FILE_SET = frozenset(PROJECT_FILES)
_VCS_SET = frozenset(VCS_MARKERS)
# The same names as bytes, for the walk's fast answers (plain_file_name, by_contents): every
# one is ASCII, so a name's bytes equal one exactly when its decoded text does.
_JUNK_BYTES = frozenset(n.encode() for n in JUNK_NAMES)
_DOWNLOAD_BYTES = tuple(s.encode() for s in DOWNLOAD_SUFFIXES)
_MARKER_BYTES = frozenset(m.encode() for m in (*DATA_MARKERS, *TOOL_MARKERS, *VCS_MARKERS))
_MARKER_BYTES |= {m.encode() for m in PROJECT_FILES}
# A name ending in a project suffix, in a folder's names joined by NUL (never in a name).
_PROJECT_SUFFIX_END = re.compile(
    b"(?:" + b"|".join(re.escape(s.encode()) for s in PROJECT_SUFFIXES) + rb")(?:\x00|\Z)"
)


@dataclass(frozen=True, slots=True)
class Reader:
    """Who scans: the effective uid and every group id the process holds, as readable() asks."""

    uid: int
    gids: frozenset[int]

    @classmethod
    def current(cls) -> Reader:
        return cls(os.geteuid(), frozenset((os.getegid(), *os.getgroups())))


UNREADABLE = LeftAlone("unreadable", "no read permission")
READ_ONLY_FOLDER = LeftAlone("read-only-folder", "no write permission")


def read_only_folder(directory: bytes) -> LeftAlone:
    """Why a folder can_change refuses is left alone: its permissions, or an immutable flag,
    which chmod cannot change (storage.file_flags; read only for such a folder)."""
    found = refusing(flags_of(None, directory))
    return READ_ONLY_FOLDER if found is None else LeftAlone(READ_ONLY_FOLDER.code, ", ".join(found))


def can_change(directory: bytes) -> bool:
    """Whether the scanning user may rename entries out of `directory` (write and search
    permission, as the kernel decides for the effective ids: ACLs and read-only mounts too).
    One syscall a folder, not a file."""
    return os.access(directory, os.W_OK | os.X_OK, effective_ids=True)


def readable(mode: int, uid: int, gid: int, reader: Reader) -> bool:
    """Whether `reader` may read a file of this lstat `mode`, owner and group, by its
    permission bits as the kernel checks them (the owner's bits for the owner, the group's
    for a member, else the others'); root reads anything on a local disk. From the stat data
    the walk has, no syscall per file: an ACL that says otherwise shows as a read error of a
    later stage (tasks.plan.facts leaves such a file alone too)."""
    if reader.uid == 0:
        return True
    if uid == reader.uid:
        return bool(mode & stat.S_IRUSR)
    if gid in reader.gids:
        return bool(mode & stat.S_IRGRP)
    return bool(mode & stat.S_IROTH)


def is_hidden(name: bytes) -> bool:
    return name.startswith(b".") and name not in (b".", b"..")


@functools.lru_cache(maxsize=65_536)
def by_name(
    name: bytes, is_dir: bool, include_hidden: bool, exclude: tuple[str, ...] = ()
) -> LeftAlone | None:
    """The rule a name alone decides, or None (the entry is organized, or looked into)."""
    text = name.decode("utf-8", "surrogateescape")
    if is_dir:
        if text in OWN_FOLDERS:
            return LeftAlone("data-folder", OWN_FOLDERS[text])
        if text in CREDENTIAL_FOLDERS:
            return LeftAlone("credentials", text)
        tool = TOOL_FOLDERS.get(text)
        if tool is None and text.startswith(".Trash-"):
            tool = "trash"
        if tool is not None:
            return LeftAlone("tool-folder", text if tool == text else f"{tool}, {text}")
        if text.casefold().endswith(".download"):  # Safari's: a folder until it is done
            return LeftAlone("download", text)
    elif text.casefold() in JUNK_NAMES or text.startswith("._"):
        return LeftAlone("junk", text)
    elif text.casefold().endswith(DOWNLOAD_SUFFIXES):
        return LeftAlone("download", text)
    if is_hidden(name):
        if not include_hidden:
            return LeftAlone("hidden", text)
        if is_dir or _extension(text) not in PERSONAL_EXTENSIONS:
            return LeftAlone("config", text)
    for pattern in exclude:
        if fnmatch.fnmatchcase(text, pattern):
            return LeftAlone("excluded", pattern)
    return None


def _extension(hidden: str) -> str:
    """The extension of a hidden name, lowercase ("" for ".bashrc", "txt" for ".notes.txt")."""
    stem, dot, ext = hidden[1:].rpartition(".")
    return ext.lower() if dot and stem else ""


def plain_file_name(name: bytes) -> bool:
    """Whether by_name(name, False, include_hidden, ()) is None, whatever include_hidden says,
    on the bytes (the walk asks it of every file). An ASCII name's casefold() is its lower();
    any other name answers False, and by_name is asked."""
    if not name.isascii() or name.startswith(b"."):
        return False
    lower = name.lower()
    return lower not in _JUNK_BYTES and not lower.endswith(_DOWNLOAD_BYTES)


def by_contents(names: Collection[bytes]) -> LeftAlone | None:
    """The rule a folder's own entries decide (its names, files and folders alike), or None."""
    if not names:
        return None
    if _MARKER_BYTES.isdisjoint(names) and not _PROJECT_SUFFIX_END.search(b"\0".join(names)):
        return None  # what the loops below find, on the bytes (markers and suffixes: ASCII)
    texts = {n.decode("utf-8", "surrogateescape") for n in names}
    for marker, detail in DATA_MARKERS.items():
        if marker in texts:
            return LeftAlone("data-folder", detail)
    for marker, detail in TOOL_MARKERS.items():
        if marker in texts:
            return LeftAlone("tool-folder", detail)
    for marker in VCS_MARKERS:
        if marker in texts:
            return LeftAlone("project", marker)
    for marker in PROJECT_FILES:
        if marker in texts:
            return LeftAlone("project", marker)
    for text in sorted(texts):
        if text.endswith(PROJECT_SUFFIXES):
            return LeftAlone("project", text)
    return None


def is_marker(name: bytes) -> bool:
    """Whether `name` in a folder can make that folder a unit (by_contents would say so)."""
    text = name.decode("utf-8", "surrogateescape")
    return (
        text in _PROJECT_FILE_SET
        or text in _VCS_SET
        or text in TOOL_MARKERS
        or text in DATA_MARKERS
        or text.endswith(PROJECT_SUFFIXES)
    )


def for_path(
    path: bytes, is_dir: bool, include_hidden: bool, exclude: tuple[str, ...] = ()
) -> tuple[bytes, LeftAlone] | None:
    """The outermost component of `path` that a name rule leaves alone, as (its path, rule):
    for a key under `node_modules/`, that folder. Object listings and the planner use it."""
    parts = path.split(b"/")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        rule = by_name(part, is_dir or not last, include_hidden, exclude)
        if rule is not None:
            return b"/".join(parts[: i + 1]), rule
    return None


def units_by_markers(paths: Iterable[bytes]) -> dict[bytes, LeftAlone]:
    """Folders (relative paths; b"" is the root) that the entries listed show to be units:
    for each folder, the rule by_contents gives for the names seen in it. For listings that
    cannot look into a folder before walking it (object stores: one flat listing)."""
    seen: dict[bytes, set[bytes]] = {}
    folders: set[bytes] = set()
    for path in paths:
        directory, _, name = path.rpartition(b"/")
        if is_marker(name):
            seen.setdefault(directory, set()).add(name)
        folders.add(directory)
    # Marker folders (.git/, conda-meta/) show up as a component of the paths under them.
    for folder in _with_parents(folders):
        parent, _, name = folder.rpartition(b"/")
        if is_marker(name):
            seen.setdefault(parent, set()).add(name)
    units = {}
    for folder, names in seen.items():
        rule = by_contents(names)
        if rule is not None:
            units[folder] = rule
    return units


def _with_parents(folders: Iterable[bytes]) -> set[bytes]:
    out: set[bytes] = set()
    for folder in folders:
        while folder and folder not in out:
            out.add(folder)
            folder = folder.rpartition(b"/")[0]
    return out


@dataclass(frozen=True)
class ScanRules:
    """What a scan leaves alone besides the fixed rules: hidden entries unless opted in,
    names matching the user's exclude patterns, and sealed folders (fileorg's data folder,
    a Prefect home) by absolute path, or by key prefix relative to an object-store root."""

    include_hidden: bool = False
    exclude: tuple[str, ...] = ()
    sealed: tuple[tuple[bytes, str], ...] = ()  # (path, what it is)

    def sealed_rule(self, path: bytes) -> LeftAlone | None:
        for sealed, detail in self.sealed:
            if path == sealed:
                return LeftAlone("data-folder", detail)
        return None


def root_rule(root: bytes, rules: ScanRules, home: bytes | None) -> tuple[bytes, LeftAlone] | None:
    """The folder at or above a local `root` that a walk from higher up would have left alone,
    and why (a walk never judges the folders above where it starts): `root` in a sealed
    folder (fileorg's data folder, a Prefect home); the root or a folder above it left alone
    by its name (hidden unless opted in, a tool or state folder, credentials, fileorg's own);
    a folder above it by its entries (a project, a virtualenv, a Prefect home). Below the
    home folder when the root is in it (the home and what holds it are not judged: a home
    kept in git is no project of all it holds), else from the top, whose top-level folders'
    entries are the system's. The root's own entries are the walk's: a root that is a
    project is left alone whole, and reported."""
    for sealed, detail in rules.sealed:
        if root == sealed or root.startswith(sealed.rstrip(b"/") + b"/"):
            return sealed, LeftAlone("data-folder", detail)
    base = b""
    if home and root.startswith(home.rstrip(b"/") + b"/"):
        base = home.rstrip(b"/")
    names = [name for name in root[len(base) :].split(b"/") if name]
    path = base
    for i, name in enumerate(names):
        path = path + b"/" + name
        rule = by_name(name, True, rules.include_hidden)
        if rule is not None and rule.code != "config":  # a hidden folder named, and opted in
            return path, rule
        if i == len(names) - 1 or (not base and i == 0):
            continue
        try:
            entries = os.listdir(path)
        except OSError:
            continue  # unreadable: the walk below reports what it cannot read
        rule = by_contents(entries)
        if rule is not None:
            return path, rule
    return None


def root_refusal(root: str, rules: ScanRules, hidden_flag: str = "--include-hidden") -> str | None:
    """Why a run must not organize `root` (root_rule, below the user's home folder), as the
    one line the CLI prints, the API answers (400, its `include_hidden` as `hidden_flag`) and
    a run started otherwise fails with; None for a bucket, whose keys the listing judges, or
    a root that nothing above leaves alone."""
    from storage.objects.urls import is_object_url
    from storage.roots import home_folder

    if is_object_url(root):
        return None
    home = home_folder()
    found = root_rule(os.fsencode(root), rules, os.fsencode(home) if home else None)
    if found is None:
        return None
    folder, rule = found
    where = "" if folder == os.fsencode(root) else f" is inside {os.fsdecode(folder)}, which"
    hint = f" ({hidden_flag} organizes hidden folders)" if rule.code == "hidden" else ""
    return (
        f"{root}{where} is left alone ({rule.what}: {rule.detail}): organize a folder "
        f"outside it{hint}"
    )
