"""The fields a template or snippet is rendered with for one ticket: ticket, contact, owner.

One place loads them, so a template preview, a snippet and an inserted
template in a reply all see exactly what an automated email would.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.model import Contact, Status, Ticket, User
from frontdesk.outbound.email.render import contact_fields, owner_fields, ticket_fields


async def template_context(session: AsyncSession, ticket: Ticket) -> dict[str, Any]:
    status = await session.get(Status, ticket.status_id)
    contact = await session.get(Contact, ticket.contact_id) if ticket.contact_id else None
    owner = await session.get(User, ticket.owner_id) if ticket.owner_id else None
    return {"ticket": ticket_fields(ticket, status.label if status else None),
            "contact": contact_fields(contact), "owner": owner_fields(owner)}
