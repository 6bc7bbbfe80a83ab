"""Record domain events in the transactional outbox, inside the caller's transaction."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.events import DomainEvent
from frontdesk.model import OutboxEvent


def record_event(session: AsyncSession, event: DomainEvent) -> OutboxEvent:
    """Add ``event`` to the outbox; it commits (or not) with the change it describes."""
    row = OutboxEvent(
        event_id=event.id,
        type=event.type,
        ticket_id=event.ticket_id,
        body=event.to_dict(),
    )
    session.add(row)
    return row
