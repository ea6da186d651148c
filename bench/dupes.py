"""Duplicate finding on a large real tree: fileorg vs jdupes vs rmlint, cold and warm.

    .venv/bin/python bench/dupes.py                  # builds /work/bench-data/big if missing
    .venv/bin/python bench/dupes.py --api-url http://127.0.0.1:4200/api --modes warm

Every tool runs cold (page cache dropped just before) and then warm (right after its cold run,
so the cache holds what it read). Each fileorg run gets a fresh data folder, so no run reuses
the hashes of an earlier one. fileorg runs against a Prefect server (--api-url, or one this
script starts); one extra warm run without a server is the reference for the CLI's own path.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import common

SOURCES = ["/usr/share", "/usr/lib", "/root/.pyenv/versions"]
STAGES = ["scan", "classify", "prefix", "hash", "plan", "report"]


def build_tree(root: Path, sources: list[str]) -> None:
    root.mkdir(parents=True)
    for src in sources:
        name = src.strip("/").replace("/", "-")
        print(f"copying {src} -> {root / name}", flush=True)
        subprocess.run(["cp", "-a", src, str(root / name)], check=True)
    prune_left_alone(root)


def prune_left_alone(root: Path) -> None:
    """Remove from the copy what fileorg leaves alone on its defaults (__pycache__ and venv
    folders, projects, hidden files): fileorg neither reads nor groups those, jdupes does, so
    on the whole copy the tools would time and group different sets of files (9,777 groups
    against jdupes' 21,237 on this tree). Pruned, both see the same files."""
    from tasks.scan.local import batches

    removed = 0
    for batch in batches(str(root).encode()):
        rows = batch.select(["path", "left_alone"]).to_pylist()
        for row in rows:
            if row["left_alone"] is None:
                continue
            full = os.path.join(os.fsencode(root), row["path"])  # bytes: any name
            if os.path.isdir(full) and not os.path.islink(full):
                shutil.rmtree(full)
            else:
                os.unlink(full)
            removed += 1
    print(f"removed {removed:,} entries fileorg leaves alone", flush=True)


def find_count(root: Path) -> tuple[float, int]:
    started = time.perf_counter()
    out = subprocess.run(
        f"find '{root}' | wc -l", shell=True, capture_output=True, check=True, text=True
    )
    return time.perf_counter() - started, int(out.stdout.strip())


def run_fileorg(
    root: Path, work: Path, label: str, api_url: str | None
) -> tuple[common.Measured, dict[str, Any]]:
    data = work / "dupes-data" / label
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    env = common.fileorg_env(data, api_url)
    if api_url is None:
        # The CLI then starts a temporary server; keep its database out of ~/.prefect.
        env["PREFECT_HOME"] = str(work / "prefect-home-noserver")
    m, op_id = common.organize(root, env)
    return m, common.fileorg_report(op_id, env)


def run_jdupes(root: Path) -> tuple[common.Measured, tuple[int, int]]:
    m = common.run_measured(["jdupes", "-r", "-q", str(root)])
    if m.returncode != 0:
        raise SystemExit(f"jdupes failed ({m.returncode}): {m.stderr[-2000:]}")
    return m, common.jdupes_groups(m.stdout)


def run_rmlint(root: Path, work: Path) -> tuple[common.Measured, tuple[int, int]]:
    # Naming an output (-o) replaces the defaults, so rmlint writes no rmlint.sh/rmlint.json;
    # it runs in an empty folder so that anything it wrote anyway would be noticed.
    cwd = work / "rmlint-cwd"
    shutil.rmtree(cwd, ignore_errors=True)
    cwd.mkdir(parents=True)
    out = work / "rmlint-out.json"
    m = common.run_measured(["rmlint", str(root), "-o", f"json:{out}"], cwd=str(cwd))
    if m.returncode != 0:
        raise SystemExit(f"rmlint failed ({m.returncode}): {m.stderr[-2000:]}")
    leftovers = list(cwd.iterdir())
    if leftovers:
        raise SystemExit(f"rmlint wrote files: {leftovers}")
    groups = common.rmlint_groups(out)
    out.unlink()
    return m, groups


@dataclass
class Tally:
    """What the runs produced: table rows, duplicate groups per tool, and the JSON results."""

    results: dict[str, Any]
    rows: list[list[str]] = field(default_factory=list)
    stage_rows: list[list[str]] = field(default_factory=list)
    groups: dict[str, tuple[int, int]] = field(default_factory=dict)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=common.DEFAULT_WORK / "big")
    parser.add_argument("--work", type=Path, default=common.DEFAULT_WORK)
    parser.add_argument("--sources", nargs="+", default=SOURCES, help="copied to --root if missing")
    parser.add_argument("--api-url", help="a running Prefect server (else one is started)")
    parser.add_argument("--modes", default="cold,warm", help="cold, warm or cold,warm")
    parser.add_argument("--tools", default="fileorg,jdupes,rmlint")
    parser.add_argument("--no-serverless", action="store_true", help="skip the no-server run")
    parser.add_argument("--json-out", type=Path, help="also write the results here")
    parser.add_argument(
        "--prune", action="store_true", help="an existing --root: remove what fileorg leaves alone"
    )
    return parser.parse_args()


def measure_row(label: str, m: common.Measured) -> list[str]:
    return [
        label,
        f"{m.wall_s:.1f}",
        f"{(m.main_maxrss_kb or 0) / 1024:.0f}",
        f"{m.peak_tree_rss_kb / 1024:.0f}",
        f"{m.peak_tree_pss_kb / 1024:.0f}",
        common.human_bytes(m.read_bytes),
    ]


def stage_row(label: str, stages: dict[str, Any]) -> list[str]:
    return [label, *(f"{(stages.get(s) or {}).get('seconds') or 0:.1f}" for s in STAGES)]


def run_tool(tool: str, mode: str, args: argparse.Namespace, api_url: str, tally: Tally) -> None:
    """One run of one tool, its page cache dropped first when cold; adds its rows to tally."""
    if mode == "cold":
        common.drop_caches()
    label = f"{tool} {mode}"
    print(f"running {label} ...", flush=True)
    if tool == "fileorg":
        m, report = run_fileorg(args.root, args.work, mode, api_url)
        tally.groups[tool] = (report["duplicates"]["groups"], report["duplicates"]["files"])
        stages = report["stages"]
        tally.stage_rows.append(stage_row(label, stages))
        tally.results["runs"].append({"label": label, "stages": stages})
    elif tool == "jdupes":
        m, tally.groups[tool] = run_jdupes(args.root)
    else:
        m, tally.groups[tool] = run_rmlint(args.root, args.work)
    tally.rows.append(measure_row(label, m))
    tally.results["runs"].append(
        {
            "label": label,
            "wall_s": m.wall_s,
            "main_maxrss_kb": m.main_maxrss_kb,
            "peak_tree_rss_kb": m.peak_tree_rss_kb,
            "peak_tree_pss_kb": m.peak_tree_pss_kb,
            "read_bytes": m.read_bytes,
            "groups": tally.groups[tool],
        }
    )


def run_serverless(args: argparse.Namespace, tally: Tally) -> None:
    """The reference run: fileorg warm with no Prefect server."""
    print("running fileorg warm, no server ...", flush=True)
    m, report = run_fileorg(args.root, args.work, "noserver", None)
    stages = report["stages"]
    tally.rows.append(measure_row("fileorg warm, no server", m))
    tally.stage_rows.append(stage_row("fileorg warm, no server", stages))
    tally.results["runs"].append(
        {"label": "fileorg noserver", "wall_s": m.wall_s, "stages": stages}
    )


def print_tables(root: Path, files: int, nbytes: int, tally: Tally) -> None:
    common.print_table(
        f"Duplicate finding on {root} ({files:,} files, {common.human_bytes(nbytes)})",
        ["run", "wall s", "main RSS MiB", "tree RSS MiB", "tree PSS MiB", "read from disk"],
        tally.rows,
    )
    if tally.stage_rows:
        common.print_table(
            "fileorg stages (seconds, from fileorg report --json)",
            ["run", *STAGES],
            tally.stage_rows,
        )
    common.print_table(
        "Duplicate groups",
        ["tool", "groups", "files in groups"],
        [[t, g, f] for t, (g, f) in tally.groups.items()],
    )


def groups_mismatch(groups: dict[str, tuple[int, int]]) -> bool:
    """Print whether fileorg and jdupes found as many groups; True when they disagree."""
    if "fileorg" not in groups or "jdupes" not in groups:
        return False
    same = groups["fileorg"][0] == groups["jdupes"][0]
    print(
        f"\nsanity: fileorg {groups['fileorg'][0]} groups vs jdupes {groups['jdupes'][0]}: "
        f"{'OK' if same else 'MISMATCH'}"
    )
    return not same


def main() -> int:
    args = parse_args()
    common.require_tools("jdupes", "rmlint", "find")
    modes = args.modes.split(",")
    tools = args.tools.split(",")

    if not args.root.exists():
        build_tree(args.root, args.sources)
    elif args.prune:
        prune_left_alone(args.root)
    files, nbytes = common.tree_size(args.root)
    print(f"tree {args.root}: {files:,} regular files, {common.human_bytes(nbytes)}", flush=True)

    tally = Tally({"root": str(args.root), "files": files, "bytes": nbytes, "runs": []})
    common.drop_caches()
    find_s, entries = find_count(args.root)
    tally.results["find_cold"] = {"seconds": find_s, "entries": entries}
    print(f"find ROOT | wc -l, cold: {find_s:.1f} s, {entries:,} entries", flush=True)

    with common.prefect_server(args.api_url, args.work / "prefect-home-bench") as api_url:
        for tool in tools:
            for mode in modes:
                run_tool(tool, mode, args, api_url, tally)
    if "fileorg" in tools and not args.no_serverless:
        run_serverless(args, tally)

    print_tables(args.root, files, nbytes, tally)
    failed = groups_mismatch(tally.groups)
    if args.json_out:
        args.json_out.write_text(json.dumps(tally.results, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
