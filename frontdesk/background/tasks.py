"""Stopping background tasks: let the work in flight finish, cancel only what outlasts the grace.

:class:`PollingLoop` is the shape of the delivery loop and the embedded
automation runner: a commit wakes it at once, and a poll catches what no
wake-up announced (another process wrote it, or a retry came due).
"""

from __future__ import annotations

import asyncio

import structlog

log = structlog.get_logger(__name__)


async def finish_or_cancel(task: asyncio.Task[None], grace: float, *, name: str) -> None:
    """Wait up to ``grace`` seconds for ``task`` to end by itself; cancel it after that.

    ``grace <= 0`` cancels at once: for tasks that never end by themselves
    (a queue consumer) and hold no work worth finishing.
    """
    if grace <= 0:
        task.cancel()
    else:
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=grace)
            return
        except asyncio.TimeoutError:
            log.warning("background_task_cancelled", task=name, grace=grace)
            task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass


class PollingLoop:
    """A background task that runs :meth:`step` when woken and at least every ``poll_interval``."""

    poll_interval: float = 1.0
    name: str = "polling-loop"

    def __init__(self) -> None:
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def stopping(self) -> bool:
        """True once ``stop`` was called: long steps check it between items and return early."""
        return self._stopping

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

    async def stop(self, grace: float = 10.0) -> None:
        """Let the step in progress finish (up to ``grace`` seconds), then end the loop.

        Cancelling a step halfway could cut a send between the smarthost's
        "accepted" and our record of it, so the mail would go out again after
        a restart; a step is only cancelled when it outlasts the grace period.
        """
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await finish_or_cancel(task, grace, name=self.name)
        finally:
            self._stopping = False

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:  # a storage outage must not end the loop; the work stays pending
                log.exception("background_loop_error", loop=self.name)
            if self._stopping:
                return
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
