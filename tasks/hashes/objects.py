"""Hash objects: the two passes of tasks.hashes.stage with requests instead of file reads.

* prefix: one GET per object (If-Match the scanned ETag). Objects of at most
  WHOLE_OBJECT_BYTES are read whole and their digest is the content hash, final
  (the full pass reuses it): a request costs far more than a few hundred KiB. Bigger ones get a
  ranged GET of the first PREFIX_BYTES, blake3 of those bytes. Objects of one size share one
  rule, so comparing (size, digest) stays sound;
* full: one streamed GET per object (If-Match), blake3 of the whole content. So every
  candidate costs one request, or two when it is big and its prefix is shared.

Duplicates are found by these digests, never by ETag: a multipart upload's ETag is not a hash
of its content. An object that changed since the scan (412, or a size that does not match) is
an error row, never a digest of content that is not the scanned object's.

Requests run concurrently on s3fs's event loop (the profile's `concurrency`); no process pool
(an s3fs instance does not survive a fork, and the work here is waiting, not CPU).
"""

from __future__ import annotations

from collections.abc import Callable

import blake3
import pyarrow as pa

from storage.locations import DataStore
from storage.objects import ObjectChanged, ObjectStore, describe, parse_object_url
from storage.queries import connect, source
from tasks.hashes import local as hashing
from tasks.hashes.columns import Hashed, chunk_ranges, from_results

Result = hashing.Result  # (digest or None, error or None, bytes read)
CHANGED = hashing.CHANGED  # the same words as for a file
# A request costs far more than its bytes: the prefix pass reads objects up to this size whole,
# so that their digest is final and the full pass skips them.
WHOLE_OBJECT_BYTES = 256 * 1024


def scanned_etags(store: DataStore, op_dir: str, inputs_path: str) -> dict[bytes, str]:
    """The scanned ETag of each object of one hash work list (the work list has no ETag)."""
    shard = store.duckdb_path(inputs_path).replace("'", "''")
    sql = f"""
        SELECT i.path, s.etag FROM read_parquet('{shard}') i
        JOIN {source(store, op_dir, "scan")} s
          ON s.dev = i.dev AND s.ino = i.ino AND s.path = i.path
    """
    with connect(store) as con:
        pairs = con.execute(sql).fetchall()
    return {path: etag for path, etag in pairs}


def _error(exc: BaseException) -> str:
    if isinstance(exc, ObjectChanged):
        return CHANGED
    return describe(exc, "read")


def hash_rows(
    root_url: str,
    full: bool,
    rows: pa.Table,
    on_chunk: Callable[[int, int], None] = lambda files, nbytes: None,
) -> Hashed:
    """Digest of each work-list row (path, size, scanned etag) of one object root, in order.

    An object costs a request: its key, ETag and size are Python values for the request's
    sake, the answers go back as columns."""
    root = parse_object_url(root_url)
    store = ObjectStore(root)
    paths, sizes = rows.column("path").to_pylist(), rows.column("size").to_pylist()
    has_etags = "etag" in rows.column_names
    etags = rows.column("etag").to_pylist() if has_etags else [None] * rows.num_rows
    out: list[Result] = []
    # Chunks bounded by count and bytes as for files: progress once a chunk.
    for a, b in chunk_ranges(rows.column("size"), by_bytes=full):
        batch = zip(paths[a:b], etags[a:b], sizes[a:b], strict=True)
        items = [(root.key(path), etag, size) for path, etag, size in batch]
        chunk = _full(store, items) if full else _prefix(store, items)
        on_chunk(len(chunk), sum(r[2] for r in chunk))
        out.extend(chunk)
    return from_results(out)


def _prefix(store: ObjectStore, items: list[tuple[str, str | None, int]]) -> list[Result]:
    whole = [i for i, (_, _, size) in enumerate(items) if size <= WHOLE_OBJECT_BYTES]
    out: list[Result | None] = [None] * len(items)
    for i, result in zip(whole, _full(store, [items[i] for i in whole]), strict=True):
        out[i] = result
    rest = [i for i, (_, _, size) in enumerate(items) if size > WHOLE_OBJECT_BYTES]
    for i, result in zip(rest, _head(store, [items[i] for i in rest]), strict=True):
        out[i] = result
    return [r for r in out if r is not None]


def _head(store: ObjectStore, items: list[tuple[str, str | None, int]]) -> list[Result]:
    heads = store.read_heads([(key, etag, hashing.PREFIX_BYTES) for key, etag, _ in items])
    out: list[Result] = []
    for (_, _, size), head in zip(items, heads, strict=True):
        if isinstance(head, BaseException):
            out.append((None, _error(head), 0))
        elif len(head) != min(size, hashing.PREFIX_BYTES):
            out.append((None, CHANGED, len(head)))
        else:
            out.append((blake3.blake3(head).digest(), None, len(head)))
    return out


def _full(store: ObjectStore, items: list[tuple[str, str | None, int]]) -> list[Result]:
    out: list[Result] = []
    for result in store.hash_objects(items):
        if isinstance(result, BaseException):
            out.append((None, _error(result), 0))
        else:
            digest, nbytes = result
            out.append((digest, None, nbytes))
    return out
