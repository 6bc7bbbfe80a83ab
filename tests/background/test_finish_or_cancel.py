"""finish_or_cancel: a task that ends within the grace finishes; one that does not is cancelled."""

import asyncio

from frontdesk.background import finish_or_cancel


async def _work(seconds: float, log: list[str]) -> None:
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        log.append("cancelled")
        raise
    log.append("finished")


async def test_a_task_within_its_grace_finishes() -> None:
    log: list[str] = []
    task = asyncio.create_task(_work(0.05, log))
    await finish_or_cancel(task, 5, name="quick")
    assert log == ["finished"] and task.done() and not task.cancelled()


async def test_a_task_past_its_grace_is_cancelled() -> None:
    log: list[str] = []
    task = asyncio.create_task(_work(30, log))
    await asyncio.sleep(0)
    await finish_or_cancel(task, 0.05, name="stuck")
    assert log == ["cancelled"] and task.cancelled()


async def test_no_grace_cancels_at_once() -> None:
    log: list[str] = []
    task = asyncio.create_task(_work(30, log))
    await asyncio.sleep(0)
    await finish_or_cancel(task, 0, name="consumer")
    assert log == ["cancelled"] and task.cancelled()


async def test_a_finished_task_is_left_alone() -> None:
    log: list[str] = []
    task = asyncio.create_task(_work(0, log))
    await task
    await finish_or_cancel(task, 1, name="done")
    await finish_or_cancel(task, 0, name="done")
    assert log == ["finished"] and not task.cancelled()
