"""Roots: what may be organized, checked once for the flows, the CLI and the API.

`check_root` gives the canonical root (a real directory, or a validated object-store URL) or
one line a user can act on. `broad_root` says why a root is too broad to organize without an
explicit request (the whole disk, a system folder, a whole home: the user's, another's in
/home or /Users, root's /root): a plan there would move files that programs and the system
expect where they are. `broad_refusal` is the one line the CLI and the API refuse such a
root with: a system folder always, a home unless --i-mean-it (`i_mean_it`).
"""

from __future__ import annotations

import errno
import ntpath
import os

from storage.errors import RootError
from storage.objects import ObjectRoot, is_object_url

# Folders whose whole tree belongs to the system or to installed programs: a root inside
# them is refused as well (/usr/share/x, /etc/nginx). /lib* is matched by prefix below.
SYSTEM_TREES = (
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/proc",
    "/run",
    "/sbin",
    "/snap",
    "/sys",
    "/usr",
    "/var/cache",
    "/var/lib",
    "/var/log",
    "/var/run",
    "/var/spool",
    # macOS (/etc and /var resolve to /private/...)
    "/System",
    "/Library",
    "/Applications",
    "/private/etc",
    "/private/var",
    "/cores",
)
# Folders that are system folders themselves but commonly hold people's data below them
# (/srv/photos, /opt/archive, /mnt/disk, /home/alice): only the folder itself is refused.
SYSTEM_FOLDERS = (
    "/",
    "/home",
    "/media",
    "/mnt",
    "/opt",
    "/private",
    "/srv",
    "/tmp",
    "/Users",
    "/Volumes",
    "/var",
)
# Folders whose every folder is a person's home (root's is /root).
HOME_PARENTS = ("/home", "/Users")
SYSTEM_WHY = "programs and the system expect its files where they are"
HOME_WHY = "it holds your settings and programs' state: organize a folder in it (~/Downloads)"
# What the top of a home holds besides people's files: programs and their state, in
# folders whose names are not hidden (macOS's Library and Applications, Windows' AppData,
# snaps' data, ~/bin on PATH, GOPATH, VM disks). Organizing a home leaves them whole: a
# photo in ~/Library/Application Support is an app's, not the user's to sort.
HOME_STATE_FOLDERS = ("Library", "Applications", "AppData", "snap", "bin", "go", "VirtualBox VMs")
_HOMES = ("your whole home folder", "a whole home folder")
SYSTEM = "a system folder"
WINDOWS_TREES = ("windows", "program files", "program files (x86)", "programdata")


def check_root(root: str) -> str:
    """The canonical root, or RootError with one line a user can act on.

    `profile://bucket/prefix` names an object-store root (storage.objects); anything else is
    a local directory. An empty or blank root is refused: a script whose `$DIR` is unset
    must not organize the folder it runs in.
    """
    from storage.objects import ObjectStore, parse_object_url

    if not root.strip():
        raise RootError("the root is empty: name the folder to organize ('.' for this one)")
    if is_object_url(root):
        parsed = parse_object_url(root)
        ObjectStore(parsed).check()
        return parsed.url
    path = os.path.realpath(os.path.expanduser(root))
    if not os.path.exists(path):
        raise RootError(f"root {root} {_missing(os.path.expanduser(root))}")
    if not os.path.isdir(path):
        raise RootError(f"root {root} is not a directory")
    try:
        with os.scandir(path):
            pass
    except OSError as exc:
        raise RootError(f"root {root} cannot be read: {exc.strerror}") from None
    return path


def broad_root(root: str, home: str | None) -> str | None:
    """Why the canonical `root` is too broad to organize unasked, or None.

    `home` is the user's canonical home folder (None when unknown).
    """
    if is_object_url(root):
        return None  # a bucket is the user's own data, never the system's
    if _is_windows_system(root):
        return SYSTEM
    if root in SYSTEM_FOLDERS or any(within(root, tree) for tree in SYSTEM_TREES):
        return SYSTEM
    top = root.strip("/").split("/", 1)[0]
    if top.startswith("lib"):  # /lib, /lib32, /lib64, /libx32...
        return SYSTEM
    if home and home != "/":
        if root == home:
            return "your whole home folder"
        if within(home, root):
            return "a folder that holds your whole home folder"
    if root == "/root" or os.path.dirname(root) in HOME_PARENTS:
        return "a whole home folder"
    return None


def broad_refusal(root: str, home: str | None, flag: str, i_mean_it: bool = False) -> str | None:
    """The line refusing a broad root (broad_root), or None when it may be organized: it is
    not broad, or it is a home and `flag` (--i-mean-it, `i_mean_it`) asked for it. A system
    folder is refused whatever is asked: nobody's files are there to sort, and a tryout's
    `organize /usr --i-mean-it` planned 92,282 moves of programs (`bin/[ -> Other/2022/[`)
    that an apply from a script would have made without a question."""
    reason = broad_root(root, home)
    if reason is None:
        return None
    if reason == SYSTEM:
        return f"{root} is {reason}: {SYSTEM_WHY}; organize a folder of your files instead"
    if i_mean_it:
        return None
    return f"{root} is {reason}: {HOME_WHY}; add {flag} to organize it anyway"


def home_state(root: str, home: str | None) -> list[tuple[bytes, str]]:
    """The program folders at the top of `root` when it is a whole home (HOME_STATE_FOLDERS),
    as the scan's sealed folders (absolute paths, with what each is); [] for any other root.
    The organize flow adds them to every run, however it was started (CLI or API)."""
    if broad_root(root, home) not in _HOMES:
        return []
    folders = [os.path.join(root, name) for name in HOME_STATE_FOLDERS]
    return [(os.fsencode(path), f"a home's {os.path.basename(path)}") for path in folders]


def _is_windows_system(root: str) -> bool:
    drive, rest = ntpath.splitdrive(root)
    if not drive:
        return False
    parts = [p for p in rest.replace("\\", "/").lower().split("/") if p]
    return not parts or parts[0] in WINDOWS_TREES


def home_folder() -> str | None:
    home = os.path.expanduser("~")
    return None if home == "~" else os.path.realpath(home)


def within(path: str, root: str) -> bool:
    """`path` is `root` or inside it (folders and object roots alike)."""
    if is_object_url(path) or is_object_url(root):
        if not (is_object_url(path) and is_object_url(root)):
            return False  # a local root and an object root never contain one another
        return stored(root).contains(stored(path))
    return path == root or path.startswith(root.rstrip("/") + "/")


def overlaps(a: str, b: str) -> bool:
    return within(a, b) or within(b, a)


def stored(url: str) -> ObjectRoot:
    """A canonical object root as stored in a grant or an operation (already validated when it
    was stored; its profile may have been removed since, which must not break comparisons)."""
    profile, _, rest = url.partition("://")
    bucket, _, prefix = rest.partition("/")
    return ObjectRoot(profile, bucket, prefix)


def _missing(path: str) -> str:
    """Why a root that does not resolve is not there: a symlink's own words say more than
    'does not exist' (the tryout's root was a loop)."""
    if not os.path.lexists(path):
        return "does not exist"
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symlink loop"
        if os.path.islink(path):
            return f"is a symlink to {os.readlink(path)!r}, which does not exist"
    return "does not exist"  # a parent that is a dangling link, or gone meanwhile
