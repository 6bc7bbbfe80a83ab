"""The event loop ``frontdesk run`` and ``frontdesk worker`` run on: asyncio's own, or uvloop when asked.

``FRONTDESK_EVENT_LOOP=uvloop`` (with the ``uvloop`` extra installed)
runs them on uvloop.  It is not the default because it did not measurably
help as a whole (docs/benchmarks.md, sections 1 and 3): on a loaded
machine it raised the webhook edge's rate by 13 to 96% in two runs, but
not its ratio to a bare aiohttp server, and the SMTP acceptance run on
it was slower.  Without uvloop installed the setting falls back to
asyncio's loop.  Embedded use (tests, tools calling ``asyncio.run``
themselves) is not affected.
"""

from __future__ import annotations

import asyncio
import os
from typing import Mapping

EVENT_LOOP_VARIABLE = "FRONTDESK_EVENT_LOOP"


def use_event_loop(environ: Mapping[str, str] = os.environ) -> str:
    """Set the process's event loop policy (before any loop is made); return which loop it is."""
    if environ.get(EVENT_LOOP_VARIABLE, "asyncio").strip().lower() != "uvloop":
        return "asyncio"
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"
