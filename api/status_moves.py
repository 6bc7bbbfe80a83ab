"""Moving a ticket to another status from the admin API: status deletion and bulk moves.

Delegates the ticket's own changes (status, close and reopen stamps, the
event payload) to :func:`automation.status_change.move_ticket`, shared with
the triggers and the ticket update API, and records the
``ticket.status_changed`` event in the caller's transaction.  Callers check
visibility and stage rules first.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.automation.status_change import move_ticket as apply_move
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
) -> DomainEvent | None:
    """Put ``ticket`` in ``target``; returns the recorded event, or None when it was already there."""
    if ticket.status_id == target.id:
        return None
    previous = await session.get(Status, ticket.status_id)
    assert previous is not None
    now = utcnow()
    ticket.pipeline_id = target.pipeline_id
    payload = apply_move(ticket, previous, target, now)
    ticket.updated_at = now
    if reason:
        payload["reason"] = reason
    event = DomainEvent(type=TICKET_STATUS_CHANGED, ticket_id=ticket.id, actor=actor, payload=payload)
    record_event(session, event)
    return event
