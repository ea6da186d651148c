"""Granted roots: where a user may scan and change files.

A requested path is canonicalized (realpath) and must then lie inside a granted root, compared
by whole path components, so `/data/alice2` is not inside `/data/alice`. A NUL byte or a `..`
component is refused outright; a symlink is resolved first, so one that leads out of the
root is refused like any other outside path, and one that stays inside is allowed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from api.errors import BadRequest, Forbidden


def within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def overlaps(a: str, b: str) -> bool:
    return within(a, b) or within(b, a)


def canonical(raw: str) -> str:
    """The realpath of an absolute path; Forbidden for NUL or `..`, BadRequest if relative."""
    if "\x00" in raw:
        raise Forbidden("root_path must not contain a NUL byte")
    if ".." in raw.split("/"):
        raise Forbidden("root_path must not contain '..'")
    if not os.path.isabs(raw):
        raise BadRequest("root_path must be an absolute path")
    try:
        return os.path.realpath(raw)
    except (OSError, ValueError) as exc:
        raise BadRequest(f"root_path cannot be resolved: {exc}") from None


def existing_dir(path: str, shown: str) -> str:
    if not os.path.isdir(path):
        raise BadRequest(f"root {shown} does not exist or is not a directory")
    if not os.access(path, os.R_OK | os.X_OK):
        raise BadRequest(f"root {shown} cannot be read")
    return path


def authorize(grants: Iterable[str], raw: str) -> str:
    """The canonical root for `raw` if it lies inside one of `grants`, else Forbidden."""
    path = canonical(raw)
    if not any(within(path, grant) for grant in grants):
        raise Forbidden("root_path is not inside a root granted to you")
    return existing_dir(path, raw)


def grantable(raw: str) -> str:
    """What an admin grants: an existing directory, canonicalized."""
    if "\x00" in raw or ".." in raw.split("/") or not os.path.isabs(raw):
        raise BadRequest("root must be an absolute path without '..' or NUL bytes")
    return existing_dir(os.path.realpath(raw), raw)
