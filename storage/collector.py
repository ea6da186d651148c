"""Python's cyclic garbage collector paused while a block makes many objects and no cycles.

Reading a journal of 20,000 moves makes 40,000 entries (dicts) and rollback 20,000 items
(named tuples); apply makes its items from a plan shard's columns. Each allocation counts
towards the collector's next pass, and every pass walks the young objects, the older
generations every tenth and hundredth: about a fifth to a third of that reading's time on a
rollback's heap, more on a flow's (Prefect imported), for objects that only ever refer
down. Nothing in these blocks makes a cycle, so pausing frees nothing later than it would
have been freed; the collector is on again as the block ends, unless it was off before.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused() -> Iterator[None]:
    """Collection off for the block (left off if it was off: a caller's choice is kept)."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()
