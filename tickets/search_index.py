"""Keeping a ticket's search document (``ticket_search``) and its "latest message" flag current.

:func:`refresh_ticket_indexes` is the one place that rebuilds them, for
any number of tickets at once (:func:`refresh_ticket_index` for one); it is
called, in the writer's transaction, wherever a ticket, its messages or its
contact change (ticket creation, ingest's persist, outbound replies, ticket
updates).  The database's full-text structures follow the row by themselves
(``frontdesk.storage.search_ddl``).  What a ticket is searched by is
:func:`_document` over :func:`_search_sources`: every associated contact and company (so the
association endpoints and contact or company edits refresh it too).
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.model import Company, Contact, Message, Ticket, TicketSearchDocument
from frontdesk.model.messages import OUTBOUND
from frontdesk.storage.upsert import dialect_insert
from frontdesk.tickets.associations import COMPANIES, CONTACTS, Association, associated

MAX_DOCUMENT = 200_000  # characters of message text kept per ticket; the oldest messages go first
_NOT_DIGIT = re.compile(r"\D+")


def phone_digits(value: str | None) -> str:
    """A phone number as digits only, so any formatting matches: "+1 (555) 010-2030" -> "15550102030"."""
    return _NOT_DIGIT.sub("", value or "")


async def _search_sources(session: AsyncSession, tickets: list[Ticket]
                          ) -> dict[int, tuple[list[Contact], list[Company]]]:
    """Each ticket's contacts and companies it is found by: every associated one, and the contacts' companies.

    A handful of queries for all ``tickets`` together.
    """
    ids = [ticket.id for ticket in tickets]
    contacts = await associated(session, CONTACTS, ids)
    companies = await associated(session, COMPANIES, ids)
    missing = {t.contact_id for t in tickets if t.contact_id and all(c.id != t.contact_id for c in contacts[t.id])}
    if missing:
        extra = {c.id: c for c in (await session.scalars(select(Contact).where(Contact.id.in_(missing)))).all()}
        for ticket in tickets:
            if ticket.contact_id in missing and ticket.contact_id in extra:
                contacts[ticket.id].append(extra[ticket.contact_id])
    wanted = {t.id: {t.company_id, *(c.company_id for c in contacts[t.id])} - {None} - {c.id for c in companies[t.id]}
              for t in tickets}
    company_ids = set().union(*wanted.values()) if wanted else set()
    if company_ids:
        found = {c.id: c for c in (await session.scalars(select(Company).where(Company.id.in_(company_ids)))).all()}
        for ticket in tickets:
            companies[ticket.id] += [found[i] for i in sorted(wanted[ticket.id]) if i in found]
    return {t.id: (contacts[t.id], companies[t.id]) for t in tickets}


async def refresh_linked_tickets(session: AsyncSession, kind: Association, target_id: int) -> None:
    """Rebuild the search documents of every ticket associated with a contact or company that changed."""
    await refresh_ticket_indexes(
        session, (await session.scalars(select(kind.link.ticket_id).where(kind.column == target_id))).all())


def _join(parts: list[Any]) -> str:
    return " ".join(str(p) for p in parts if p).lower()


async def refresh_ticket_index(session: AsyncSession, ticket_id: int | None) -> None:
    """Rebuild ticket ``ticket_id``'s search document and latest-message flag (flushed, same transaction)."""
    if ticket_id is not None:
        await refresh_ticket_indexes(session, [ticket_id])


def _document(ticket: Ticket, contacts: list[Contact], companies: list[Company],
              bodies: list[str | None]) -> dict[str, Any]:
    """What ``ticket`` is searched by: its ``ticket_search`` row."""
    names = _join([f"#{ticket.id}", ticket.name,
                   *(x for c in contacts for x in (c.first_name, c.last_name, c.email)),
                   *(c.name for c in companies)])
    document = _join([ticket.description, _join(bodies)[-MAX_DOCUMENT:]])
    phones = " ".join(d for c in contacts for d in (phone_digits(c.phone), phone_digits(c.mobile)) if d)
    return {"ticket_id": ticket.id, "names": names, "document": document, "phones": phones}


async def refresh_ticket_indexes(session: AsyncSession, ticket_ids: Iterable[int]) -> None:
    """Rebuild the search documents and latest-message flags of ``ticket_ids`` (flushed, same transaction).

    Set-based: a few reads for all the tickets together, then one upsert
    that rewrites only the documents that changed (the full-text triggers
    and indexes follow the row).
    """
    ids = sorted(set(ticket_ids))  # sorted: concurrent writers lock in one order
    if not ids:
        return
    await session.flush()
    tickets = list((await session.scalars(select(Ticket).where(Ticket.id.in_(ids)).order_by(Ticket.id))).all())
    if not tickets:
        return
    sources = await _search_sources(session, tickets)
    messages: dict[int, list[Any]] = {t.id: [] for t in tickets}
    for row in await session.execute(
            select(Message.ticket_id, Message.direction, Message.author_kind, Message.text_body, Message.reply_text)
            .where(Message.ticket_id.in_(ids)).order_by(Message.ticket_id, Message.created_at, Message.id)):
        messages[row.ticket_id].append(row)
    documents = []
    for ticket in tickets:
        rows = messages[ticket.id]
        latest = rows[-1] if rows else None
        outbound = bool(latest and latest.direction == OUTBOUND and latest.author_kind == "agent")
        if ticket.last_message_outbound != outbound:
            ticket.last_message_outbound = outbound
        documents.append(_document(ticket, *sources[ticket.id], [m.text_body or m.reply_text for m in rows]))
    await session.flush()
    insert = dialect_insert(session, TicketSearchDocument).values(documents)
    table = TicketSearchDocument.__table__
    changed = or_(*(table.c[column].is_distinct_from(insert.excluded[column])
                    for column in ("names", "document", "phones")))
    await session.execute(insert.on_conflict_do_update(
        index_elements=["ticket_id"],
        set_={column: insert.excluded[column] for column in ("names", "document", "phones")},
        where=changed))
