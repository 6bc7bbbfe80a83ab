"""Moving a ticket to another status: the one place that sets status, close dates and the event.

Callers check visibility and stage rules first; this records the
``ticket.status_changed`` event in the caller's transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.events import TICKET_STATUS_CHANGED, Actor, DomainEvent
from frontdesk.model import Status, Ticket, utcnow
from frontdesk.outbox import record_event


async def move_ticket(
    session: AsyncSession,
    ticket: Ticket,
    target: Status,
    *,
    actor: Actor,
    reason: str | None = None,
    cause: DomainEvent | None = None,
) -> DomainEvent | None:
    """Put ``ticket`` in ``target``; returns the recorded event, or None when it was already there."""
    if ticket.status_id == target.id:
        return None
    previous = await session.get(Status, ticket.status_id)
    was_closed = bool(previous and previous.is_closed)
    now = utcnow()
    ticket.status_id = target.id
    ticket.pipeline_id = target.pipeline_id
    ticket.updated_at = now
    if target.is_closed and not was_closed:
        ticket.closed_at = now
    elif was_closed and not target.is_closed:
        ticket.reopened_at = now
        ticket.closed_at = None
    payload: dict[str, Any] = {
        "pipeline_id": target.pipeline_id,
        "from_status_id": previous.id if previous else None,
        "from_status": previous.internal_name if previous else None,
        "from_closed": was_closed,
        "to_status_id": target.id,
        "to_status": target.internal_name,
        "to_closed": target.is_closed,
    }
    if reason:
        payload["reason"] = reason
    if cause is not None:
        event = cause.caused(TICKET_STATUS_CHANGED, ticket_id=ticket.id, actor=actor, payload=payload)
    else:
        event = DomainEvent(type=TICKET_STATUS_CHANGED, ticket_id=ticket.id, actor=actor, payload=payload)
    record_event(session, event)
    return event
