"""Write transactions that take turns on SQLite, so concurrent writers never fail with "database is locked".

SQLite allows one writer; a transaction that read before another one
committed cannot upgrade to a write and fails at once, busy timeout or
not.  Every ingest write (pipeline, quarantine, webhook intake and replay)
on one SQLite database therefore opens its transaction with
:func:`write_transaction` (an ORM session) or :func:`write_connection` (a
Core connection, for the intake's hot path), which take the database's turn
within this process first.  PostgreSQL runs them concurrently.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager, nullcontext
from typing import AsyncContextManager, AsyncIterator, Callable, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

T = TypeVar("T")

# (database URL, event loop) -> the lock whose holder may write.
_turns: dict[tuple[str, int], asyncio.Lock] = {}


def _engine_turn(engine: AsyncEngine | None) -> asyncio.Lock | None:
    if engine is None or engine.dialect.name != "sqlite":
        return None
    key = (engine.url.render_as_string(hide_password=False), id(asyncio.get_running_loop()))
    lock = _turns.get(key)
    if lock is None:
        lock = _turns[key] = asyncio.Lock()
    return lock


@asynccontextmanager
async def _in_turn(engine: AsyncEngine | None, begin: Callable[[], AsyncContextManager[T]]) -> AsyncIterator[T]:
    async with _engine_turn(engine) or nullcontext(), begin() as transaction:
        yield transaction


@asynccontextmanager
async def write_transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session in a transaction, holding the database's write turn (none on PostgreSQL); not re-entrant.

    The transaction commits when the block ends and rolls back when it raises.
    """
    async with _in_turn(sessions.kw.get("bind"), sessions.begin) as session:
        yield session


@asynccontextmanager
async def write_connection(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncConnection]:
    """A Core connection in a transaction on the sessions' engine, holding the write turn like :func:`write_transaction`.

    For set-based statements on a hot path, where an ORM session's
    bookkeeping costs more than the statement (the intake's group commit).
    """
    engine: AsyncEngine = sessions.kw["bind"]
    async with _in_turn(engine, engine.begin) as connection:
        yield connection
