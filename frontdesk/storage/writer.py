"""Write transactions that take turns on SQLite, so concurrent writers never fail with "database is locked".

SQLite allows one writer; a transaction that read before another one
committed cannot upgrade to a write and fails at once, busy timeout or
not.  Every ingest write (pipeline, quarantine, webhook intake and replay)
on one SQLite database therefore opens its transaction with
:func:`write_transaction`, which takes the database's turn within this
process first.  PostgreSQL runs them concurrently.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

# (database URL, event loop) -> the lock whose holder may write.
_turns: dict[tuple[str, int], asyncio.Lock] = {}


def _turn_for(sessions: async_sessionmaker[AsyncSession]) -> asyncio.Lock | None:
    engine = sessions.kw.get("bind")
    if engine is None or engine.dialect.name != "sqlite":
        return None
    key = (engine.url.render_as_string(hide_password=False), id(asyncio.get_running_loop()))
    lock = _turns.get(key)
    if lock is None:
        lock = _turns[key] = asyncio.Lock()
    return lock


@asynccontextmanager
async def write_transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session in a transaction, holding the database's write turn (none on PostgreSQL); not re-entrant.

    The transaction commits when the block ends and rolls back when it raises.
    """
    turn = _turn_for(sessions)
    if turn is None:
        async with sessions.begin() as session:
            yield session
        return
    async with turn, sessions.begin() as session:
        yield session
