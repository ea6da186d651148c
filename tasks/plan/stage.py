"""Plan stage: the manifests into DuckDB, the plan in parts (tasks.plan.partition), the shards."""

from __future__ import annotations

import logging
import tempfile
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from storage import manifests
from storage.locations import DataStore
from storage.operations import PlanOptions
from storage.queries import workspace
from tasks.links import root_paths
from tasks.plan.facts import fingerprint, load_stage_facts
from tasks.plan.layout import parse_layout
from tasks.plan.partition import plan_parts
from tasks.plan.planner import PlanPolicy

if TYPE_CHECKING:
    from tasks.backends import RootBackend

log = logging.getLogger(__name__)

STAGE = "plan"
# Bumped when the planner's rows differ on the same input (a decision, or a reason's words: a
# re-scan of an unchanged tree shows what a fresh plan would): an older plan is not reused.
# 6: a case-only clash names its holder; a file standing where a folder must be says so.
# 7: a clash's "name (n)" is never a name another file wants as its own ("IMG (1).jpg"),
# and a template's empty field takes its separator with it ("README", not "README.").
# 8: with include_hidden, dot-folders and dot-files of no personal kind stay ("config").
# 9: nothing is planned into a unit that a listing shows by its markers (a bucket's project).
# 10: a hard-link copy of another mode than its kept copy's stays, `not-linked` (apply refuses it).
# 11: a sorted hidden file's reason says it keeps its name, so it stays hidden.
# 12: and one of another owner (uid:gid, which the scan now records), as apply refuses that too.
PLANNER_VERSION = 12
# DuckDB's memory while it plans: past it, its tables and sorts spill to a temporary folder.
# 128 MB took the plan alone at a million files from 506 to 365 MiB peak RSS, and cost the
# warm 146k-file run 0.7-1.1 s of its 4 s plan (whole runs 12.0-15.0 s against 10.4-12.6):
# not kept while the speed goal is further off than the memory one (bench/README.md).
PLAN_MEMORY = "256MB"


def policy_for(options: PlanOptions, folders_move: bool = True) -> PlanPolicy:
    """The planner's policy for these options; `folders_move`: the root's folders can move
    whole by one rename (RootBackend.folders_move)."""
    return PlanPolicy(
        layout=parse_layout(options.mode, options.template),
        duplicates=options.duplicates,
        keep=options.keep,
        include_empty=options.include_empty,
        exclude=tuple(options.exclude),
        include_hidden=options.include_hidden,
        projects=options.projects,
        albums=options.albums,
        keep_subfolders=options.keep_subfolders,
        undated=options.undated,
        folders_move=folders_move,
    )


def fingerprint_header(options: PlanOptions, root_dev: int | None) -> bytes:
    return options.model_dump_json().encode() + f"\n{PLANNER_VERSION} {root_dev}\n".encode()


def plan_operation(
    store: DataStore,
    op_dir: str,
    options: PlanOptions,
    shard_rows: int,
    backend: RootBackend,
    prev_dir: str | None = None,
) -> dict[str, Any]:
    """Plan the operation once: in DuckDB and in parts (tasks.plan.partition), the plan of an
    unchanged tree reused from the previous operation without planning."""
    done = manifests.done_info(store, op_dir, STAGE)
    if done is not None:
        return dict(done)
    for stale in manifests.shard_paths(store, op_dir, STAGE):
        store.remove(stale)
    root_dev = (manifests.done_info(store, op_dir, "scan") or {}).get("root_dev")
    with workspace(store) as con, tempfile.TemporaryDirectory(prefix="fileorg-plan-") as spill:
        con.execute(f"SET memory_limit = '{PLAN_MEMORY}'")
        con.execute("SET temp_directory = $dir", {"dir": spill})
        con.execute("SET preserve_insertion_order = false")  # every read that needs one sorts
        load_stage_facts(con, store, op_dir, options.include_empty, root_paths(backend.url))
        stamp = fingerprint(con, fingerprint_header(options, root_dev))
        reused = _reuse_previous(store, op_dir, prev_dir, stamp)
        if reused is not None:
            return reused
        policy = policy_for(options, backend.folders_move)
        try:
            plan_parts(con, policy, root_dev)
        except duckdb.OutOfMemoryException:
            # A step DuckDB cannot spill outgrew PLAN_MEMORY (a far bigger tree): plan again
            # under DuckDB's own limit rather than fail.
            log.warning("plan: DuckDB needed more than %s, planning again without it", PLAN_MEMORY)
            con.execute("RESET memory_limit")
            plan_parts(con, policy, root_dev)
        _keep_only_the_plan(con)
        shards = _write_shards(con, store, op_dir, shard_rows)
        counts = _counts(con)
    counts.update(shards=shards, fingerprint=stamp)
    manifests.mark_done(store, op_dir, STAGE, counts)
    return counts


def _keep_only_the_plan(con: Any) -> None:
    """The table `plan_out`: the rows of `plan_rows`, and every other table dropped, so that
    the sort of the whole plan has PLAN_MEMORY to itself (what it did not take spilled)."""
    con.execute("CREATE OR REPLACE TABLE plan_out AS SELECT * FROM plan_rows")
    con.execute("DROP VIEW plan_rows")
    others = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
        " AND schema_name = current_schema() AND table_name <> 'plan_out'"
    ).fetchall()
    for (name,) in others:
        con.execute(f'DROP TABLE "{name}"')


def _write_shards(con: Any, store: DataStore, op_dir: str, shard_rows: int) -> int:
    """The plan (`plan_out`) in path order, `shard_rows` rows a shard (one empty shard for no
    entry)."""
    try:
        return _write_sorted(con, store, op_dir, shard_rows)
    except duckdb.OutOfMemoryException:
        # One sort of every whole row needed more pinned memory than PLAN_MEMORY (wide rows:
        # a million of them failed at 256 MB where the paths alone sort in 40 MB). The same
        # shards, each sorted alone, overwrite what was written.
        log.warning("plan: sorting the plan one shard at a time")
        return _write_sorted_by_range(con, store, op_dir, shard_rows)


def _write_sorted(con: Any, store: DataStore, op_dir: str, shard_rows: int) -> int:
    reader = con.sql("SELECT * FROM plan_out ORDER BY src").to_arrow_reader(shard_rows)
    pending: list[pa.RecordBatch] = []
    held = shards = 0
    for batch in reader:
        pending.append(batch)
        held += batch.num_rows
        while held >= shard_rows:
            table = pa.Table.from_batches(pending).cast(manifests.PLAN)
            _write(store, op_dir, shards, table.slice(0, shard_rows))
            rest = table.slice(shard_rows)
            pending, held, shards = rest.to_batches(), rest.num_rows, shards + 1
    if held or not shards:
        table = pa.Table.from_batches(pending, schema=reader.schema).cast(manifests.PLAN)
        _write(store, op_dir, shards, table)
        shards += 1
    return shards


def _write_sorted_by_range(con: Any, store: DataStore, op_dir: str, shard_rows: int) -> int:
    """The paths alone sorted to find each shard's first one, then each shard's rows read by
    that range and sorted: the shards _write_sorted writes (paths are unique)."""
    starts = [
        first
        for (first,) in con.execute(
            "SELECT src FROM (SELECT src, row_number() OVER (ORDER BY src) - 1 AS n"
            " FROM plan_out) WHERE n % $rows = 0 ORDER BY src",
            {"rows": shard_rows},
        ).fetchall()
    ]
    if not starts:
        _write(store, op_dir, 0, manifests.PLAN.empty_table())
        return 1
    for index, first in enumerate(starts):
        bounds = {"a": first, "b": starts[index + 1] if index + 1 < len(starts) else None}
        table = con.sql(
            "SELECT * FROM plan_out WHERE src >= $a AND ($b IS NULL OR src < $b) ORDER BY src",
            params=bounds,
        ).to_arrow_table()
        _write(store, op_dir, index, table.cast(manifests.PLAN))
    return len(starts)


def _write(store: DataStore, op_dir: str, index: int, table: pa.Table) -> None:
    manifests.write_table(store, manifests.shard_path(op_dir, STAGE, index), table.combine_chunks())


def _counts(con: Any) -> dict[str, Any]:
    """What plan_operation returns: entries, each action, conflicts, each reason code."""
    counts: dict[str, Any] = {"entries": 0}
    for action, n in con.execute(
        "SELECT action, count(*) FROM plan_out GROUP BY 1 ORDER BY 1"
    ).fetchall():
        counts[action] = n
        counts["entries"] += n
    by_reason = dict(
        con.execute("SELECT reason_code, count(*) FROM plan_out GROUP BY 1 ORDER BY 1").fetchall()
    )
    conflicts = by_reason.get("renamed", 0) + by_reason.get("conflict", 0)
    if conflicts:
        counts["conflicts"] = conflicts
    counts["by_reason"] = by_reason
    return counts


def _reuse_previous(
    store: DataStore, op_dir: str, prev_dir: str | None, stamp: str
) -> dict[str, Any] | None:
    """The previous operation's plan, copied, when the planner would see exactly the same
    input: the re-scan of an unchanged tree then skips planning altogether."""
    if prev_dir is None:
        return None
    info = manifests.done_info(store, prev_dir, STAGE)
    if info is None or info.get("fingerprint") != stamp:
        return None
    for index, path in enumerate(manifests.shard_paths(store, prev_dir, STAGE)):
        store.write_bytes(manifests.shard_path(op_dir, STAGE, index), store.read_bytes(path))
    counts = {**info, "reused_from": prev_dir.rsplit("/", 1)[-1]}
    manifests.mark_done(store, op_dir, STAGE, counts)
    return counts
