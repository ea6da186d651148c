"""The process the object-store crash tests kill: applies or rolls back one operation on a
bucket via tasks.apply, and SIGKILLs itself between a verified copy and its delete.

Run as `python tests/object_crash_worker.py JOB` where JOB is JSON: {"kind": "apply" |
"rollback", "data_url", "op_dir", "root"}. With FILEORG_TEST_KILL_AFTER_COPY=N in its
environment the process kills itself just before its N-th conditional delete: every delete
of a moved object follows its verified, journaled copy, so the kill leaves that copy beside
its source. The hook lives here only (ObjectStore.delete_if_match is wrapped), never in the
production code. FILEORG_PROFILES and FILEORG_DATA_URL come from the test's environment.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from storage.journal import applied_journals
from storage.locations import DataStore
from storage.objects import ObjectStore
from tasks.apply import stage as apply
from tasks.apply.stage import BucketApply


def arm(kill_at: int) -> None:
    """SIGKILL this process just before its kill_at-th delete (counted across threads)."""
    real = ObjectStore.delete_if_match
    lock = threading.Lock()
    calls = 0

    def delete_if_match(self: ObjectStore, key: str, etag: str) -> None:
        nonlocal calls
        with lock:
            calls += 1
            if calls >= kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        real(self, key, etag)

    ObjectStore.delete_if_match = delete_if_match  # type: ignore[method-assign]


def main() -> None:
    job = json.loads(sys.argv[1])
    if os.environ.get("FILEORG_TEST_KILL_AFTER_COPY"):
        arm(int(os.environ["FILEORG_TEST_KILL_AFTER_COPY"]))
    store = DataStore(job["data_url"])
    op_dir, root = job["op_dir"], BucketApply(job["root"])
    if job["kind"] == "apply":
        for shard in range(apply.plan_shards(store, op_dir)):
            apply.apply_shard(store, op_dir, root, "move", shard)
    else:
        for journal in reversed(applied_journals(store, op_dir)):
            apply.rollback_one(store, op_dir, root, journal)


if __name__ == "__main__":
    main()
