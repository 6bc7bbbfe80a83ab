"""Deleting a ticket (soft: it can be restored) and restoring it.

Deleting stamps ``deleted_at`` / ``deleted_by_id``; from then on the ticket
is outside :func:`frontdesk.tickets.access.ticket_visibility` for everyone:
gone from lists, counts and answers, no automation acts on it, and mail
replying to it starts a new ticket (ingest's threading no longer finds it).
Whoever can see a ticket may delete it; admins restore it.  Both record a
typed event and an audit entry in the caller's transaction.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.events import Actor, TicketDeleted, TicketRestored
from frontdesk.model import Ticket, utcnow
from frontdesk.outbox import record_events
from frontdesk.tickets.access import Principal, visible_ticket
from frontdesk.tickets.audit import record_audit

def _state(ticket: Ticket) -> dict[str, object]:
    return {"deleted_at": ticket.deleted_at.isoformat() if ticket.deleted_at else None,
            "deleted_by_id": ticket.deleted_by_id}


async def delete_ticket(session: AsyncSession, principal: Principal, ticket_id: int) -> Ticket:
    """Soft-delete a ticket the principal can see (NotFound otherwise, deleted ones included)."""
    ticket = await visible_ticket(session, principal, ticket_id)
    before = _state(ticket)
    ticket.deleted_at = utcnow()
    ticket.deleted_by_id = principal.user_id
    await record_events(session, TicketDeleted(ticket_id=ticket.id, actor=Actor.agent(principal.user_id),
                                               pipeline_id=ticket.pipeline_id, owner_id=ticket.owner_id))
    record_audit(session, principal, "ticket.deleted", "ticket", ticket.id, before=before, after=_state(ticket))
    return ticket


async def restore_ticket(session: AsyncSession, principal: Principal, ticket_id: int) -> Ticket:
    """Bring back a deleted ticket the principal could see; the caller checks they are an admin."""
    ticket = await visible_ticket(session, principal, ticket_id, deleted=True)
    before = _state(ticket)
    ticket.deleted_at = None
    ticket.deleted_by_id = None
    ticket.updated_at = utcnow()
    await record_events(session, TicketRestored(ticket_id=ticket.id, actor=Actor.agent(principal.user_id),
                                                pipeline_id=ticket.pipeline_id, owner_id=ticket.owner_id))
    record_audit(session, principal, "ticket.restored", "ticket", ticket.id, before=before, after=_state(ticket))
    return ticket
