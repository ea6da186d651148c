"""Plan stage: read the manifests, run the pure planner, write the plan shards."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import blake3
import pyarrow as pa

from storage import manifests
from storage.locations import DataStore
from storage.operations import PlanOptions
from storage.queries import connect, source
from tasks.plan.layout import parse_layout
from tasks.plan.planner import FileFacts, PlannedMove, PlanPolicy, plan_moves

if TYPE_CHECKING:
    from tasks.backends import RootBackend

STAGE = "plan"
# Bumped when the planner decides differently on the same input: an older plan is not reused.
PLANNER_VERSION = 2


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


def load_facts(store: DataStore, op_dir: str, include_empty: bool) -> list[FileFacts]:
    sql = f"""
        SELECT s.path, s.kind, s.size, s.mtime_ns, s.dev, s.ino, s.error,
               c.category, c.ext, c.date, h.digest, c.date_source, c.artist, c.album,
               s.left_alone, s.rule
        FROM {source(store, op_dir, "scan")} s
        LEFT JOIN {source(store, op_dir, "classify")} c ON c.path = s.path
        LEFT JOIN (
            SELECT dev, ino, any_value(digest) AS digest FROM {source(store, op_dir, "hash")}
            WHERE error IS NULL GROUP BY dev, ino
        ) h ON h.dev = s.dev AND h.ino = s.ino AND s.kind = 'file'
    """
    facts = []
    with connect(store) as con:
        result = con.execute(sql)
        # In batches: a million rows as tuples beside their FileFacts would double the peak.
        while rows := result.fetchmany(50_000):
            facts.extend(_facts(rows, include_empty))
    return facts


def _facts(rows: list[tuple[Any, ...]], include_empty: bool) -> list[FileFacts]:
    facts = []
    for row in rows:
        path, kind, size, mtime_ns, dev, ino, error, category, ext, date, digest = row[:11]
        date_source, artist, album, left_alone, rule = row[11:]
        if digest is None and include_empty and kind == "file" and size == 0 and not left_alone:
            digest = manifests.EMPTY_DIGEST
        facts.append(
            FileFacts(
                path=path,
                kind=kind,
                size=size,
                mtime_ns=mtime_ns,
                dev=dev,
                ino=ino,
                category=category or "other",
                ext=ext or "",
                date=date,
                digest=digest,
                error=error,
                date_source=date_source or "",
                artist=artist,
                album=album,
                left_alone=left_alone,
                rule=rule,
            )
        )
    return facts


def _table(moves: list[PlannedMove]) -> pa.Table:
    columns = {name: [getattr(m, name) for m in moves] for name in manifests.PLAN.names}
    # Reasons quote paths decoded with surrogateescape (non-UTF-8 names); Parquet strings
    # must be valid UTF-8, so those bytes are shown escaped (display text only).
    columns["reason"] = [_display_text(r) for r in columns["reason"]]
    return pa.Table.from_pydict(columns, schema=manifests.PLAN)


def _display_text(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def fingerprint(facts: list[FileFacts], options: PlanOptions, root_dev: int | None) -> str:
    """Everything the pure planner reads: equal fingerprints give equal plans."""
    hasher = blake3.blake3(options.model_dump_json().encode())
    hasher.update(f"{PLANNER_VERSION} {root_dev}\n".encode())
    for f in sorted(facts, key=lambda f: f.path):
        hasher.update(repr(f).encode("utf-8", "surrogateescape") + b"\n")
    return hasher.hexdigest()


def plan_operation(
    store: DataStore,
    op_dir: str,
    options: PlanOptions,
    shard_rows: int,
    backend: RootBackend,
    prev_dir: str | None = None,
) -> dict[str, Any]:
    """Plan the operation once."""
    done = manifests.done_info(store, op_dir, STAGE)
    if done is not None:
        return dict(done)
    for stale in manifests.shard_paths(store, op_dir, STAGE):
        store.remove(stale)
    facts = load_facts(store, op_dir, options.include_empty)
    root_dev = (manifests.done_info(store, op_dir, "scan") or {}).get("root_dev")
    stamp = fingerprint(facts, options, root_dev)
    reused = _reuse_previous(store, op_dir, prev_dir, stamp)
    if reused is not None:
        return reused
    moves = plan_moves(facts, policy_for(options, backend.folders_move), root_dev)
    del facts
    shards = max(1, -(-len(moves) // shard_rows))
    for index in range(shards):
        batch = moves[index * shard_rows : (index + 1) * shard_rows]
        manifests.write_table(store, manifests.shard_path(op_dir, STAGE, index), _table(batch))
    counts: dict[str, Any] = {"shards": shards, "entries": len(moves), "fingerprint": stamp}
    by_reason: dict[str, int] = {}
    for m in moves:
        counts[m.action] = counts.get(m.action, 0) + 1
        by_reason[m.reason_code] = by_reason.get(m.reason_code, 0) + 1
        if m.reason_code in ("renamed", "conflict"):
            counts["conflicts"] = counts.get("conflicts", 0) + 1
    counts["by_reason"] = dict(sorted(by_reason.items()))
    manifests.mark_done(store, op_dir, STAGE, counts)
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
