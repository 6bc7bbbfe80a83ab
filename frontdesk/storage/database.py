"""The async engine and session factory, for SQLite (embedded) and PostgreSQL.

Also the one place that decides which low-level errors mean "storage is
down": channels translate :class:`StorageUnavailable` into a retryable
protocol answer (SMTP 451, HTTP 503) instead of losing the message.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import orjson
from sqlalchemy import event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


class StorageUnavailable(RuntimeError):
    """The database or blob store cannot take writes right now; retry later."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (the API) run while the ingest path writes; NORMAL
    # sync is still durable across process crashes in WAL mode, but we keep
    # FULL so a power cut cannot take a message we already answered 250 for.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def dumps_json(value: Any) -> str:
    """JSON columns' encoder: orjson, about ten times faster than ``json``, which matters for outbox bursts.

    What orjson refuses (integers beyond 64 bits) goes through ``json`` as before.
    """
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value)


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    parsed = make_url(url)
    kwargs.setdefault("json_serializer", dumps_json)
    if parsed.get_backend_name() == "sqlite":
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_timeout", 10)
    # No JIT: the API's list queries are short, but a filter the planner
    # cannot estimate (a custom property, a relative date) gives them a large
    # cost, and PostgreSQL then spent ~0.7 s compiling a 50 ms query.
    if parsed.get_driver_name() == "asyncpg":
        connect_args = kwargs.setdefault("connect_args", {})
        connect_args.setdefault("server_settings", {}).setdefault("jit", "off")
    return create_async_engine(url, **kwargs)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


# Errors that say the store is unreachable or refusing writes, as opposed
# to a bug or bad data.  asyncpg's connection errors surface as OSError or
# its own PostgresConnectionError through SQLAlchemy's DBAPIError wrapper.
# PostgreSQL's "try again" answers: a deadlock victim or a serialization
# failure.  Nothing is wrong with the input or the store: the transaction
# was rolled back and is run again; once retries are spent the work is left
# for later like an outage (the intake row stays pending, the API answers
# 503), never quarantined.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


def lost_a_race(error: BaseException) -> bool:
    """Whether PostgreSQL rolled this transaction back for losing to a concurrent one."""
    if not isinstance(error, exc.DBAPIError):
        return False
    original = error.orig
    return (getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)) in RETRYABLE_SQLSTATES


def is_storage_outage(error: BaseException) -> bool:
    if isinstance(error, StorageUnavailable):
        return True
    if isinstance(error, (OSError, asyncio.TimeoutError, ConnectionError)):
        return True
    if isinstance(error, exc.TimeoutError):  # pool exhausted
        return True
    if isinstance(error, exc.DBAPIError):
        if error.connection_invalidated:
            return True
        if isinstance(error, exc.OperationalError):
            return True
        original = getattr(error, "orig", None)
        name = type(original).__name__ if original is not None else ""
        return "Connection" in name or "CannotConnectNow" in name or "TooManyConnections" in name
    return False
