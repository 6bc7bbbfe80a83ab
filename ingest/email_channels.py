"""The email channels (support addresses), cached per process so ingest does not load them for every message.

Every inbound mail needs them twice: to pick its channel and to tell our
own addresses from the customer's.  They change rarely, but admins change
them at run time (the API, ``frontdesk config apply``), and a change must
apply without a restart.  So:

* a write in this process (an ORM flush or an ORM-enabled ``update`` /
  ``delete`` touching ``channels``) drops every cached copy once its
  transaction commits, and a flush drops them at once as well;
* a write by another process is seen after at most :data:`TTL_SECONDS`.

The cache holds plain column values per session factory (one per
database); each caller gets fresh, transient :class:`Channel` objects, so
nothing cached is ever attached to a session.
"""

from __future__ import annotations

import time
import weakref
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from frontdesk.model import Channel
from frontdesk.model.channels import EMAIL

TTL_SECONDS = 5.0

_COLUMNS = tuple(column.key for column in Channel.__table__.columns)

# Bumped on every local write to ``channels``; a cached copy from an older
# generation is not used.
_generation = 0
_cache: weakref.WeakKeyDictionary[async_sessionmaker[AsyncSession], tuple[int, float, list[dict[str, Any]]]] = (
    weakref.WeakKeyDictionary())


async def email_channels(session: AsyncSession, sessions: async_sessionmaker[AsyncSession]) -> list[Channel]:
    """The email channels of the database behind ``sessions``, read through ``session`` when not cached."""
    cached = _cache.get(sessions)
    now = time.monotonic()
    if cached is None or cached[0] != _generation or now - cached[1] > TTL_SECONDS:
        generation = _generation
        rows = (await session.execute(select(*Channel.__table__.columns).where(Channel.kind == EMAIL)
                                      .order_by(Channel.id))).mappings().all()
        cached = (generation, now, [dict(row) for row in rows])
        _cache[sessions] = cached
    return [Channel(**values) for values in cached[2]]


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
    if (state.is_update or state.is_delete or state.is_insert) and getattr(state.statement, "table", None) is \
            Channel.__table__:
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
