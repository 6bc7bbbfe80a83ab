"""Moving a ticket to another status from the admin API: status deletion and bulk moves.

The move itself (status, close and reopen stamps, the event) is
:func:`frontdesk.tickets.status.move_status`; this records its
``ticket.status_changed`` event in the caller's transaction.  Callers check
visibility and stage rules first.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.events import Actor, TicketStatusChanged
from frontdesk.model import Status, Ticket
from frontdesk.outbox import record_events
from frontdesk.tickets.status import move_status


async def move_ticket(
    session: AsyncSession,
    ticket: Ticket,
    target: Status,
    *,
    actor: Actor,
    reason: str | None = None,
) -> TicketStatusChanged | None:
    """Put ``ticket`` in ``target``; returns the recorded event, or None when it was already there."""
    if ticket.status_id == target.id:
        return None
    previous = await session.get(Status, ticket.status_id)
    assert previous is not None
    event = move_status(ticket, previous, target, actor=actor, reason=reason)
    await record_events(session, event)
    return event
