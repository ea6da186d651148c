"""Rollback on an object-store root: the done moves of an apply journal, newest first, back.

Each undo is an object move the other way (copy back without overwriting, verified, then
delete of the moved object only if it is still the copy apply made: its ETag is in the apply
journal), journaled in its own file under the same `seq`, so an interrupted rollback finishes
when run again and a second rollback does nothing. Items an interrupted apply never
confirmed are settled first, from the objects, as apply's own resume would settle them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from storage.journal import Entry, Journal, decode_path, last_phase, read_journal
from storage.objects import ObjectStore
from tasks.apply import UNFINISHED
from tasks.object_apply import ObjectMove, move_items, reconcile


def _path(entry: Entry, key: str) -> bytes:
    value = decode_path(entry.get(key))
    assert value is not None
    return value


def announced(intent: Entry) -> ObjectMove:
    """The item an apply intent describes."""
    return ObjectMove(
        seq=intent["seq"],
        action=intent["action"],
        src=_path(intent, "src"),
        dst=_path(intent, "dst"),
        size=int(intent["size"]),
        etag=str(intent.get("etag") or ""),
        mtime_ns=int(intent.get("mtime_ns") or 0),
        ino=int(intent.get("ino") or 0),
    )


def settle_interrupted(objects: ObjectStore, apply_journal: str) -> int:
    """Journal what became of the items an interrupted apply announced but never confirmed,
    decided from the objects: the rollback must undo those moves too. Returns how many were
    settled."""
    entries = read_journal(apply_journal)
    intents = {e["seq"]: e for e in entries if e["phase"] == "intent"}
    pending = [
        e for e in last_phase(entries).values() if e["phase"] in UNFINISHED and e["seq"] in intents
    ]
    if not pending:
        return 0
    settled = 0
    with Journal(apply_journal) as journal:
        for latest in pending:
            outcome = reconcile(objects, announced(intents[latest["seq"]]), latest)
            if outcome is not None:
                journal.add(outcome)
                settled += 1
    return settled


def undo_items(apply_journal: str) -> list[ObjectMove]:
    """Items that undo every done move of `apply_journal`, newest first."""
    intents: dict[str, Entry] = {}
    outcome: dict[str, Entry] = {}
    for entry in read_journal(apply_journal):
        if entry["phase"] == "intent":
            intents.setdefault(entry["seq"], entry)
        elif entry["phase"] in ("done", "skipped", "failed"):
            outcome[entry["seq"]] = entry
    items = []
    for seq in reversed(list(intents)):
        done = outcome.get(seq)
        if done is None or done["phase"] != "done":
            continue
        moved = announced(intents[seq])
        items.append(
            ObjectMove(
                seq=seq,
                action="undo",
                src=moved.dst,
                dst=moved.src,
                size=moved.size,
                etag=str(done["etag"]),
                mtime_ns=moved.mtime_ns,
                ino=moved.ino,
            )
        )
    return items


def rollback_journal(
    objects: ObjectStore,
    apply_journal: str,
    rollback_journal_path: str,
    on_batch: Callable[[Counter[str]], None] = lambda counts: None,
) -> Counter[str]:
    settle_interrupted(objects, apply_journal)
    return move_items(
        objects, undo_items(apply_journal), rollback_journal_path, on_batch, retry_skipped=True
    )
