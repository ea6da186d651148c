"""Attempts per key in a sliding window, in process memory (one API process per limiter).

Keys are namespaced ("login:account:alice", "signup:address:10.0.0.1"); a key that is over
its limit gets 429 with a Retry-After.
"""

from __future__ import annotations

import time
from collections import deque

MAX_KEYS = 100_000


class RateLimiter:
    def __init__(self, window_seconds: float) -> None:
        self.window = window_seconds
        self._hits: dict[str, deque[float]] = {}

    def hit(self, key: str, limit: int) -> float | None:
        """Count one attempt; None when allowed, else the seconds until the next is."""
        now = time.monotonic()
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= MAX_KEYS:
                self._prune(now)
            hits = self._hits[key] = deque()
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= limit:
            return max(0.0, hits[0] + self.window - now)
        hits.append(now)
        return None

    def _prune(self, now: float) -> None:
        for key in [k for k, v in self._hits.items() if not v or v[-1] <= now - self.window]:
            del self._hits[key]
