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
from typing import Any, Iterable

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
    return (await _search_sources_of(session, [ticket]))[ticket.id]


async def _search_sources_of(session: AsyncSession,
                             tickets: list[Ticket]) -> dict[int, tuple[list[Contact], list[Company]]]:
    """:func:`search_sources` of many tickets, in a fixed number of queries."""
    ids = [t.id for t in tickets]
    contacts = await associated(session, CONTACTS, ids)
    companies = await associated(session, COMPANIES, ids)
    primary = {t.contact_id for t in tickets if t.contact_id and all(c.id != t.contact_id for c in contacts[t.id])}
    found = {c.id: c for c in (await session.scalars(select(Contact).where(Contact.id.in_(primary)))).all()} \
        if primary else {}
    for ticket in tickets:
        if ticket.contact_id in primary and ticket.contact_id in found:
            contacts[ticket.id].append(found[ticket.contact_id])
    wanted = {t.id: {t.company_id, *(c.company_id for c in contacts[t.id])} - {None} - {c.id for c in companies[t.id]}
              for t in tickets}
    company_ids = set().union(*wanted.values())
    rows = {c.id: c for c in (await session.scalars(select(Company).where(Company.id.in_(company_ids)))).all()} \
        if company_ids else {}
    for ticket in tickets:
        companies[ticket.id] += [rows[i] for i in sorted(wanted[ticket.id]) if i in rows]
    return {t.id: (contacts[t.id], companies[t.id]) for t in tickets}


async def refresh_linked_tickets(session: AsyncSession, kind: Association, target_id: int) -> None:
    """Rebuild the search documents of every ticket associated with a contact or company that changed."""
    for ticket_id in (await session.scalars(select(kind.link.ticket_id).where(kind.column == target_id))).all():
        await refresh_ticket_index(session, ticket_id)


def _join(parts: list[Any]) -> str:
    return " ".join(str(p) for p in parts if p).lower()


async def refresh_ticket_index(session: AsyncSession, ticket_id: int | None) -> None:
    """Rebuild ticket ``ticket_id``'s search document and latest-message flag (flushed, same transaction)."""
    if ticket_id is not None:
        await refresh_ticket_indexes(session, [ticket_id])


async def refresh_ticket_indexes(session: AsyncSession, ticket_ids: Iterable[int]) -> None:
    """:func:`refresh_ticket_index` of many tickets in a fixed number of queries (the automation handler's batch)."""
    ids = sorted(set(ticket_ids))
    if not ids:
        return
    await session.flush()
    tickets = list((await session.scalars(select(Ticket).where(Ticket.id.in_(ids)).order_by(Ticket.id))).all())
    if not tickets:
        return
    sources = await _search_sources_of(session, tickets)
    messages: dict[int, list[Any]] = {t.id: [] for t in tickets}
    for row in (await session.execute(
            select(Message.ticket_id, Message.direction, Message.author_kind, Message.text_body, Message.reply_text)
            .where(Message.ticket_id.in_(ids)).order_by(Message.created_at, Message.id))).all():
        messages[row.ticket_id].append(row)
    documents = {row.ticket_id: row for row in (await session.scalars(
        select(TicketSearchDocument).where(TicketSearchDocument.ticket_id.in_(ids)))).all()}
    for ticket in tickets:
        _refresh(session, ticket, *sources[ticket.id], messages[ticket.id], documents.get(ticket.id))
    await session.flush()


def _refresh(session: AsyncSession, ticket: Ticket, contacts: list[Contact], companies: list[Company],
             messages: list[Any], row: TicketSearchDocument | None) -> None:
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
    if row is None:
        session.add(TicketSearchDocument(ticket_id=ticket.id, names=names, document=document, phones=phones))
    elif (row.names, row.document, row.phones) != (names, document, phones):
        row.names, row.document, row.phones = names, document, phones
