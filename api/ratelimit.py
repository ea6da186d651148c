"""Attempts per key in a sliding window, in process memory (one API process per limiter).

Keys are namespaced ("login:account:<user id>", "signup:address:10.0.0.1"); each key has its
own window (a minute for logins, an hour for signups); a key that is over its limit gets 429
with a Retry-After.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from api.errors import TooManyRequests

MAX_KEYS = 100_000


class RateLimiter:
    def __init__(self, window_seconds: float) -> None:
        self.window = window_seconds  # for hits that do not name their own
        self._hits: dict[str, tuple[float, deque[float]]] = {}

    def hit(self, key: str, limit: int, window: float | None = None) -> float | None:
        """Count one attempt; None when allowed, else the seconds until the next is."""
        now = time.monotonic()
        span = self.window if window is None else window
        found = self._hits.get(key)
        if found is None:
            if len(self._hits) >= MAX_KEYS:
                self._prune(now)
            found = self._hits[key] = (span, deque())
        hits = found[1]
        while hits and hits[0] <= now - span:
            hits.popleft()
        if len(hits) >= limit:
            return max(0.0, hits[0] + span - now)
        hits.append(now)
        return None

    def _prune(self, now: float) -> None:
        stale = [k for k, (span, v) in self._hits.items() if not v or v[-1] <= now - span]
        for key in stale:
            del self._hits[key]


@dataclass(frozen=True)
class Attempts:
    """One client's attempts (by its address) on the process's limiter (api.deps.AttemptsDep)."""

    limiter: RateLimiter
    address: str

    def count(self, key: str, limit: int, window: float) -> None:
        """Count one attempt on `key`; 429 with a Retry-After once it is over `limit`."""
        wait = self.limiter.hit(key, limit, window)
        if wait is not None:
            raise TooManyRequests(wait)
