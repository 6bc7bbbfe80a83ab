"""A small in-memory sliding-window rate limit per (form, client address).

Per process and forgotten on restart, which is enough to blunt a spam run
against one form; it is not an accounting system.
"""

from __future__ import annotations

import time
from collections import deque

from frontdesk.channels.webhooks.config import RateLimit


class SlidingWindowLimiter:
    def __init__(self, *, max_keys: int = 10_000) -> None:
        self._hits: dict[tuple[str, str], deque[float]] = {}
        self._max_keys = max_keys

    def allow(self, key: tuple[str, str], limit: RateLimit, *, now: float | None = None) -> float | None:
        """Record a hit; return None when allowed, else seconds until the next one would be."""
        current = time.monotonic() if now is None else now
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= self._max_keys:
                self._hits.pop(next(iter(self._hits)))  # forget the oldest client
            hits = self._hits[key] = deque()
        while hits and current - hits[0] >= limit.per_seconds:
            hits.popleft()
        if len(hits) >= limit.requests:
            return max(limit.per_seconds - (current - hits[0]), 0.001)
        hits.append(current)
        return None
