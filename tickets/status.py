"""Moving a ticket to another status: the one place that stamps the move and describes it.

The status triggers, the ticket update API, bulk moves and status deletion
all move tickets through :func:`move_status`, so closing and reopening stamp
``closed_at`` / ``reopened_at`` the same way everywhere and every move is
described by the same ``ticket.status_changed`` event.  The caller records
the event in its transaction and checks visibility and stage rules first.
"""

from __future__ import annotations

from datetime import datetime

from frontdesk.events import Actor, DomainEvent, TicketStatusChanged
from frontdesk.model import Status, Ticket, utcnow


def move_status(
    ticket: Ticket,
    old: Status,
    new: Status,
    *,
    actor: Actor,
    now: datetime | None = None,
    reason: str | None = None,
    rule: str | None = None,
    cause: DomainEvent | None = None,
) -> TicketStatusChanged:
    """Put ``ticket`` in ``new`` (from ``old``) and return the event that says so.

    ``cause`` is the event that led automation to make this move: the new
    event then continues its chain, one step deeper (see the loop guard).
    """
    now = now or utcnow()
    reopened = old.is_closed and not new.is_closed
    ticket.pipeline_id = new.pipeline_id
    ticket.status_id = new.id
    ticket.updated_at = now
    if new.is_closed and not old.is_closed:
        ticket.closed_at = now
    if reopened:
        ticket.reopened_at = now
        ticket.closed_at = None
    fields = dict(
        pipeline_id=ticket.pipeline_id,
        from_status_id=old.id,
        to_status_id=new.id,
        from_status=old.internal_name,
        to_status=new.internal_name,
        is_closed=new.is_closed,
        reopened=reopened,
        reason=reason,
        rule=rule,
    )
    if cause is not None:
        return cause.follow_up(TicketStatusChanged, ticket_id=ticket.id, actor=actor, **fields)
    return TicketStatusChanged(ticket_id=ticket.id, actor=actor, **fields)
