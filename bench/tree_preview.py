"""The resulting-tree preview (storage.previews) alone, on an operation's plan shards.

    .venv/bin/python bench/tree_preview.py DATA_URL OPERATION_ID [--repo CHECKOUT] [--runs 2]

`--repo` imports storage from another checkout: base and new on the same shards, one process
each (run them alternately). Prints each run's seconds, the folders, the peak RSS, the load and
a digest of the tree (equal trees, equal digests).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_url")
    parser.add_argument("operation_id")
    parser.add_argument("--repo", default=None)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--depth", type=int, default=2)
    args = parser.parse_args()
    if args.repo:
        sys.path.insert(0, os.path.abspath(args.repo))
    from storage import previews
    from storage.locations import DataStore

    store = DataStore(args.data_url)
    op_dir = store.operation_dir(args.operation_id)
    seconds = []
    for _ in range(args.runs):
        started = time.perf_counter()
        folders = previews.resulting_tree(store, op_dir, args.depth)
        seconds.append(time.perf_counter() - started)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    digest = hashlib.blake2b(repr(folders).encode(), digest_size=8).hexdigest()
    print(
        f"{previews.__file__}: {' '.join(f'{s:.2f}' for s in seconds)} s, {len(folders)} folders,"
        f" peak RSS {rss:.0f} MiB, load {os.getloadavg()[0]:.1f}, digest {digest}"
    )


if __name__ == "__main__":
    main()
