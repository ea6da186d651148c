"""Hash one shard of a pass (the stage's entry, with the work lists of tasks.hashes.worklists).

The backend reads: files in the process pool (tasks.hashes.local), objects with ranged and
streamed GETs (tasks.hashes.objects).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pyarrow as pa

from storage import manifests
from storage.locations import DataStore
from tasks.hashes.worklists import FULL as FULL
from tasks.hashes.worklists import PREFIX as PREFIX
from tasks.hashes.worklists import inputs_dir
from tasks.hashes.worklists import plan_full_inputs as plan_full_inputs
from tasks.hashes.worklists import plan_prefix_inputs as plan_prefix_inputs

if TYPE_CHECKING:
    from tasks.backends import RootBackend


def hash_shard(
    store: DataStore,
    op_dir: str,
    pass_name: str,
    index: int,
    backend: RootBackend,
    processes: int,
    on_chunk: Callable[[int, int], None] = lambda files, nbytes: None,
) -> dict[str, int]:
    """Hash one shard of a pass, unless it is already written (the checkpoint)."""
    out = manifests.shard_path(op_dir, pass_name, index)
    if store.exists(out):
        return {"files": 0, "bytes_read": 0, "skipped_shard": 1}
    inputs_path = manifests.shard_path(op_dir, inputs_dir(pass_name), index)
    inputs = manifests.read_table(store, inputs_path)
    rows = inputs.to_pylist()
    todo = [r for r in rows if r["cached"] is None]
    cached = [r for r in rows if r["cached"] is not None]
    on_chunk(len(cached), 0)
    etags = backend.scanned_etags(store, op_dir, inputs_path) if todo else {}
    for r in todo:  # the work list has no ETag; an object is read If-Match the scanned one
        r["etag"] = etags.get(r["path"])
    results = backend.hash_rows(pass_name == FULL, todo, processes, on_chunk)
    table = pa.Table.from_pylist(
        [
            {
                "dev": r["dev"],
                "ino": r["ino"],
                "size": r["size"],
                "digest": r["cached"],
                "cached": True,
                "error": None,
            }
            for r in cached
        ]
        + [
            {
                "dev": r["dev"],
                "ino": r["ino"],
                "size": r["size"],
                "digest": digest,
                "cached": False,
                "error": error,
            }
            for r, (digest, error, _) in zip(todo, results, strict=True)
        ],
        schema=manifests.HASH,
    )
    manifests.write_table(store, out, table)
    return {
        "files": len(rows),
        "bytes_read": sum(r[2] for r in results),
        "errors": sum(1 for r in results if r[1] is not None),
        "skipped_shard": 0,
    }
