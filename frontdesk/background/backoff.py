"""Capped exponential backoff with jitter, the one formula every retry loop uses."""

from __future__ import annotations

import random
from dataclasses import dataclass

# 2 ** 64 times any sensible base is past every cap; a longer run of
# failures must not overflow the float.
_MAX_DOUBLINGS = 64


@dataclass(frozen=True)
class Backoff:
    """``delay(attempt)`` doubles from ``base`` up to ``cap`` seconds, less a random part.

    ``jitter`` is the share of the delay that is random: 0.5 gives a delay
    between half and all of the ceiling, so processes that failed together
    do not retry in step.
    """

    base: float
    cap: float
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < 0 or not 0 <= self.jitter <= 1:
            raise ValueError(f"invalid backoff: {self}")

    def ceiling(self, attempt: int) -> float:
        """The delay before jitter: ``base`` for attempt 1, doubling, at most ``cap``."""
        doublings = min(max(attempt, 1) - 1, _MAX_DOUBLINGS)
        return min(self.cap, self.base * 2 ** doublings)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after the ``attempt``-th failure (counting from 1)."""
        return self.ceiling(attempt) * (1 - self.jitter * random.random())
