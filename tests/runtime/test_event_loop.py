"""The daemon's and the worker's event loop: asyncio's own by default, uvloop on request."""

from __future__ import annotations

import asyncio

import pytest

from frontdesk.runtime.event_loop import EVENT_LOOP_VARIABLE, use_event_loop


@pytest.fixture
def restore_policy():
    policy = asyncio.get_event_loop_policy()
    yield
    asyncio.set_event_loop_policy(policy)


def test_uvloop_when_asked(restore_policy) -> None:
    uvloop = pytest.importorskip("uvloop")
    assert use_event_loop({EVENT_LOOP_VARIABLE: "uvloop"}) == "uvloop"
    loop = asyncio.new_event_loop()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


@pytest.mark.parametrize("environ", [{}, {EVENT_LOOP_VARIABLE: "asyncio"}])
def test_asyncio_by_default(restore_policy, environ) -> None:
    before = asyncio.get_event_loop_policy()
    assert use_event_loop(environ) == "asyncio"
    assert asyncio.get_event_loop_policy() is before
