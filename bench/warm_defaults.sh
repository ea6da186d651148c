#!/bin/bash
# Warm, on the README's embedded defaults: `jdupes -r -q ROOT` against
# `fileorg organize ROOT --dry-run` with the background Prefect server and warm runner a
# warm-up run started (two, in a fresh HOME, so a fresh data folder). Before each timed fileorg run
# the data folder's operations are removed, so no digest of an earlier run is reused (that is
# bench/rescan.py's measure) while the server and runner stay up. Prints each run's wall
# seconds, the load average after it and fileorg's per-stage seconds.
#
#   bench/warm_defaults.sh ROOT [CHECKOUT] [REPETITIONS]     # CHECKOUT: its .venv/bin/fileorg
set -u
ROOT=$1
REPO=${2:-$(cd "$(dirname "$0")/.." && pwd)}
REPS=${3:-2}
unset PYTHONDONTWRITEBYTECODE PREFECT_API_URL FILEORG_DATA_URL
export HOME=${BENCH_HOME:-/tmp/fileorg-warm-home-$(basename "$REPO")}
rm -rf "$HOME" && mkdir -p "$HOME"
FILEORG=$REPO/.venv/bin/fileorg
OPS=$HOME/.local/share/fileorg/operations
OUT=$(mktemp -d)
trap '"$FILEORG" stop --force >/dev/null 2>&1; rm -rf "$OUT"' EXIT
load() { cut -d' ' -f1 /proc/loadavg; }
seconds() { python3 -c "import sys, time; t = time.perf_counter(); import subprocess; \
r = subprocess.run(sys.argv[2:], stdout=open(sys.argv[1], 'wb'), stderr=subprocess.DEVNULL); \
print(f'{time.perf_counter() - t:.2f} rc={r.returncode}')" "$@"; }
# Two warm-up runs: the first starts the server and the runner, the second is the runner's
# first (at load 3 it took 2-3x a later run's time, on a 10-file folder as on 2,400 files).
for _ in 1 2; do
  "$FILEORG" organize "$ROOT" --dry-run >/dev/null 2>&1 || { echo "warm-up run failed"; exit 1; }
  rm -rf "${OPS:?}"/*
done
for i in $(seq 1 "$REPS"); do
  echo "jdupes  $(seconds "$OUT/jdupes" jdupes -r -q "$ROOT") s, load $(load)"
  rm -rf "${OPS:?}"/*
  took=$(seconds "$OUT/fileorg.json" "$FILEORG" organize "$ROOT" --dry-run --json)
  stages=$(python3 -c "import json, sys; r = json.load(open(sys.argv[1]))['report']; \
print(' '.join(f\"{k} {v.get('seconds') or 0:.1f}\" for k, v in r['stages'].items()))" "$OUT/fileorg.json")
  echo "fileorg $took s, load $(load): $stages"
done
