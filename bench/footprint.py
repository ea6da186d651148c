"""The whole footprint of one `fileorg organize --dry-run` on the README's embedded defaults:
the CLI's process tree AND the background Prefect server's, summed at each sample.

    .venv/bin/python bench/footprint.py /work/bench-data/million
    .venv/bin/python bench/footprint.py /work/bench-data/big --runs 2   # the second reuses

The background server outlives the CLI and is not its child after the first run, and a warm
run runs in the warm runner's child, not in the CLI's tree: the CLI's tree alone
(bench/measure.py) would leave them out, and the issue's memory budget includes them. Every
process of the data folder is counted (_ours), by its role: run, pool, runner, server.
A fresh data folder under --work is used (whatever it held is removed first); the server is
stopped at the end (`fileorg stop`), so the first run pays its start, and the folder is removed
then, unless KEEP=1 is in the environment (it keeps organize.stderr, the manifests, the logs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import common
import measure

STDERR = "organize.stderr"  # the last run's, in the work folder
TAIL_BYTES = 4000  # what a failure prints of it: a traceback's end


def _ours(work: Path) -> dict[int, tuple[str, int]]:
    """Every process of this data folder, with its role and PSS in KiB: those with
    FILEORG_DATA_URL=work in their environment (the CLI, its pool, the warm runner and the
    child it forks for a run) and those whose command line names a path under it (the
    background server, started with a sanitized environment). The runner is neither the CLI's
    child nor the server's, so a walk of either tree missed it, and the run itself in it."""
    marker = f"FILEORG_DATA_URL={work}".encode()
    found: dict[int, tuple[str, int]] = {}
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{entry.name}/environ").read_bytes().split(b"\0")
            cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ")
            if marker not in environ and str(work).encode() not in cmdline:
                continue
            found[int(entry.name)] = (
                _role(cmdline.decode(errors="replace")),
                measure._pss_kb(int(entry.name)),
            )
            stat = Path(f"/proc/{entry.name}/stat").read_bytes()
            parents[int(entry.name)] = int(stat[stat.rindex(b")") + 2 :].split()[1])
        except OSError:
            continue
    # The warm runner's child (the run itself) keeps the runner's command line: it is the
    # run, told apart by its parent, a runner.
    for pid, (role, kb) in found.items():
        if role == "runner" and found.get(parents.get(pid, 0), ("",))[0] == "runner":
            found[pid] = ("run", kb)
    return found


def _stage(work: Path) -> str:
    """The stage the operation's record names now ("-" before it has one, or after)."""
    for record in (work / "operations").glob("*/operation.json"):
        try:
            return str(json.loads(record.read_text()).get("stage") or "-")
        except (OSError, ValueError):
            continue
    return "-"


def _role(cmdline: str) -> str:
    if "multiprocessing" in cmdline:
        return "pool"
    if "prefect_server" in cmdline or "uvicorn" in cmdline or "prefect server" in cmdline:
        return "server"
    if "flows.cli.runner" in cmdline:
        return "runner"
    return "run"  # the CLI, or the runner's child that runs the command


def run_once(root: Path, env: dict[str, str], work: Path, fileorg: str) -> dict[str, float]:
    started = time.perf_counter()
    # stdout and stderr to files, not pipes: a process left behind holding a pipe would hang
    # the bench. Its stderr is kept in the work folder (this run's: why it failed).
    work.mkdir(parents=True, exist_ok=True)
    err_path = work / STDERR
    with tempfile.TemporaryFile() as out_file, err_path.open("wb") as err_file:
        cli = subprocess.Popen(
            [fileorg, "organize", str(root), "--dry-run", "--json"],
            env=env,
            stdout=out_file,
            stderr=err_file,
        )
        peaks: dict[str, int] = {"tree": 0}
        at_peak: dict[str, int] = {}
        by_stage: dict[str, int] = {}  # the tree's peak in each stage
        runs: dict[str, int] = {}  # the run's own peak in each stage
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.2):
                by_role: dict[str, int] = {}
                for role, kb in _ours(work).values():
                    by_role[role] = by_role.get(role, 0) + kb
                total = sum(by_role.values())
                now = _stage(work)
                by_stage[now] = max(by_stage.get(now, 0), total)
                runs[now] = max(runs.get(now, 0), by_role.get("run", 0))
                if total > peaks["tree"]:
                    peaks["tree"] = total
                    at_peak.clear()
                    at_peak.update(by_role, stage=now)  # type: ignore[arg-type]

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        cli.wait()
        wall = time.perf_counter() - started
        done.set()
        thread.join()
        out_file.seek(0)
        out = out_file.read()
    if cli.returncode != 0:
        raise SystemExit(
            f"fileorg organize failed with status {cli.returncode}; the end of its stderr "
            f"({err_path}, kept with KEEP=1):\n{_tail(err_path)}"
        )
    op = json.loads(out)["operation_id"]
    report = subprocess.run(
        [fileorg, "report", op, "--json"], env=env, capture_output=True, check=True
    )
    stages = json.loads(report.stdout).get("stages", {})
    row: dict[str, float] = {"wall_s": round(wall, 2), "tree_pss_mib": peaks["tree"] // 1024}
    row["stage_at_peak"] = at_peak.pop("stage", "")  # type: ignore[assignment]
    row.update({f"{role}_at_peak_mib": kb // 1024 for role, kb in sorted(at_peak.items())})
    row.update({f"peak_in_{name}_mib": kb // 1024 for name, kb in by_stage.items()})
    row.update({f"run_in_{name}_mib": kb // 1024 for name, kb in runs.items()})
    row.update({k: v.get("seconds") for k, v in stages.items()})
    return row


def _tail(path: Path, size: int = TAIL_BYTES) -> str:
    with path.open("rb") as fh:
        fh.seek(max(0, fh.seek(0, os.SEEK_END) - size))
        return fh.read().decode(errors="replace")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--work", type=Path, default=common.DEFAULT_WORK / "footprint")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--repo", type=Path, help="the checkout whose fileorg runs (default: this one)"
    )
    args = parser.parse_args()
    fileorg = str(args.repo / ".venv/bin/fileorg") if args.repo else common.FILEORG
    if "server" in {role for role, _kb in _ours(args.work).values()}:
        parser.exit(2, f"footprint: a fileorg server of {args.work} is running: stop it first\n")
    shutil.rmtree(args.work, ignore_errors=True)
    env = common.fileorg_env(args.work, None)  # no PREFECT_API_URL: the embedded defaults
    try:
        for run in range(args.runs):
            for stale in (args.work / "operations",):  # each run plans afresh, reusing nothing
                shutil.rmtree(stale, ignore_errors=True)
            print(
                json.dumps({"run": run + 1, **run_once(args.root, env, args.work, fileorg)}),
                flush=True,
            )
    finally:
        subprocess.run([fileorg, "stop"], env=env, capture_output=True)
        if not os.environ.get("KEEP"):
            shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
