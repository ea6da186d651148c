"""The whole footprint of one `fileorg organize --dry-run` on the README's embedded defaults:
the CLI's process tree AND the background Prefect server's, summed at each sample.

    .venv/bin/python bench/footprint.py /work/bench-data/million
    .venv/bin/python bench/footprint.py /work/bench-data/big --runs 2   # the second reuses

The background server outlives the CLI and is not its child after the first run, so the
CLI's tree alone (bench/measure.py) would leave it out; the issue's memory budget includes it.
A fresh data folder under --work is used unless --keep-data; the server is stopped at the end
(`fileorg stop`), so the first run pays its start.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import common
import measure


def _server_pid(env: dict[str, str]) -> int | None:
    out = subprocess.run(
        [common.FILEORG, "status", "--json"], env=env, capture_output=True, text=True
    )
    pid = json.loads(out.stdout).get("pid") if out.returncode == 0 else None
    return int(pid) if pid else None


def _tree_pss_kb(pid: int) -> int:
    total = 0
    for p in measure._descendants(pid):
        try:
            total += measure._pss_kb(p)
        except OSError:
            continue
    return total


def run_once(root: Path, env: dict[str, str]) -> dict[str, float]:
    started = time.perf_counter()
    cli = subprocess.Popen(
        [common.FILEORG, "organize", str(root), "--dry-run", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    peaks = {"tree": 0, "cli": 0, "server": 0}
    server: list[int | None] = [_server_pid(env)]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            cli_kb = _tree_pss_kb(cli.pid)
            if server[0] is None:
                server[0] = _server_pid(env)
            # A server the CLI started is its child at first: count it once, as the server.
            server_kb = _tree_pss_kb(server[0]) if server[0] else 0
            in_cli = server[0] in measure._descendants(cli.pid) if server[0] else False
            peaks["cli"] = max(peaks["cli"], cli_kb - (server_kb if in_cli else 0))
            peaks["server"] = max(peaks["server"], server_kb)
            peaks["tree"] = max(peaks["tree"], cli_kb + (0 if in_cli else server_kb))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, _ = cli.communicate()
    wall = time.perf_counter() - started
    done.set()
    thread.join()
    if cli.returncode != 0:
        raise SystemExit(f"fileorg organize failed with status {cli.returncode}")
    op = json.loads(out)["operation_id"]
    stages = common.fileorg_report(op, env).get("stages", {})
    row = {"wall_s": round(wall, 2), **{f"{k}_pss_mib": v // 1024 for k, v in peaks.items()}}
    row.update({k: v.get("seconds") for k, v in stages.items()})
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--work", type=Path, default=common.DEFAULT_WORK / "footprint")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    env = common.fileorg_env(args.work, None)  # no PREFECT_API_URL: the embedded defaults
    try:
        for run in range(args.runs):
            for stale in (args.work / "operations",):  # each run plans afresh, reusing nothing
                shutil.rmtree(stale, ignore_errors=True)
            print(json.dumps({"run": run + 1, **run_once(args.root, env)}), flush=True)
    finally:
        subprocess.run([common.FILEORG, "stop"], env=env, capture_output=True)
        if not os.environ.get("KEEP"):
            shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
