"""A ticket's associated contacts and companies, and which of each is the primary one.

A ticket is associated with any number of contacts and companies (one row
per pair, unique); ``tickets.contact_id`` is the primary contact, who gets
the replies, and ``tickets.company_id`` the primary company.  The first one
associated becomes primary; dissociating the primary passes the role to
the oldest remaining association.  A change by an agent is one
``ticket.property_changed`` naming ``contacts`` / ``companies`` (ids before
and after) and, when it moved, ``contact_id`` / ``company_id``.  Ingest and
ticket creation link quietly: their own events already tell the story.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.events import Actor, TicketPropertyChanged
from frontdesk.model import Company, Contact, Ticket, TicketCompany, TicketContact, utcnow
from frontdesk.outbox import record_events
from frontdesk.storage.upsert import dialect_insert
from frontdesk.tickets.errors import NotFound


@dataclass(frozen=True)
class Association:
    """One kind of association: its link table, the associated table and the ticket's primary column."""

    name: str  # "contacts" / "companies", as the event and the API name them
    noun: str
    link: Any
    target: Any
    primary: str  # the Ticket attribute holding the primary one

    @property
    def column(self) -> Any:
        return getattr(self.link, f"{self.noun}_id")


CONTACTS = Association("contacts", "contact", TicketContact, Contact, "contact_id")
COMPANIES = Association("companies", "company", TicketCompany, Company, "company_id")


async def linked_ids(session: AsyncSession, kind: Association, ticket_id: int) -> list[int]:
    """The ids associated with the ticket, oldest association first."""
    return list((await session.scalars(
        select(kind.column).where(kind.link.ticket_id == ticket_id).order_by(kind.link.id))).all())


async def link(session: AsyncSession, kind: Association, ticket_id: int, target_ids: Iterable[int | None]) -> None:
    """Associate without an event; an existing pair is left alone (concurrent messages may both try)."""
    await link_pairs(session, kind, [(ticket_id, t) for t in target_ids if t is not None])


async def link_pairs(session: AsyncSession, kind: Association, pairs: Iterable[tuple[int, int]]) -> None:
    """:func:`link` for many (ticket, target) pairs at once, in one statement."""
    wanted = sorted(set(pairs))  # sorted: concurrent writers lock in one order
    if wanted:
        now = utcnow()
        await session.execute(
            dialect_insert(session, kind.link)
            .values([{"ticket_id": ticket_id, f"{kind.noun}_id": t, "created_at": now} for ticket_id, t in wanted])
            .on_conflict_do_nothing(index_elements=["ticket_id", f"{kind.noun}_id"]))


async def _record_change(session: AsyncSession, ticket: Ticket, kind: Association, actor: Actor,
                         before: list[int], primary_before: int | None) -> None:
    after = await linked_ids(session, kind, ticket.id)
    changes: dict[str, Any] = {}
    if after != before:
        changes[kind.name] = {"from": before, "to": after}
    if getattr(ticket, kind.primary) != primary_before:
        changes[kind.primary] = {"from": primary_before, "to": getattr(ticket, kind.primary)}
    if changes:
        ticket.updated_at = utcnow()
        await record_events(session, TicketPropertyChanged(ticket_id=ticket.id, actor=actor, changes=changes))


async def associate(session: AsyncSession, ticket: Ticket, kind: Association, target_id: int, *,
                    primary: bool, actor: Actor) -> None:
    """Associate ``target_id`` with ``ticket`` (again is fine); ``primary`` makes it the primary one."""
    if await session.get(kind.target, target_id) is None:
        raise NotFound(kind.noun)
    before = await linked_ids(session, kind, ticket.id)
    primary_before = getattr(ticket, kind.primary)
    await link(session, kind, ticket.id, [target_id])
    if primary or primary_before is None:
        setattr(ticket, kind.primary, target_id)
    await _record_change(session, ticket, kind, actor, before, primary_before)


async def dissociate(session: AsyncSession, ticket: Ticket, kind: Association, target_id: int, *,
                     actor: Actor) -> None:
    """Remove the association (NotFound when there is none); a primary one hands over to the oldest remaining."""
    before = await linked_ids(session, kind, ticket.id)
    if target_id not in before:
        raise NotFound(f"associated {kind.noun}")
    primary_before = getattr(ticket, kind.primary)
    await session.execute(delete(kind.link).where(kind.link.ticket_id == ticket.id, kind.column == target_id))
    if primary_before == target_id:
        remaining = [t for t in before if t != target_id]
        setattr(ticket, kind.primary, remaining[0] if remaining else None)
    await _record_change(session, ticket, kind, actor, before, primary_before)


async def associated(session: AsyncSession, kind: Association, ticket_ids: Iterable[int]) -> dict[int, list[Any]]:
    """Each ticket's associated rows, oldest association first, in one query whatever the number of tickets."""
    ids = sorted(set(ticket_ids))
    found: dict[int, list[Any]] = {t: [] for t in ids}
    if ids:
        rows = await session.execute(
            select(kind.link.ticket_id, kind.target).join(kind.target, kind.target.id == kind.column)
            .where(kind.link.ticket_id.in_(ids)).order_by(kind.link.id))
        for ticket_id, target in rows:
            found[ticket_id].append(target)
    return found
