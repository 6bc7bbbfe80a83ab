"""Marking a ticket as spam and taking the mark off: the one place that changes ``tickets.is_spam``.

A spam ticket drops out of every view but Spam (``api.ticket_queries``
leaves it out unless asked) and never triggers automation
(:func:`automation_skips`, checked by the automation handlers).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.events import Actor, TicketPropertyChanged
from frontdesk.model import Ticket, utcnow
from frontdesk.outbox import record_events
from frontdesk.tickets.access import Principal
from frontdesk.tickets.audit import record_audit


async def set_spam(session: AsyncSession, principal: Principal, ticket: Ticket, spam: bool) -> bool:
    """Mark (``spam``) or unmark ``ticket``, with its event and audit entry; False when it already was so."""
    if ticket.is_spam == spam:
        return False
    ticket.is_spam = spam
    ticket.updated_at = utcnow()
    change = {"spam": {"from": not spam, "to": spam}}
    await record_events(session, TicketPropertyChanged(ticket_id=ticket.id, actor=Actor.agent(principal.user_id),
                                                       changes=change))
    record_audit(session, principal, "ticket.spam_marked" if spam else "ticket.spam_unmarked", "ticket", ticket.id,
                 before={"spam": not spam}, after={"spam": spam})
    return True


def automation_skips(ticket: Ticket) -> bool:
    """Spam never triggers automation: no status trigger, no status action."""
    return ticket.is_spam
