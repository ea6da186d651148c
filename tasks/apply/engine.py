"""The one journaled loop of apply and rollback, over a Mover that knows one backend.

For a journal and its items: settle every item a crash left unfinished (the mover decides
each from the real files or objects), count what is already decided, then carry out the
rest batch by batch. Each batch's intents are durable (one fsync, or one segment object)
before the mover touches anything; the mover journals each outcome after its change is
durable, and that outcome is made durable by the same sync as the next batch's intents (or
when the journal closes): a crash before it leaves items announced, carried out and not
confirmed, which settling decides from the files like any other interrupted item. Safe to
run again after any interruption: a second run redoes nothing done.

The engine is handed its mover (tasks.apply picks it from the root): it knows no backend.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from storage.journal import Entry, Journal, last_phase, read_journal
from storage.locks import pause_for_tests
from tasks.apply.items import UNFINISHED, Item, count_key

Outcome = Entry | BaseException | None  # None: not carried out, to redo


class Mover(Protocol):
    """One backend's changes. Opened (a context) for one journal's run."""

    def session(self, latest: dict[str, Entry]) -> AbstractContextManager[Session]:
        """Open the backend (a root descriptor, a pool of requests) for one run, told what
        the journal already holds (folders made, times recorded)."""
        ...


class Session(Protocol):
    @property
    def batch(self) -> int:
        """Items per journaled batch: a sync (or two) per batch, not per item."""
        ...

    def settle(self, pending: Sequence[tuple[Item, Entry]]) -> list[Outcome]:
        """What became of each interrupted item (its latest entry beside it), from the real
        state: an outcome to journal, None to redo it, or the error that stops the run (raised
        once the other outcomes are journaled)."""
        ...

    def noted(self, item: Item, entry: Entry) -> None:
        """An item already decided before this batch loop (the journal, or settle, says so)."""
        ...

    def announce(self, batch: Sequence[Item], journal: Journal) -> None:
        """Journal what must be durable before the batch acts: its intents, and whatever the
        backend must record first (the times of the folders the batch changes)."""
        ...

    def carry_out(self, batch: Sequence[Item], journal: Journal) -> Counter[str]:
        """Act on the batch, journal each outcome once its change is durable, count them."""
        ...


def settle(
    session: Session, pending: Sequence[tuple[Item, Entry]], journal: Journal
) -> dict[str, Entry | None]:
    """Settle the interrupted items and journal the outcomes; then raise the first error."""
    if not pending:
        # Nothing journaled here: the first batch's sync comes before anything changes (a
        # sync of nothing is a device flush all the same).
        return {}
    results = session.settle(pending)
    for outcome in results:
        if isinstance(outcome, dict):
            journal.add(outcome)
    journal.sync()
    raise_first(results)
    return {
        item.seq: result
        for (item, _), result in zip(pending, results, strict=True)
        if not isinstance(result, BaseException)
    }


def raise_first(results: Sequence[object]) -> None:
    for result in results:
        if isinstance(result, BaseException):
            raise result


def carry_out(
    mover: Mover,
    items: Sequence[Item],
    journal_path: str,
    on_batch: Callable[[Counter[str]], None] = lambda counts: None,
    retry_skipped: bool = False,
) -> Counter[str]:
    """Carry out `items` in order, journaled; safe to call again after any interruption.
    With `retry_skipped` (rollback), items refused last time are tried again."""
    latest = last_phase(read_journal(journal_path))
    counts: Counter[str] = Counter()
    with Journal(journal_path) as journal, mover.session(latest) as session:
        pending = [(i, latest[i.seq]) for i in items if _phase(latest, i) in UNFINISHED]
        settled = settle(session, pending, journal)
        todo: list[Item] = []
        for item in items:
            entry = settled[item.seq] if item.seq in settled else latest.get(item.seq)
            if entry is not None and retry_skipped and entry["phase"] in ("skipped", "failed"):
                entry = None
            if entry is None:
                todo.append(item)  # not carried out yet, or to redo
            else:
                counts[count_key(entry)] += 1
                session.noted(item, entry)
        for start in range(0, len(todo), session.batch):
            batch = todo[start : start + session.batch]
            session.announce(batch, journal)
            # Rule 2: the intents are durable before anything changes (and with them the
            # outcomes of the batch before).
            journal.sync()
            pause_for_tests("announced")  # tests: a batch announced, nothing of it done yet
            batch_counts = session.carry_out(batch, journal)
            counts.update(batch_counts)
            on_batch(batch_counts)
    return counts


def _phase(latest: dict[str, Entry], item: Item) -> str | None:
    entry = latest.get(item.seq)
    return None if entry is None else str(entry["phase"])
