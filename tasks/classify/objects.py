"""Classify objects: category from the key's extension, EXIF date and magic bytes from one
ranged GET of the object's head (If-Match the scanned ETag), else the key's name, else
LastModified.

Only images (EXIF) and keys without a known extension (magic bytes) are read, sized like the
local classifier (tasks.classify.content.head_size): EXIF_BYTES for an image, MAGIC_BYTES for an
unknown extension, whose EXIF is then looked for in those bytes only (one request per object).
ISO media dates (mp4, mov...) need the moov box, which may sit at the end of the object: videos
are dated by name or last-modified rather than read whole.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from storage.objects import ObjectChanged, ObjectStore, describe, parse_object_url
from tasks.classify.content import Classification, classify_head, wants_head

# Objects whose heads are fetched together: at most BATCH * EXIF_BYTES (32 MiB) in memory;
# progress is reported once a batch.
BATCH = 256


def read_error(exc: BaseException) -> str:
    """One line for an object that could not be read (never the request id or credentials)."""
    if isinstance(exc, ObjectChanged):
        return "read: changed since scan"
    return describe(exc, "read")


def classify_rows(
    root_url: str,
    rows: list[dict[str, Any]],
    on_chunk: Callable[[int, int], None] = lambda files, nbytes: None,
) -> list[Classification]:
    """Classifications of scan rows (path, size, mtime_ns, etag) of one object root, in order."""
    root = parse_object_url(root_url)
    store: ObjectStore | None = None
    out: list[Classification] = []
    for start in range(0, len(rows), BATCH):
        batch = rows[start : start + BATCH]
        wanted = [wants_head(os.path.basename(r["path"]), r["size"]) for r in batch]
        reads = [(root.key(r["path"]), r["etag"], n) for r, n in zip(batch, wanted, strict=True)]
        heads: dict[int, bytes | BaseException] = {}
        todo = [i for i, n in enumerate(wanted) if n > 0]
        if todo:
            store = store or ObjectStore(root)
            results = store.read_heads([reads[i] for i in todo])
            heads = dict(zip(todo, results, strict=True))
        for i, r in enumerate(batch):
            head = heads.get(i)
            name, mtime_ns = os.path.basename(r["path"]), r["mtime_ns"]
            if isinstance(head, BaseException):
                out.append(classify_head(name, mtime_ns, None, read_error(head)))
            else:
                out.append(classify_head(name, mtime_ns, head))
        on_chunk(len(batch), 0)  # like local files: classify progress counts files only
    return out
