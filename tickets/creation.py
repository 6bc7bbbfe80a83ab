"""Creating a ticket, whatever the source: the manual API, ingest (email, chat, Messenger) and web forms.

:func:`create_ticket` builds and stores the row the same way for every
source, associating its primary contact and company; :func:`ticket_created`
describes it.  A ticket made by hand (an
agent) must carry its status's required stage properties; one made from an
inbound message is not held to them, as stage properties apply to changes
made by hand.  Ingest records the event itself, after the conversation that
started the ticket exists, together with the message's own event.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.events import AGENT, Actor, TicketCreated
from frontdesk.model import Status, Ticket, utcnow
from frontdesk.outbox import record_events
from frontdesk.tickets.associations import COMPANIES, CONTACTS, link
from frontdesk.tickets.search_index import refresh_ticket_index
from frontdesk.tickets.stage_properties import check_required_properties

MANUAL_SOURCE = "manual"


async def create_ticket(
    session: AsyncSession,
    *,
    actor: Actor,
    status: Status,
    source: str,
    name: str,
    description: str | None = None,
    priority: str | None = None,
    category: str | None = None,
    owner_id: int | None = None,
    team_id: int | None = None,
    channel_id: int | None = None,
    contact_id: int | None = None,
    company_id: int | None = None,
    custom_properties: Mapping[str, Any] | None = None,
    record: bool = True,
    index: bool = True,
    now: datetime | None = None,
) -> Ticket:
    """Store a new ticket in ``status`` (flushed, so it has its id) and, with ``record``, its ``ticket.created``.

    Values are already validated (``frontdesk.tickets.property_values``).
    Without ``index`` the caller refreshes its search document (ingest
    does, once per ticket for a batch of mail).
    """
    custom = dict(custom_properties or {})
    if actor.kind == AGENT:
        values = dict(name=name, description=description, priority=priority, category=category,
                      owner_id=owner_id, team_id=team_id)
        await check_required_properties(session, {**values, **custom}, status.id, actor_kind=actor.kind)
    ticket = new_ticket(status=status, source=source, name=name, description=description, priority=priority,
                        category=category, owner_id=owner_id, team_id=team_id, channel_id=channel_id,
                        contact_id=contact_id, company_id=company_id, custom_properties=custom, now=now)
    session.add(ticket)
    await session.flush()
    await link(session, CONTACTS, ticket.id, [contact_id])
    await link(session, COMPANIES, ticket.id, [company_id])
    if index:
        await refresh_ticket_index(session, ticket.id)
    if record:
        await record_events(session, ticket_created(ticket, actor))
    return ticket


def new_ticket(*, status: Status, source: str, name: str, description: str | None = None,
               priority: str | None = None, category: str | None = None, owner_id: int | None = None,
               team_id: int | None = None, channel_id: int | None = None, contact_id: int | None = None,
               company_id: int | None = None, custom_properties: Mapping[str, Any] | None = None,
               now: datetime | None = None, id: int | None = None) -> Ticket:
    """The row of a new ticket in ``status``, not yet added to a session (values already validated).

    :func:`create_ticket` stores it; a batch of mail adds its new tickets
    with ids it reserved and writes them together, associating each
    one's contact and company itself.
    """
    now = now or utcnow()
    ticket = Ticket(
        name=name, description=description, priority=priority, category=category, owner_id=owner_id,
        team_id=team_id, pipeline_id=status.pipeline_id, status_id=status.id, source_channel=source,
        channel_id=channel_id, contact_id=contact_id, company_id=company_id,
        custom_properties=dict(custom_properties or {}),
        created_at=now, updated_at=now, closed_at=now if status.is_closed else None,
    )
    if id is not None:
        ticket.id = id
    return ticket


def ticket_created(ticket: Ticket, actor: Actor) -> TicketCreated:
    """The ``ticket.created`` event for a stored ticket."""
    return TicketCreated(
        ticket_id=ticket.id, actor=actor, pipeline_id=ticket.pipeline_id, status_id=ticket.status_id,
        source=ticket.source_channel, channel_id=ticket.channel_id, contact_id=ticket.contact_id,
        origin_conversation_id=ticket.origin_conversation_id,
    )
