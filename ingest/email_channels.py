"""The email channels (support addresses), cached per process so ingest does not load them for every message.

The ``channels`` table is the one source of truth for which addresses are
ours: the SMTP edge asks it at ``RCPT``, screening asks it which senders are
our own, the pipeline asks it which channel a mail belongs to.  The settings
only seed it at start-up (:func:`frontdesk.defaults.ensure_defaults`).

Every inbound mail needs the channels several times.  They change rarely,
but admins change them at run time (the API, ``frontdesk config apply``),
and a change must apply without a restart.  So:

* a write in this process (an ORM flush or an ORM-enabled ``update`` /
  ``delete`` touching ``channels``) drops every cached copy once its
  transaction commits, and a flush drops them at once as well;
* a write by another process is seen after at most :data:`TTL_SECONDS`.

The cache holds plain column values per session factory (one per
database); each caller gets fresh, transient :class:`Channel` objects, so
nothing cached is ever attached to a session.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from frontdesk.model import Channel
from frontdesk.model.channels import EMAIL
from frontdesk.storage.database import is_storage_outage

TTL_SECONDS = 5.0


@dataclass(frozen=True)
class _Loaded:
    generation: int
    loaded_at: float
    rows: list[dict[str, Any]]
    # Keys of the enabled channels, lower-cased: the addresses that receive mail.
    receiving: frozenset[str]
    # Keys of every email channel, disabled ones too: still ours when mail comes back from them.
    owned: frozenset[str]


# Bumped on every local write to ``channels``; a cached copy from an older
# generation is not used.
_generation = 0
_cache: weakref.WeakKeyDictionary[async_sessionmaker[AsyncSession], _Loaded] = weakref.WeakKeyDictionary()
# One load at a time per database, so a burst of RCPTs on a stale cache costs one query.
_loading: weakref.WeakKeyDictionary[async_sessionmaker[AsyncSession], asyncio.Lock] = weakref.WeakKeyDictionary()


def _fresh(sessions: async_sessionmaker[AsyncSession]) -> _Loaded | None:
    cached = _cache.get(sessions)
    if cached is None or cached.generation != _generation or time.monotonic() - cached.loaded_at > TTL_SECONDS:
        return None
    return cached


async def _load(session: AsyncSession, sessions: async_sessionmaker[AsyncSession]) -> _Loaded:
    generation, now = _generation, time.monotonic()
    rows = [dict(row) for row in (await session.execute(
        select(*Channel.__table__.columns).where(Channel.kind == EMAIL).order_by(Channel.id))).mappings().all()]
    loaded = _Loaded(
        generation, now, rows,
        receiving=frozenset(row["key"].lower() for row in rows if row["enabled"]),
        owned=frozenset(row["key"].lower() for row in rows),
    )
    _cache[sessions] = loaded
    return loaded


async def _cached(sessions: async_sessionmaker[AsyncSession]) -> _Loaded:
    """The cached copy, loaded through a short session of its own when stale.

    While the database is down, the last copy (however old) is better than
    none; with no copy at all the outage is raised.
    """
    cached = _fresh(sessions)
    if cached is not None:
        return cached
    lock = _loading.setdefault(sessions, asyncio.Lock())
    async with lock:
        cached = _fresh(sessions)  # loaded by whoever held the lock before us
        if cached is not None:
            return cached
        try:
            async with sessions() as session:
                return await _load(session, sessions)
        except Exception as error:
            stale = _cache.get(sessions)
            if stale is None or not is_storage_outage(error):
                raise
            return stale


async def email_channels(session: AsyncSession, sessions: async_sessionmaker[AsyncSession]) -> list[Channel]:
    """Every email channel (disabled ones too) of the database behind ``sessions``, read through ``session`` when not cached."""
    cached = _fresh(sessions) or await _load(session, sessions)
    return [Channel(**values) for values in cached.rows]


async def receiving_addresses(sessions: async_sessionmaker[AsyncSession]) -> frozenset[str]:
    """The addresses mail is accepted for: the keys of the enabled email channels, lower-cased."""
    return (await _cached(sessions)).receiving


async def own_addresses(sessions: async_sessionmaker[AsyncSession]) -> frozenset[str]:
    """Every address that is ours, disabled channels included, lower-cased (for loop screening)."""
    return (await _cached(sessions)).owned


def invalidate() -> None:
    global _generation
    _generation += 1


def _touches_channels(session: Session) -> bool:
    return any(isinstance(obj, Channel) for obj in (*session.new, *session.dirty, *session.deleted))


@event.listens_for(Session, "before_flush")
def _note_channel_writes(session: Session, flush_context: Any, instances: Any) -> None:
    if _touches_channels(session):
        session.info["frontdesk_channels_written"] = True
        invalidate()


@event.listens_for(Session, "do_orm_execute")
def _note_channel_statements(state: Any) -> None:
    # ``update(Channel)`` carries an annotated copy of the table, never the table itself: compare names.
    table = getattr(state.statement, "table", None)
    if (state.is_update or state.is_delete or state.is_insert) and getattr(table, "name", None) == \
            Channel.__tablename__:
        state.session.info["frontdesk_channels_written"] = True
        invalidate()


@event.listens_for(Session, "after_commit")
def _drop_after_commit(session: Session) -> None:
    # A copy loaded between the flush and the commit would hold the old rows.
    if session.info.pop("frontdesk_channels_written", False):
        invalidate()


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop("frontdesk_channels_written", None)
