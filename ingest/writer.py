"""Write transactions that take turns on SQLite, so concurrent ingest never fails with "database is locked".

SQLite allows one writer; a transaction that read before another one
committed cannot upgrade to a write and fails at once, busy timeout or
not.  Every ingest write (pipeline, quarantine, webhook intake) on one
SQLite database therefore takes its turn within this process.
PostgreSQL runs them concurrently.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import AsyncIterator

from frontdesk.ingest.context import IngestContext

_turns: dict[tuple[str, int], asyncio.Lock] = {}


@asynccontextmanager
async def writer_turn(ctx: IngestContext) -> AsyncIterator[None]:
    """Hold the database's write turn (a no-op on PostgreSQL); not re-entrant."""
    if not ctx.settings.is_sqlite:
        yield
        return
    key = (ctx.settings.database_url, id(asyncio.get_running_loop()))
    lock = _turns.get(key)
    if lock is None:
        lock = _turns[key] = asyncio.Lock()
    async with lock:
        yield
