"""RetryingProcessor: retries a failing item, dead-letters it exactly once, and never raises."""

import asyncio

from frontdesk.background import DEAD_LETTERED, HANDLED, Backoff, RetryingProcessor, RetryPolicy
from frontdesk.storage.database import StorageUnavailable

FAST = RetryPolicy(max_attempts=3, backoff=Backoff(base=0.0, cap=0.0))


class Recorder:
    def __init__(self, failures: list[BaseException], dead_letter_failures: int = 0) -> None:
        self.failures = list(failures)
        self.calls = 0
        self.dead_letter_failures = dead_letter_failures
        self.dead_letters: list[tuple[str, str, int]] = []
        self.counts = {"handled": 0, "retry": 0, "dead_lettered": 0}

    async def handle(self, item: str) -> None:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)

    async def dead_letter(self, item: str, error: str, attempts: int) -> None:
        if self.dead_letter_failures:
            self.dead_letter_failures -= 1
            raise StorageUnavailable("dead-letter table is away")
        self.dead_letters.append((item, error, attempts))

    def processor(self) -> RetryingProcessor[str]:
        return RetryingProcessor(
            self.handle, self.dead_letter, name="test", policy=FAST,
            on_handled=lambda: self._count("handled"), on_retry=lambda: self._count("retry"),
            on_dead_lettered=lambda: self._count("dead_lettered"),
        )

    def _count(self, what: str) -> None:
        self.counts[what] += 1


async def test_a_passing_item_is_handled_once() -> None:
    recorder = Recorder([])
    assert await recorder.processor().process("ok") == HANDLED
    assert (recorder.calls, recorder.dead_letters, recorder.counts["handled"]) == (1, [], 1)


async def test_a_flaky_item_is_retried_until_it_passes() -> None:
    recorder = Recorder([RuntimeError("once"), RuntimeError("twice")])
    assert await recorder.processor().process("flaky") == HANDLED
    assert (recorder.calls, recorder.dead_letters) == (3, [])
    assert recorder.counts == {"handled": 1, "retry": 2, "dead_lettered": 0}


async def test_a_poison_item_is_retried_then_dead_lettered_exactly_once_without_raising() -> None:
    recorder = Recorder([ValueError("poison")] * 10)
    assert await recorder.processor().process("poison") == DEAD_LETTERED
    assert recorder.calls == FAST.max_attempts
    assert recorder.dead_letters == [("poison", "ValueError: poison", FAST.max_attempts)]
    assert recorder.counts == {"handled": 0, "retry": FAST.max_attempts - 1, "dead_lettered": 1}


async def test_a_failing_dead_letter_is_retried_not_raised() -> None:
    recorder = Recorder([ValueError("poison")] * 10, dead_letter_failures=2)
    assert await recorder.processor().process("poison") == DEAD_LETTERED
    assert len(recorder.dead_letters) == 1 and recorder.counts["dead_lettered"] == 1


async def test_a_storage_outage_is_waited_out_and_never_dead_letters() -> None:
    recorder = Recorder([StorageUnavailable("down")] * 7)  # more outages than max_attempts
    assert await recorder.processor().process("innocent") == HANDLED
    assert (recorder.calls, recorder.dead_letters, recorder.counts["retry"]) == (8, [], 0)


async def test_a_sync_handler_works_too() -> None:
    seen = []
    processor: RetryingProcessor[int] = RetryingProcessor(seen.append, Recorder([]).dead_letter, name="test",
                                                          policy=FAST)
    assert await processor.process(7) == HANDLED and seen == [7]


async def test_dead_lettering_directly_keeps_the_given_error() -> None:
    recorder = Recorder([])
    await recorder.processor().dead_letter("garbage", "undecodable: nope", attempts=1)
    assert recorder.dead_letters == [("garbage", "undecodable: nope", 1)] and recorder.calls == 0


async def test_cancellation_still_ends_the_processor() -> None:
    started = asyncio.Event()

    async def hang(item: str) -> None:
        started.set()
        await asyncio.sleep(30)

    processor: RetryingProcessor[str] = RetryingProcessor(hang, Recorder([]).dead_letter, name="test", policy=FAST)
    task = asyncio.create_task(processor.process("slow"))
    await started.wait()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    assert task.cancelled()
