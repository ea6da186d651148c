"""Rollback: undo what an apply journal says was done, newest first, with the same checks.

Each undo is itself an item of the engine (a move back, a folder back, or a restore of a copy
that was replaced by a hard link), journaled in its own file under the same `seq`, so an
interrupted rollback is finished by running it again, and a second rollback does nothing.
Items an interrupted apply announced but never confirmed are settled first, from the real
files or objects, as apply's own resume would settle them. Written once for both backends:
the mover it is handed knows which.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from storage import collector, journal_moves
from storage.errors import StorageError
from storage.journal import PATH_CODEC, Entry, Journal, last_phase, read_journal
from tasks.apply import engine
from tasks.apply.engine import Mover
from tasks.apply.fsops import Identity
from tasks.apply.items import (
    MOVE_DIR,
    RESTORE,
    RESTORE_DIR,
    UNFINISHED,
    Item,
    announced,
    decoded,
)

OUTCOMES = frozenset(("done", "skipped", "failed"))
_tuple = tuple.__new__  # Item(...) and Identity(...) without their keyword-taking __new__


def undo_items(apply_journal: str | list[Entry]) -> list[Item]:
    """Items that undo every done entry of `apply_journal` (its path, or its entries),
    newest first."""
    intents: dict[str, Entry] = {}
    outcome: dict[str, Entry] = {}
    entries = read_journal(apply_journal) if isinstance(apply_journal, str) else apply_journal
    for entry in entries:
        phase = entry["phase"]
        if phase == "intent":
            intents[entry["seq"]] = entry  # a resumed apply announces an item again
        elif phase in OUTCOMES:
            outcome[entry["seq"]] = entry
    items = []
    with collector.paused():  # an item a move, none refers to another
        for seq in reversed(intents):
            done = outcome.get(seq)
            if done is not None and done["phase"] == "done":
                items.append(_undo_move(seq, intents[seq], done) or undo_of(intents[seq], done))
    return items


def sealed_undo(apply_journal: str) -> list[Item] | None:
    """undo_items of a sealed journal (storage.journal_moves), from its moves file: every
    item of it was done by a rename, so nothing is left to settle or to sweep. None where
    the journal is not sealed or the file does not match it: read the journal."""
    rows = journal_moves.sealed_moves(apply_journal)
    if rows is None:
        return None
    try:
        with collector.paused():  # an item a move, none refers to another
            return [
                _tuple(Item, (seq, "move", dst, src, _tuple(Identity, (dev, ino, n, mt)), *_TAIL))
                for seq, src, dst, dev, ino, n, mt in reversed(rows)
            ]
    except (TypeError, ValueError):
        return None


_TAIL = ("", None, None, None, None, True)  # etag, link_to, kept, meta, digest; undo


def _undo_move(seq: str, intent: Entry, done: Entry) -> Item | None:
    """undo_of for a plain local move (its outcome names the inode it has now, no ETag), the
    same item made in half the time: one a move at 200,000 moves. None for any other item."""
    action = intent["action"]
    if action == "hardlink" or "etag" in done or "dev" not in done or "ino" not in done:
        return None
    encoding, errors = PATH_CODEC
    identity = (int(done["dev"] or 0), int(done["ino"] or 0), int(intent["size"]))
    return _tuple(
        Item,
        (
            seq,
            RESTORE_DIR if action == MOVE_DIR else "move",
            intent["dst"].encode(encoding, errors),  # decode_path: where apply put it
            intent["src"].encode(encoding, errors),
            _tuple(Identity, (*identity, int(intent.get("mtime_ns") or 0))),
            "",
            None,
            None,
            None,
            None,
            True,  # undo
        ),
    )


def undo_of(intent: Entry, done: Entry) -> Item:
    """The item that undoes one done item: its source and destination swapped, recognised as
    apply left it (the inode at the destination; for an object, the copy's ETag)."""
    if intent["action"] == "hardlink":
        return _restore_item(intent, done)
    size, mtime_ns = int(intent["size"]), int(intent.get("mtime_ns") or 0)
    dev, ino = done.get("dev", intent.get("dev")), done.get("ino", intent.get("ino"))
    # Positional, as Item's fields: one undo per move, and keywords cost a third more.
    return Item(
        intent["seq"],
        RESTORE_DIR if intent["action"] == MOVE_DIR else "move",
        decoded(intent, "dst"),  # src: where apply put it
        decoded(intent, "src"),
        Identity(int(dev or 0), int(ino or 0), size, mtime_ns),
        str(done.get("etag") or ""),
        None,
        None,
        None,
        None,
        True,  # undo
    )


def _restore_item(intent: Entry, done: Entry) -> Item:
    linked = announced(intent)
    return Item(
        seq=linked.seq,
        action=RESTORE,
        src=linked.src,
        dst=linked.src,
        identity=linked.identity,
        link_to=linked.link_to,
        kept=linked.kept,
        meta={
            "mode": done.get("mode", 0o100644),
            "atime_ns": done.get("atime_ns", 0),
            "mtime_ns": done.get("mtime_ns", intent["mtime_ns"]),
            **{key: done[key] for key in ("uid", "gid") if key in done},
        },
    )


def settle_interrupted(mover: Mover, apply_journal: str, entries: list[Entry] | None = None) -> int:
    """Journal what became of the items an interrupted apply announced but never confirmed,
    decided from the files or objects as its resume would: a rollback may follow a killed
    apply that was never finished, and must undo those moves too. `entries`, the journal as
    read, gets the outcomes journaled here too. Returns how many were settled."""
    entries = read_journal(apply_journal) if entries is None else entries
    unfinished = [e for e in last_phase(entries).values() if e["phase"] in UNFINISHED]
    if not unfinished:
        return 0  # a finished apply's journal: no intents looked up
    intents = {e["seq"]: e for e in entries if e["phase"] == "intent"}
    pending = [(announced(intents[e["seq"]]), e) for e in unfinished if e["seq"] in intents]
    if not pending:
        return 0
    with Journal(apply_journal) as journal, mover.session({}) as session:
        settled = engine.settle(session, pending, journal)
    outcomes = [e for e in settled.values() if e is not None]
    entries += outcomes
    errors = [e for e in outcomes if e["phase"] == "error"]
    if errors:
        # The store could not say what became of an item: undoing the rest and calling the
        # rollback finished would leave that one where apply put it.
        raise StorageError(str(errors[0]["reason"]))
    return len(outcomes)


def rollback_journal(
    mover: Mover,
    apply_journal: str,
    rollback_journal_path: str,
    on_batch: Callable[[Counter[str]], None] = lambda counts: None,
    entries: list[Entry] | None = None,
) -> Counter[str]:
    """Undo one apply journal. `entries`, that journal as read (read here when None), is
    read once for the whole rollback, and gets what settling journaled."""
    entries = read_journal(apply_journal) if entries is None else entries
    settle_interrupted(mover, apply_journal, entries)
    items = undo_items(entries)
    return engine.carry_out(mover, items, rollback_journal_path, on_batch, retry_skipped=True)
