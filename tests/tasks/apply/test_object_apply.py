"""Apply and rollback on a bucket (moto's S3 server), over hand-built scan and plan shards.

The crash states a killed apply leaves (intent only; copy made but not journaled; copy
journaled but source not deleted; source deleted but outcome not journaled) are prepared by
hand, then resumed or rolled back. The last tests kill a real process (tests/
object_crash_worker.py) between a verified copy and its delete.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3
import pyarrow as pa
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from storage import manifests
from storage.errors import StorageError
from storage.journal import (
    Journal,
    SegmentJournal,
    applied_journals,
    apply_journal,
    journal_dir,
    last_phase,
    read_journal,
)
from storage.locations import DataStore
from storage.objects import ObjectStore, parse_object_url
from storage.operations import PlanOptions
from tasks.apply.items import Item, items_from_plan
from tasks.apply.objects import bucket_plan_rows, kept_intact
from tests.apply_helpers import apply_all, plan_tree, rollback_all
from tests.conftest import S3Env
from tests.trees import snapshot, without_dir_inodes

BUCKET = "photos-bucket"
ROOT = f"s3://{BUCKET}/inbox"
WORKER = Path(__file__).resolve().parents[2] / "object_crash_worker.py"

ORIGINAL = {
    "a.jpg": b"alpha",
    "sub dir/b.jpg": b"bravo",
    "deep/er/caf\u00e9 \u2603.txt": b"charlie",
    "empty.txt": b"",
    "copy of a.jpg": b"alpha",
}
MOVES = {
    "a.jpg": ("Photos/2024/a.jpg", "move"),
    "sub dir/b.jpg": ("Photos/2024/b.jpg", "move"),
    "deep/er/caf\u00e9 \u2603.txt": ("Documents/caf\u00e9 \u2603.txt", "move"),
    "empty.txt": ("Documents/empty.txt", "move"),
    "copy of a.jpg": (".duplicates/copy of a.jpg", "quarantine"),
}


@dataclass
class Op:
    """A planned operation on the bucket, its data folder and the objects as they began."""

    s3: S3Env
    store: DataStore
    op_dir: str
    objects: ObjectStore

    def apply(self) -> Counter[str]:
        return apply_all(self.store, self.op_dir, ROOT)

    def rollback(self) -> Counter[str]:
        return rollback_all(self.store, self.op_dir, ROOT)

    def journal(self) -> str:
        return apply_journal(self.store, self.op_dir, "move", 0)

    def items(self) -> list[Item]:
        return items_from_plan(bucket_plan_rows(self.store, self.op_dir, 0), "move", 0, {})

    def item(self, src: str) -> Item:
        (found,) = [i for i in self.items() if i.src == src.encode()]
        return found

    def put(self, rel: str, data: bytes) -> str:
        answer = self.s3.client().put_object(Bucket=BUCKET, Key=f"inbox/{rel}", Body=data)
        return str(answer["ETag"]).strip('"')

    def delete(self, rel: str) -> None:
        self.s3.client().delete_object(Bucket=BUCKET, Key=f"inbox/{rel}")


def bucket(s3: S3Env) -> dict[str, tuple[bytes, str]]:
    """Every key of the bucket but the data folder's: content and ETag."""
    client = s3.client()
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for obj in page.get("Contents", []):
            if obj["Key"].startswith("fileorg/"):
                continue
            body = client.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
            found[obj["Key"]] = (body, obj["ETag"].strip('"'))
    return found


def contents(s3: S3Env) -> dict[str, bytes]:
    return {key: body for key, (body, _) in bucket(s3).items()}


def moved(rels: dict[str, bytes], moves: dict[str, tuple[str, str]]) -> dict[str, bytes]:
    return {f"inbox/{moves[rel][0] if rel in moves else rel}": data for rel, data in rels.items()}


def build(
    s3: S3Env,
    store: DataStore,
    files: dict[str, bytes] = ORIGINAL,
    moves: dict[str, tuple[str, str]] = MOVES,
) -> Op:
    """Objects under the root, a scan shard as the scan would write it, a plan shard."""
    op_dir = store.operation_dir(str(uuid.uuid4()))
    objects = ObjectStore(parse_object_url(ROOT))
    op = Op(s3, store, op_dir, objects)
    scan, plan = [], []
    for n, (rel, data) in enumerate(files.items()):
        etag = op.put(rel, data)
        info = objects.head(f"inbox/{rel}")
        assert info is not None
        path = rel.encode()
        scan.append(
            {
                "path": path,
                "path_text": rel,
                "kind": "file",
                "size": len(data),
                "mtime_ns": info.mtime_ns,
                "dev": 0,
                "ino": 1000 + n,
                "nlink": 1,
                "mode": 0o100644,
                "etag": etag,
            }
        )
        dst, action = moves.get(rel, (None, "keep"))
        plan.append(
            {
                "src": path,
                "dst": dst.encode() if dst else None,
                "action": action,
                "reason": "test",
                "size": len(data),
                "mtime_ns": info.mtime_ns,
                "dev": 0,
                "ino": 1000 + n,
            }
        )
    manifests.write_table(
        store,
        manifests.shard_path(op_dir, "scan", 0),
        pa.Table.from_pylist(scan, schema=manifests.SCAN),
    )
    manifests.write_table(
        store,
        manifests.shard_path(op_dir, "plan", 0),
        pa.Table.from_pylist(plan, schema=manifests.PLAN),
    )
    return op


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, s3: S3Env, tmp_path: Path) -> DataStore:
    """The data folder (manifests and journals): on local disk, or in the bucket itself."""
    s3.bucket(BUCKET)
    if request.param == "local":
        return DataStore(str(tmp_path / "data"))
    return DataStore(f"s3://{BUCKET}/fileorg")


@pytest.fixture
def op(s3: S3Env, tmp_path: Path) -> Op:
    s3.bucket(BUCKET)
    return build(s3, DataStore(f"s3://{BUCKET}/fileorg"))


def test_apply_moves_and_quarantines_and_rollback_restores_keys_contents_and_etags(
    s3: S3Env, store: DataStore
) -> None:
    op = build(s3, store)
    before = bucket(s3)

    applied = op.apply()
    during = contents(s3)
    phases = [(e["seq"], e["phase"]) for e in read_journal(op.journal())]
    undone = op.rollback()

    assert applied == Counter(done=5)
    assert during == moved(ORIGINAL, MOVES)
    assert phases[:5] == [(f"move-0-{i}", "intent") for i in range(5)]
    assert [p for s, p in phases if s == "move-0-0"] == ["intent", "copied", "done"]
    assert undone == Counter(done=5)
    assert bucket(s3) == before


def test_a_destination_somebody_else_wrote_is_never_overwritten(op: Op) -> None:
    op.put("Photos/2024/a.jpg", b"theirs")

    counts = op.apply()

    assert counts == Counter(done=4, conflicts=1)
    assert contents(op.s3)["inbox/a.jpg"] == b"alpha"
    assert contents(op.s3)["inbox/Photos/2024/a.jpg"] == b"theirs"


def test_changed_and_vanished_sources_are_skipped(op: Op) -> None:
    op.put("a.jpg", b"rewritten")
    op.delete("sub dir/b.jpg")

    counts = op.apply()
    after = contents(op.s3)

    assert counts == Counter(done=3, changed=1, vanished=1)
    assert after["inbox/a.jpg"] == b"rewritten"
    assert "inbox/Photos/2024/a.jpg" not in after
    assert "inbox/Photos/2024/b.jpg" not in after


def test_a_second_apply_changes_nothing_and_counts_the_same(op: Op) -> None:
    first = op.apply()
    after_first = bucket(op.s3)
    entries = len(read_journal(op.journal()))

    second = op.apply()

    assert first == second == Counter(done=5)
    assert bucket(op.s3) == after_first
    assert len(read_journal(op.journal())) == entries


def announce(op: Op, src: str, copied_etag: str | None = None) -> None:
    """The journal of an apply killed after announcing `src` (and journaling its copy)."""
    item = op.item(src)
    with Journal(op.journal()) as journal:
        journal.add(item.intent())
        if copied_etag is not None:
            journal.add({"seq": item.seq, "phase": "copied", "etag": copied_etag, "size": 5})


def killed_after_intent(op: Op) -> None:
    announce(op, "a.jpg")


def killed_after_unjournaled_copy(op: Op) -> None:
    announce(op, "a.jpg")
    op.put("Photos/2024/a.jpg", b"alpha")


def killed_after_journaled_copy(op: Op) -> None:
    announce(op, "a.jpg", op.put("Photos/2024/a.jpg", b"alpha"))


def killed_after_delete(op: Op) -> None:
    announce(op, "a.jpg", op.put("Photos/2024/a.jpg", b"alpha"))
    op.delete("a.jpg")


@pytest.mark.parametrize(
    "crash",
    [
        killed_after_intent,
        killed_after_unjournaled_copy,
        killed_after_journaled_copy,
        killed_after_delete,
    ],
)
def test_resume_after_a_crash_finishes_every_move_once(op: Op, crash: Callable[[Op], None]) -> None:
    crash(op)

    counts = op.apply()
    latest = last_phase(read_journal(op.journal()))

    assert counts == Counter(done=5)
    assert contents(op.s3) == moved(ORIGINAL, MOVES)
    assert latest["move-0-0"]["phase"] == "done"


@pytest.mark.parametrize(
    "crash",
    [
        killed_after_intent,
        killed_after_unjournaled_copy,
        killed_after_journaled_copy,
        killed_after_delete,
    ],
)
def test_rollback_after_a_crash_gives_back_exactly_the_original_keys(
    op: Op, crash: Callable[[Op], None]
) -> None:
    before = bucket(op.s3)
    crash(op)

    counts = op.rollback()

    assert bucket(op.s3) == before
    assert counts == (Counter() if crash is killed_after_intent else Counter(done=1))


def test_resume_leaves_a_destination_written_by_somebody_else_beside_the_source(op: Op) -> None:
    announce(op, "a.jpg")
    op.put("Photos/2024/a.jpg", b"other")  # same size as the source, other content

    counts = op.apply()

    assert counts == Counter(done=4, conflicts=1)
    assert contents(op.s3)["inbox/a.jpg"] == b"alpha"
    assert contents(op.s3)["inbox/Photos/2024/a.jpg"] == b"other"


def test_resume_with_both_keys_gone_reports_an_error(op: Op) -> None:
    announce(op, "a.jpg")
    op.delete("a.jpg")

    counts = op.apply()

    assert counts == Counter(done=4, errors=1)


def test_rollback_keeps_a_destination_changed_after_apply_and_says_so(op: Op) -> None:
    op.apply()
    op.put("Photos/2024/a.jpg", b"edited after apply")

    counts = op.rollback()
    after = contents(op.s3)

    assert counts == Counter(done=4, changed=1)
    assert after["inbox/Photos/2024/a.jpg"] == b"edited after apply"
    assert "inbox/a.jpg" not in after
    assert after["inbox/sub dir/b.jpg"] == b"bravo"


def test_rollback_refuses_to_overwrite_an_original_key_taken_again(op: Op) -> None:
    op.apply()
    op.put("a.jpg", b"new object")

    first = op.rollback()
    op.delete("a.jpg")
    second = op.rollback()  # the conflict is gone: the refused item is tried again

    assert first == Counter(done=4, conflicts=1)
    assert second == Counter(done=5)
    assert contents(op.s3) == moved(ORIGINAL, {})


def store_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "no"}}, "DeleteObject")


def test_a_store_error_is_one_item_error_and_the_next_run_finishes_it(
    op: Op, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = ObjectStore.delete_if_match

    def denied(self: ObjectStore, key: str, etag: str) -> None:
        if key == "inbox/a.jpg":
            raise PermissionError("denied") from store_error("AccessDenied")
        real(self, key, etag)

    with monkeypatch.context() as mp:
        mp.setattr(ObjectStore, "delete_if_match", denied)
        first = op.apply()
    errors = [e for e in read_journal(op.journal()) if e["phase"] == "error"]
    second = op.apply()

    assert first == Counter(done=4, errors=1)
    assert [e["reason"] for e in errors] == [
        "a.jpg -> Photos/2024/a.jpg: access denied (check the storage profile's credentials)"
    ]
    assert second == Counter(done=5)
    assert contents(op.s3) == moved(ORIGINAL, MOVES)


def test_an_unreachable_store_fails_the_task_and_a_retry_resumes(
    op: Op, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(self: ObjectStore, *args: Any) -> None:
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9")

    with monkeypatch.context() as mp:
        mp.setattr(ObjectStore, "copy_if_absent", unreachable)
        with pytest.raises(StorageError, match="unreachable"):
            op.apply()
    resumed = op.apply()

    assert resumed == Counter(done=5)
    assert contents(op.s3) == moved(ORIGINAL, MOVES)


def test_segment_journal_writes_one_new_object_per_sync(s3: S3Env) -> None:
    s3.bucket(BUCKET)
    path = f"s3://{BUCKET}/fileorg/journal/move-00000.jsonl"
    with Journal(path) as journal:
        assert isinstance(journal, SegmentJournal)
        journal.add({"seq": "1", "phase": "intent"})
        journal.sync()
        journal.sync()  # nothing new: no segment
        journal.add({"seq": "1", "phase": "done"})
    with Journal(path) as journal:
        journal.add({"seq": "2", "phase": "intent"})
    keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket=BUCKET)["Contents"]]

    assert [(e["seq"], e["phase"]) for e in read_journal(path)] == [
        ("1", "intent"),
        ("1", "done"),
        ("2", "intent"),
    ]
    assert keys == [f"fileorg/journal/move-00000.jsonl.d/0000000{n}.jsonl" for n in range(3)]
    assert read_journal(f"s3://{BUCKET}/fileorg/journal/none.jsonl") == []


def test_a_local_root_applies_and_rolls_back_with_its_journal_in_a_bucket(
    s3: S3Env, tmp_path: Path
) -> None:
    s3.bucket(BUCKET)
    store = DataStore(f"s3://{BUCKET}/fileorg")
    root = tmp_path / "root"
    for rel, data in ORIGINAL.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    before = snapshot(root)
    op_id = str(uuid.uuid4())
    plan_tree(store, op_id, root, PlanOptions(mode="category", duplicates="quarantine"))
    op_dir = store.operation_dir(op_id)

    applied = apply_all(store, op_dir, root)
    journals = applied_journals(store, op_dir)
    undone = rollback_all(store, op_dir, root)

    assert applied == Counter(done=5)
    assert journals == [f"s3://{BUCKET}/fileorg/operations/{op_id}/journal/apply/move-00000.jsonl"]
    assert undone == Counter(done=5)
    # The folders apply emptied (their removal journaled in the bucket too) come back.
    assert without_dir_inodes(snapshot(root)) == without_dir_inodes(before)
    assert any(e.kind == "dir" and snapshot(root)[p].ino != e.ino for p, e in before.items())


# -- a real process killed between a verified copy and its delete --------------------------


def run_worker(op: Op, kind: str, kill_after_copy: int | None) -> int:
    """Run apply or rollback in tests/object_crash_worker.py; returns its exit status."""
    job = {"kind": kind, "data_url": op.store.url, "op_dir": op.op_dir, "root": ROOT}
    env = dict(os.environ)
    if kill_after_copy is not None:
        env["FILEORG_TEST_KILL_AFTER_COPY"] = str(kill_after_copy)
    done = subprocess.run(
        [sys.executable, str(WORKER), json.dumps(job)],
        env=env,
        capture_output=True,
        timeout=120,
    )
    expected = 0 if kill_after_copy is None else -signal.SIGKILL
    assert done.returncode == expected, done.stderr.decode()
    return done.returncode


@pytest.mark.parametrize("kill_after_copy", [3])
def test_apply_killed_between_copy_and_delete_resumes_or_rolls_back(
    s3: S3Env, kill_after_copy: int
) -> None:
    s3.bucket(BUCKET)
    store = DataStore(f"s3://{BUCKET}/fileorg")
    op = build(s3, store)
    before = bucket(s3)

    status = run_worker(op, "apply", kill_after_copy)
    killed = contents(s3)
    resumed = op.apply()
    resumed_contents = contents(s3)
    undone = op.rollback()

    assert status == -signal.SIGKILL
    # Killed with a verified copy beside its source: both keys are there, nothing is lost.
    assert len(killed) > len(ORIGINAL)
    assert sorted(set(killed.values())) == sorted(set(ORIGINAL.values()))
    assert resumed == Counter(done=5)
    assert resumed_contents == moved(ORIGINAL, MOVES)
    assert undone == Counter(done=5)
    assert bucket(s3) == before


def test_rollback_right_after_a_killed_apply_gives_back_the_original_keys(s3: S3Env) -> None:
    s3.bucket(BUCKET)
    op = build(s3, DataStore(f"s3://{BUCKET}/fileorg"))
    before = bucket(s3)

    status = run_worker(op, "apply", 2)
    undone = op.rollback()

    assert status == -signal.SIGKILL
    # The batch (all five) was copied before its first delete: whichever deletes the kill
    # let through, every item has a copy to take back.
    assert undone == Counter(done=5)
    assert bucket(s3) == before


def test_rollback_killed_between_copy_and_delete_finishes_when_run_again(s3: S3Env) -> None:
    s3.bucket(BUCKET)
    op = build(s3, DataStore(f"s3://{BUCKET}/fileorg"))
    before = bucket(s3)
    op.apply()

    status = run_worker(op, "rollback", 2)
    killed = contents(s3)
    undone = op.rollback()

    assert status == -signal.SIGKILL
    assert len(killed) > len(ORIGINAL)
    assert undone == Counter(done=5)
    assert bucket(s3) == before


def test_a_data_folder_that_cannot_hold_journals_is_refused_in_one_line() -> None:
    store = DataStore(f"memory://fileorg-{uuid.uuid4().hex}")

    with pytest.raises(StorageError) as info:
        journal_dir(store, store.operation_dir(str(uuid.uuid4())))

    assert "FILEORG_DATA_URL" in str(info.value) and "\n" not in str(info.value)


def test_a_kept_object_this_apply_moved_is_recognised_at_its_new_key(s3: S3Env) -> None:
    """Where the kept copy was moved by an earlier batch, its new key holds a copy whose ETag
    may differ from the scanned one (multipart, SSE-KMS): its size and content decide."""
    s3.bucket(BUCKET)
    s3.client().put_object(Bucket=BUCKET, Key="inbox/Photos/a.jpg", Body=b"alpha")
    objects = ObjectStore(parse_object_url(ROOT))
    kept = {
        "etag": "the-scanned-etag-1",
        "size": 5,
        "digest": blake3.blake3(b"alpha").digest(),
        "paths": (b"a.jpg", b"Photos/a.jpg"),
    }

    assert kept_intact(objects, kept)
    assert not kept_intact(objects, {**kept, "digest": blake3.blake3(b"other").digest()})
    assert not kept_intact(objects, {**kept, "size": 6})
    assert not kept_intact(objects, {**kept, "paths": (b"a.jpg", b"Photos/gone.jpg")})
