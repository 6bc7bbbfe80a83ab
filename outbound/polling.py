"""A background task that runs one step when woken and at least every poll interval.

The delivery loop and the embedded automation runner are both this shape:
a commit wakes them at once, and the poll catches what no wake-up announced
(another process wrote it, or a retry came due).
"""

from __future__ import annotations

import asyncio

import structlog

log = structlog.get_logger(__name__)


class PollingLoop:
    poll_interval: float = 1.0
    name: str = "polling-loop"

    def __init__(self) -> None:
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def step(self) -> None:
        raise NotImplementedError

    def wake(self) -> None:
        self._wake.set()

    async def wake_async(self) -> None:
        """``wake`` as an awaitable, for ``IngestContext.on_commit``-style callback lists."""
        self.wake()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:  # a storage outage must not end the loop; the work stays pending
                log.exception("background_loop_error", loop=self.name)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
