"""Hash one shard of a pass (the stage's entry, with the work lists of tasks.hashes.worklists).

The backend reads: files as Arrow chunks in the process pool or threads (tasks.hashes.columns,
tasks.hashes.local), objects with ranged and streamed GETs (tasks.hashes.objects).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

import pyarrow as pa
import pyarrow.compute as pc

from storage import manifests
from storage.locations import DataStore
from tasks.hashes.worklists import FULL as FULL
from tasks.hashes.worklists import PREFIX as PREFIX
from tasks.hashes.worklists import inputs_dir
from tasks.hashes.worklists import plan_full_inputs as plan_full_inputs
from tasks.hashes.worklists import plan_prefix_inputs as plan_prefix_inputs

if TYPE_CHECKING:
    from tasks.backends import RootBackend

ArrayLike: TypeAlias = pa.Array | pa.ChunkedArray


def hash_shard(
    store: DataStore,
    op_dir: str,
    pass_name: str,
    index: int,
    backend: RootBackend,
    processes: int,
    on_chunk: Callable[[int, int], None] = lambda files, nbytes: None,
) -> dict[str, int]:
    """Hash one shard of a pass, unless it is already written (the checkpoint).

    The work list stays Arrow: the rows whose digest is known (`cached`) are copied, the rest
    go to the backend as columns and come back as columns."""
    out = manifests.shard_path(op_dir, pass_name, index)
    if store.exists(out):
        return {"files": 0, "bytes_read": 0, "skipped_shard": 1}
    inputs_path = manifests.shard_path(op_dir, inputs_dir(pass_name), index)
    inputs = manifests.read_table(store, inputs_path)
    known = pc.is_valid(inputs.column("cached"))
    cached, todo = inputs.filter(known), inputs.filter(pc.invert(known))
    on_chunk(cached.num_rows, 0)
    if todo.num_rows:
        todo = _with_etags(todo, backend.scanned_etags(store, op_dir, inputs_path))
    hashed = backend.hash_rows(pass_name == FULL, todo, processes, on_chunk)
    table = pa.concat_tables(
        [
            _results(cached, cached.column("cached"), pa.nulls(cached.num_rows, pa.string()), True),
            _results(todo, hashed.digest, hashed.error, False),
        ]
    )
    manifests.write_table(store, out, table)
    return {
        "files": inputs.num_rows,
        "bytes_read": hashed.bytes_read,
        "errors": hashed.errors,
        "skipped_shard": 0,
    }


def _with_etags(todo: pa.Table, etags: dict[bytes, str]) -> pa.Table:
    """The work list has no ETag; an object is read If-Match the scanned one (a file has
    none: the backend answers an empty mapping and the table stays as it is)."""
    if not etags:
        return todo
    column = pa.array([etags.get(p) for p in todo.column("path").to_pylist()], pa.string())
    return todo.append_column("etag", column)


def _results(rows: pa.Table, digest: ArrayLike, error: ArrayLike, cached: bool) -> pa.Table:
    """HASH rows: the work list's identity columns beside their digests."""
    columns = [rows.column("dev"), rows.column("ino"), rows.column("size"), digest]
    columns += [pa.repeat(pa.scalar(cached), rows.num_rows), error]
    return pa.Table.from_arrays(columns, schema=manifests.HASH)
