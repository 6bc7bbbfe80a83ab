"""Background loops stop gracefully: the step in flight finishes, a stuck one is cancelled."""

import asyncio

from frontdesk.background import PollingLoop


class SlowSender(PollingLoop):
    """Stands for a delivery loop whose step is an SMTP send in progress."""

    poll_interval = 0.01

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.started = asyncio.Event()
        self.completed = 0
        self.cancelled = 0

    async def step(self) -> None:
        self.started.set()
        try:
            await asyncio.sleep(self.seconds)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        self.completed += 1


async def test_stop_lets_the_step_in_flight_finish() -> None:
    loop = SlowSender(0.2)
    await loop.start()
    await loop.started.wait()
    await loop.stop(grace=5)
    assert (loop.completed, loop.cancelled) == (1, 0)


async def test_a_step_that_outlasts_the_grace_period_is_cancelled() -> None:
    loop = SlowSender(30)
    await loop.start()
    await loop.started.wait()
    await loop.stop(grace=0.1)
    assert (loop.completed, loop.cancelled) == (0, 1)


async def test_a_stopped_loop_can_start_again() -> None:
    loop = SlowSender(0)
    await loop.start()
    await loop.stop()
    done = loop.completed
    await loop.start()
    await asyncio.sleep(0.05)
    await loop.stop()
    assert loop.completed > done
