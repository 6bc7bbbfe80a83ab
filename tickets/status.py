"""Moving a ticket to another status: the one place that stamps the move and describes it.

The status triggers, the ticket update API, bulk moves and status deletion
all move tickets through :func:`move_status`, so closing and reopening stamp
``closed_at`` / ``reopened_at`` the same way everywhere and every move is
described by the same ``ticket.status_changed`` event.  :func:`move_ticket`
is the whole move for one stored ticket: the target's required stage
properties (automation exempt), the move, and its event in the caller's
transaction.  Callers check visibility first.
"""

from __future__ import annotations

from datetime import datetime
from typing import Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.events import Actor, DomainEvent, TicketStatusChanged
from frontdesk.model import Status, Ticket, utcnow
from frontdesk.outbox import record_events
from frontdesk.tickets.errors import DomainError
from frontdesk.tickets.stage_properties import check_required_properties


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


async def move_ticket(
    session: AsyncSession,
    ticket: Ticket,
    target: Status,
    *,
    actor: Actor,
    reason: str | None = None,
) -> TicketStatusChanged | None:
    """Put ``ticket`` in ``target`` and record the event; None when it was already there.

    The target's required stage properties apply unless automation moves it;
    a refusal names the ticket (``ticket_id``), as one of many in a bulk move.
    """
    if ticket.status_id == target.id:
        return None
    try:
        await check_required_properties(session, ticket, target.id, actor_kind=actor.kind)
    except DomainError as error:
        error.details["ticket_id"] = ticket.id
        raise
    previous = await session.get(Status, ticket.status_id)
    assert previous is not None
    event = move_status(ticket, previous, target, actor=actor, reason=reason)
    await record_events(session, event)
    return event


def statuses_named(statuses: "Iterable[Status]", wanted: str) -> list[Status]:
    """The statuses of one pipeline that ``wanted`` names: the one rule for naming a status.

    The internal name (surrounding blanks ignored) wins; otherwise the label
    in any case.  PATCH's ``status``, the ticket list's ``?status=`` and its
    "no such status" answer all go through here.
    """
    wanted = wanted.strip()
    if not wanted:
        return []
    candidates = list(statuses)
    return ([s for s in candidates if s.internal_name == wanted]
            or [s for s in candidates if s.label.casefold() == wanted.casefold()])


def resolve_status(statuses: "list[Status]", value: object) -> Status:
    """The status ``value`` names among ``statuses`` (one pipeline's): its id, internal name or label.

    The label matches case-insensitively when exactly one status carries it
    (:func:`statuses_named`).  Otherwise DomainError ``unknown_status`` lists
    the valid internal names and labels.
    """
    found: list[Status] = []
    if isinstance(value, int) and not isinstance(value, bool):
        found = [s for s in statuses if s.id == value]
    elif isinstance(value, str):
        found = statuses_named(statuses, value)
    if len(found) == 1:
        return found[0]
    valid = [{"internal_name": s.internal_name, "label": s.label} for s in statuses]
    names = ", ".join(f"{s.internal_name} ({s.label})" for s in statuses)
    raise DomainError("unknown_status", f"no single status {value!r} in this pipeline; one of: {names}",
                      field="status", valid=valid)
