"""The event loop ``frontdesk run`` and ``frontdesk worker`` run on: uvloop when it is installed, asyncio's own otherwise.

uvloop is here because it was measured (docs/benchmarks.md, sections 1
and 3): the edges spend much of their time in socket reads and writes,
which uvloop does in C.  ``FRONTDESK_EVENT_LOOP=asyncio`` keeps asyncio's
loop (debugging, or a platform uvloop does not support); without uvloop
installed the daemon runs on asyncio's loop all the same.  Embedded use
(tests, tools calling ``asyncio.run`` themselves) is not affected.
"""

from __future__ import annotations

import asyncio
import os
from typing import Mapping

EVENT_LOOP_VARIABLE = "FRONTDESK_EVENT_LOOP"


def use_event_loop(environ: Mapping[str, str] = os.environ) -> str:
    """Set the process's event loop policy (before any loop is made); return which loop it is."""
    if environ.get(EVENT_LOOP_VARIABLE, "uvloop").strip().lower() == "asyncio":
        return "asyncio"
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"
