"""Write transactions that take turns on SQLite, so concurrent writers never fail with "database is locked".

SQLite allows one writer; a transaction that read before another one
committed cannot upgrade to a write and fails at once, busy timeout or
not.  Every ingest write (pipeline, quarantine, webhook intake and replay)
on one SQLite database therefore opens its transaction with
:func:`write_transaction` (an ORM session), :func:`write_connection` (a
Core connection) or :class:`HeldConnection` (a Core connection kept
between transactions, for the intake's group commit), which take the
database's turn within this process first.  PostgreSQL runs them
concurrently.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager, nullcontext, suppress
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


class HeldConnection:
    """One Core connection a hot writer keeps between its transactions, each holding the write turn.

    Checking a connection out of the pool costs a pre-ping (two round
    trips on PostgreSQL) per transaction; the intake's group commit runs
    one transaction per batch of requests and is on every webhook's and
    mail's path.  A transaction that fails closes the connection, so the
    next one checks a fresh one out (pre-pinged) instead of reusing a
    broken one.
    """

    def __init__(self) -> None:
        self._connection: AsyncConnection | None = None

    @asynccontextmanager
    async def transaction(self, sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncConnection]:
        """A connection to the sessions' engine in a transaction: it commits when the block ends, rolls back when it raises."""
        engine: AsyncEngine = sessions.kw["bind"]
        async with _engine_turn(engine) or nullcontext():
            held = self._connection
            if held is None or held.closed or held.invalidated or held.engine is not engine:
                await self.close()
                self._connection = await engine.connect()
            assert self._connection is not None
            try:
                async with self._connection.begin():
                    yield self._connection
            except BaseException:
                await self.close()
                raise

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with suppress(Exception):  # already broken: nothing more to release
                await connection.close()
