"""The tree a plan would leave: folders near the root, with their files and bytes.

Shown before an apply, so that a user sees `Images/2019  1,204 files  3.1 GB` rather than a
list of moves. A file ends at its destination when it moves (or is quarantined), and stays
where it is otherwise (kept, left alone, replaced by a hard link).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from storage import manifests
from storage.locations import DataStore

MOVING = ("move", "quarantine")


@dataclass
class Folder:
    path: bytes  # relative to the root; b"" is the root itself (files directly in it)
    files: int = 0
    bytes: int = 0
    arriving: int = 0  # files the plan moves into it (or below it)


def resulting_tree(store: DataStore, op_dir: str, depth: int = 2) -> list[Folder]:
    """Folders down to `depth` levels, each counting every file at or below it, in path
    order (a parent before its children)."""
    folders: dict[bytes, Folder] = defaultdict(lambda: Folder(b""))
    columns = ["src", "dst", "action", "size", "kind"]
    for path in manifests.shard_paths(store, op_dir, "plan"):
        table = manifests.read_table(store, path, columns=columns).to_pydict()
        for src, dst, action, size, kind in zip(*(table[c] for c in columns), strict=True):
            if kind != "file":  # a link, a folder left alone whole, an error: the summary's
                continue  # files are regular files, so are the tree's (the tryout: 28 vs 48)
            moving = action in MOVING and dst is not None
            parts = (dst if moving else src).split(b"/")[:-1]
            for level in range(min(depth, len(parts)) + 1):
                key = b"/".join(parts[:level])
                folder = folders[key]
                folder.path = key
                folder.files += 1
                folder.bytes += size or 0
                folder.arriving += int(moving)
    return [folders[k] for k in sorted(folders, key=lambda p: p.split(b"/") if p else [])]
