"""Million-row listings, old code against new, side by side: the first and the last page of each
sort of the files (with and without filters), of the plan and of the duplicate groups.

    .venv/bin/python bench/pages.py --base /work/wt/pages-base        # main before issue 15
    .venv/bin/python bench/pages.py --base /work/wt/pages-base --files 200000

Synthesizes one operation's scan, classify, hash and plan shards for --files files (as
bench/api_load.py does; a real organize of a million files takes minutes), builds its listing
manifest with this checkout's code, then runs two worker processes, one importing --base's
`storage.queries` and one this checkout's, and sends them the same cases one after the other,
so both sides meet the same load. Each case times the call the API's handler makes (old:
file_rows / plan_rows / duplicate_groups; new: files_page / plan_page / duplicates_page), not
HTTP. "new 1st" is the first call with the filtered positions forgotten (the cost of a filter
the process has not seen); "new" the median of --repeats calls; "cursor" the page after a
next_cursor made near the end (new only).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OP_ID = "15151515-1515-4515-9515-151515151515"
LIMIT = 50


def synthesize(data: Path, files: int) -> None:
    """Scan and classify shards (bench/api_load.py), then hash and plan shards to match: one
    file in ten has a twin, every file moves to Category/year/."""
    sys.path[:0] = [str(REPO), str(REPO / "bench")]
    import pyarrow as pa
    from api_load import synthesize_files

    from storage import manifests, queries
    from storage.locations import DataStore

    synthesize_files(data, OP_ID, "/tmp/pages-root", files, 50_000)
    store = DataStore(str(data))
    op_dir = store.operation_dir(OP_ID)
    for index, path in enumerate(manifests.shard_paths(store, op_dir, "scan")):
        scan = manifests.read_table(store, path, ["path", "size", "dev", "ino"])
        n = scan.num_rows
        inos = scan.column("ino").to_pylist()
        twins = [i for i in inos if i % 10 in (1, 2)]
        hashed = {
            "dev": pa.array([1] * len(twins), pa.uint64()),
            "ino": pa.array(twins, pa.uint64()),
            "size": [1000 + i // 10 for i in twins],
            "digest": [(i // 10).to_bytes(32, "big") for i in twins],
            "cached": [False] * len(twins),
            "error": pa.nulls(len(twins), pa.string()),
        }
        table = pa.table(hashed, schema=manifests.HASH)
        manifests.write_table(store, manifests.shard_path(op_dir, "hash", index), table)
        paths = scan.column("path").to_pylist()
        plan = {
            "src": paths,
            "dst": [b"Other/2020/" + p.rsplit(b"/", 1)[-1] for p in paths],
            "action": ["move" if i % 4 else "keep" for i in range(n)],
            "reason": ["organized"] * n,
            "reason_code": ["organized"] * n,
            "size": scan.column("size"),
            "kind": ["file"] * n,
        }
        for field in manifests.PLAN:
            plan.setdefault(field.name, pa.nulls(n, field.type))
        table = pa.table(plan, schema=manifests.PLAN)
        manifests.write_table(store, manifests.shard_path(op_dir, "plan", index), table)
    started = time.perf_counter()
    queries.build_listing(store, op_dir, include_empty=False)
    print(f"listing manifest built in {time.perf_counter() - started:.1f} s", flush=True)


def worker(repo: str, data: str) -> None:
    """Answer cases from stdin, one JSON line each, with this repository's queries."""
    sys.path.insert(0, repo)
    from storage import queries
    from storage.locations import DataStore

    store = DataStore(data)
    op_dir = store.operation_dir(OP_ID)
    new = hasattr(queries, "files_page")
    for line in sys.stdin:
        case = json.loads(line)
        call = _call(queries, store, op_dir, case, new)
        result: dict[str, Any] = {}
        if new:
            from storage.queries import pager

            pager._positions_kept.clear()
            result["first"], _ = _timed(call)
        samples = []
        for _ in range(case["repeats"] if new else 1):
            seconds, counted = _timed(call)
            samples.append(seconds)
        result.update(median=statistics.median(samples), count=counted)
        if new and case.get("cursor_offset") is not None:
            result["cursor"] = _after_cursor(queries, store, op_dir, case)
        print(json.dumps(result), flush=True)


def _after_cursor(q: Any, store: Any, op_dir: str, case: dict[str, Any]) -> float:
    """The page after a next_cursor made near the end of the listing."""
    near = queries_page(q, store, op_dir, case, case["cursor_offset"])
    seconds, _ = _timed(lambda: queries_page(q, store, op_dir, case, 0, near.next_cursor).count)
    return seconds


def queries_page(
    q: Any, store: Any, op_dir: str, case: dict[str, Any], offset: int, cursor: str | None = None
) -> Any:
    kind, params = case["kind"], case["params"]
    if kind == "files":
        return q.files_page(store, op_dir, LIMIT, offset, cursor, **params)
    if kind == "plan":
        return q.plan_page(store, op_dir, LIMIT, offset, cursor, **params)
    return q.duplicates_page(
        store, op_dir, limit=LIMIT, offset=offset, cursor=cursor, include_empty=False
    )


def _call(q: Any, store: Any, op_dir: str, case: dict[str, Any], new: bool) -> Any:
    kind, params, offset = case["kind"], case["params"], case["offset"]
    if new:
        return lambda: queries_page(q, store, op_dir, case, offset).count
    if kind == "files":
        return lambda: q.file_rows(store, op_dir, limit=LIMIT, offset=offset, **params)[1]
    if kind == "plan":
        return lambda: q.plan_rows(store, op_dir, limit=LIMIT, offset=offset, **params)[1]
    return lambda: q.duplicate_groups(store, op_dir, False, LIMIT, offset)[1]


def _timed(call: Any) -> tuple[float, int]:
    started = time.perf_counter()
    counted = call()
    return time.perf_counter() - started, int(counted)


def cases(files: int) -> list[dict[str, Any]]:
    found = []
    filters = {"category": "images", "year": 2010}
    for sort in ("path", "size", "date", "name"):
        for descending in (False, True):
            for kept in ({}, filters):
                params = {"sort": sort, "descending": descending, **kept}
                found.append({"kind": "files", "params": params, "label": _label(params)})
    found.append({"kind": "files", "params": {"name": "file-09"}, "label": "name=file-09"})
    found.append({"kind": "plan", "params": {}, "label": "plan"})
    found.append({"kind": "plan", "params": {"action": "move"}, "label": "plan action=move"})
    found.append({"kind": "duplicates", "params": {}, "label": "duplicates"})
    return found


def _label(params: dict[str, Any]) -> str:
    shown = f"{params['sort']}{' desc' if params['descending'] else ''}"
    extra = {k: v for k, v in params.items() if k not in ("sort", "descending")}
    return shown + ("".join(f" {k}={v}" for k, v in extra.items()) if extra else "")


def ask(process: subprocess.Popen[str], case: dict[str, Any]) -> dict[str, Any]:
    assert process.stdin and process.stdout
    process.stdin.write(json.dumps(case) + "\n")
    process.stdin.flush()
    answer: dict[str, Any] = json.loads(process.stdout.readline())
    return answer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", help="a checkout of the old code (required)")
    parser.add_argument("--data", type=Path, default=Path("/tmp/pages-bench/data"))
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, str(args.data))
        return 0
    marker = args.data / f".bench-pages-{args.files}"
    if not marker.exists():
        synthesize(args.data, args.files)
        marker.write_text("done\n")
    sides = {
        side: subprocess.Popen(
            [sys.executable, __file__, "--worker", repo, "--data", str(args.data)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": repo},
        )
        for side, repo in (("old", args.base), ("new", str(REPO)))
    }
    print(
        f"{'listing':34s} {'page':5s} {'count':>9s} {'old ms':>8s} {'new 1st':>8s} "
        f"{'new ms':>8s} {'cursor':>8s} {'old/new':>8s}"
    )
    try:
        for case in cases(args.files):
            first = {**case, "offset": 0, "repeats": args.repeats}
            counted = ask(sides["new"], first)["count"]
            last = max(counted - LIMIT, 0)
            for page, offset in (("first", 0), ("last", last)):
                sent = {**first, "offset": offset}
                if page == "last":
                    sent["cursor_offset"] = max(counted - 2 * LIMIT, 0)
                old, new = ask(sides["old"], sent), ask(sides["new"], sent)
                assert old["count"] == new["count"], (case, old, new)
                cursor = f"{new['cursor'] * 1000:8.1f}" if "cursor" in new else f"{'':8s}"
                print(
                    f"{case['label']:34s} {page:5s} {new['count']:9,d} "
                    f"{old['median'] * 1000:8.1f} {new['first'] * 1000:8.1f} "
                    f"{new['median'] * 1000:8.1f} {cursor} "
                    f"{old['median'] / new['median']:7.0f}x",
                    flush=True,
                )
    finally:
        for process in sides.values():
            assert process.stdin
            process.stdin.close()
            process.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
