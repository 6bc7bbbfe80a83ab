"""Record domain events in the transactional outbox, inside the caller's transaction."""

from __future__ import annotations

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.events import DomainEvent
from frontdesk.model import OutboxEvent

_INSERT = insert(OutboxEvent.__table__)


async def record_events(session: AsyncSession, *events: DomainEvent) -> None:
    """Add ``events`` to the outbox, in this order; they commit (or not) with the change they describe.

    One Core INSERT for all of them, sent as one pipelined executemany: the
    ORM would add its unit-of-work bookkeeping for every row, which cost
    more than building the events themselves in a burst of SLA timers (see
    docs/benchmarks.md).  A Core statement does not autoflush, so pending
    ORM changes are flushed first: the events land after the rows they
    describe and in the order of the calls.
    """
    if not events:
        return
    await session.flush()
    await session.execute(_INSERT, [
        {"event_id": event.id, "type": event.type, "ticket_id": event.ticket_id, "body": event.to_dict()}
        for event in events
    ])
