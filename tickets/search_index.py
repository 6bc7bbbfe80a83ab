"""Keeping a ticket's search document (``ticket_search``) and its "latest message" flag current.

:func:`refresh_ticket_index` is the one place that rebuilds them; it is
called, in the writer's transaction, wherever a ticket, its messages or its
contact change (ticket creation, ingest's persist, outbound replies, ticket
updates).  The database's full-text structures follow the row by themselves
(``frontdesk.storage.search_ddl``).  What a ticket is searched by is
:func:`search_sources`: every associated contact and company (so the
association endpoints and contact or company edits refresh it too).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.model import Company, Contact, Message, Ticket, TicketSearchDocument
from frontdesk.model.messages import OUTBOUND
from frontdesk.tickets.associations import COMPANIES, CONTACTS, Association, associated

MAX_DOCUMENT = 200_000  # characters of message text kept per ticket; the oldest messages go first
_NOT_DIGIT = re.compile(r"\D+")


def phone_digits(value: str | None) -> str:
    """A phone number as digits only, so any formatting matches: "+1 (555) 010-2030" -> "15550102030"."""
    return _NOT_DIGIT.sub("", value or "")


async def search_sources(session: AsyncSession, ticket: Ticket) -> tuple[list[Contact], list[Company]]:
    """The contacts and companies a ticket is found by: every associated one, and the contacts' companies."""
    contacts = (await associated(session, CONTACTS, [ticket.id]))[ticket.id]
    companies = (await associated(session, COMPANIES, [ticket.id]))[ticket.id]
    if ticket.contact_id and all(c.id != ticket.contact_id for c in contacts):
        contacts += (await session.scalars(select(Contact).where(Contact.id == ticket.contact_id))).all()
    company_ids = {ticket.company_id, *(c.company_id for c in contacts)} - {None} - {c.id for c in companies}
    if company_ids:
        companies += (await session.scalars(select(Company).where(Company.id.in_(company_ids)))).all()
    return contacts, companies


async def refresh_linked_tickets(session: AsyncSession, kind: Association, target_id: int) -> None:
    """Rebuild the search documents of every ticket associated with a contact or company that changed."""
    for ticket_id in (await session.scalars(select(kind.link.ticket_id).where(kind.column == target_id))).all():
        await refresh_ticket_index(session, ticket_id)


def _join(parts: list[Any]) -> str:
    return " ".join(str(p) for p in parts if p).lower()


async def refresh_ticket_index(session: AsyncSession, ticket_id: int | None) -> None:
    """Rebuild ticket ``ticket_id``'s search document and latest-message flag (flushed, same transaction)."""
    if ticket_id is None:
        return
    ticket = await session.get(Ticket, ticket_id)
    if ticket is None:
        return
    await session.flush()
    contacts, companies = await search_sources(session, ticket)
    messages = (await session.execute(
        select(Message.direction, Message.author_kind, Message.text_body, Message.reply_text)
        .where(Message.ticket_id == ticket_id).order_by(Message.created_at, Message.id))).all()
    latest = messages[-1] if messages else None
    outbound = bool(latest and latest.direction == OUTBOUND and latest.author_kind == "agent")
    if ticket.last_message_outbound != outbound:
        ticket.last_message_outbound = outbound
    names = _join([f"#{ticket.id}", ticket.name,
                   *(x for c in contacts for x in (c.first_name, c.last_name, c.email)),
                   *(c.name for c in companies)])
    bodies = _join([m.text_body or m.reply_text for m in messages])[-MAX_DOCUMENT:]
    document = _join([ticket.description, bodies])
    phones = " ".join(d for c in contacts for d in (phone_digits(c.phone), phone_digits(c.mobile)) if d)
    row = await session.get(TicketSearchDocument, ticket_id)
    if row is None:
        session.add(TicketSearchDocument(ticket_id=ticket_id, names=names, document=document, phones=phones))
    elif (row.names, row.document, row.phones) != (names, document, phones):
        row.names, row.document, row.phones = names, document, phones
    await session.flush()
