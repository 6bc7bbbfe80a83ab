"""Which SLA clocks a ticket's event starts, pauses, resumes or stops: the one home of the clock rules.

Called once per event by the automation handler (embedded runner or Kafka
worker), inside the transaction that records the event as applied, so each
event moves the clocks exactly once; the event's own time is the clock time.

- First response: a ticket created by a channel starts it; the first reply an
  agent sends to the customer stops it.
- Next response: a customer message after an agent reply starts one (when no
  response clock runs); the next agent reply stops it.
- Time to close: creation starts it; the first entry into a closed status
  stops it; a reopen starts a new one from the reopen.
- Entering a pause status pauses every running clock, leaving it resumes them;
  a closed status stops them all for good.
"""

from __future__ import annotations

from datetime import datetime
from typing import Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.events import (
    AGENT,
    DomainEvent,
    MessageReceived,
    MessageSent,
    TicketCreated,
    TicketPropertyChanged,
    TicketStatusChanged,
)
from frontdesk.model import Message, SlaClock, Status, Ticket, utcnow
from frontdesk.model.messages import INBOUND, OUTBOUND
from frontdesk.tickets.sla import clocks
from frontdesk.tickets.sla.settings import FIRST_RESPONSE, NEXT_RESPONSE, TIME_TO_CLOSE
from frontdesk.tickets.sla.store import pause_status_ids, ticket_values, transaction_settings

TRACKED_EVENTS = (TicketCreated, TicketStatusChanged, TicketPropertyChanged, MessageReceived, MessageSent)
RESPONSE_CLOCKS = (FIRST_RESPONSE, NEXT_RESPONSE)
# Property changes that can change which target a ticket gets.
TARGET_PROPERTIES = frozenset({"priority", "team_id", "pipeline_id"})


def is_agent_reply(event: DomainEvent) -> bool:
    return isinstance(event, MessageSent) and not event.automated and event.actor.kind == AGENT


def is_customer_message(event: DomainEvent) -> bool:
    return (isinstance(event, MessageReceived) and event.direction == INBOUND and event.author_kind == "customer"
            and not event.is_automated and not event.ticket_created)


async def track_event(session: AsyncSession, event: DomainEvent, *, now: datetime | None = None) -> bool:
    """Move the clocks of ``event``'s ticket as the event says; False when SLAs are off (nothing to do)."""
    if not isinstance(event, TRACKED_EVENTS) or event.ticket_id is None:
        return False
    settings = await transaction_settings(session)
    ticket = await session.get(Ticket, event.ticket_id) if settings.enabled else None
    if ticket is None:
        return False
    at = datetime.fromisoformat(event.occurred_at)
    # Locked: the timer scanner must not fire a clock this event is stopping or moving.
    running = list((await session.scalars(select(SlaClock).where(
        SlaClock.ticket_id == ticket.id, SlaClock.stopped_at.is_(None)).order_by(SlaClock.id)
        .with_for_update())).all())
    schedule = settings.schedule_for(ticket.team_id)
    pausing = await pause_status_ids(session, settings)

    def start(kind: str, status_id: int) -> None:
        """Start a ``kind`` clock at the event, paused when the ticket was then in a pause status."""
        target = settings.target_for(kind, ticket_values(ticket))
        if target is not None and not any(c.kind == kind for c in running):
            clock = clocks.new_clock(ticket.id, kind, target, at, paused=status_id in pausing)
            clock.settings_version = settings.version  # computed under these settings: nothing to recompute
            session.add(clock)
            running.append(clock)

    def stop(kinds: tuple[str, ...]) -> None:
        for clock in [c for c in running if c.kind in kinds]:
            clocks.stop(clock, schedule, at)
            running.remove(clock)

    if isinstance(event, TicketCreated):
        if event.source != "manual":
            start(FIRST_RESPONSE, event.status_id)
        start(TIME_TO_CLOSE, event.status_id)
    elif is_agent_reply(event):
        stop(RESPONSE_CLOCKS)
    elif is_customer_message(event):
        status = await session.get(Status, ticket.status_id)
        if (status is not None and not status.is_closed and not any(c.kind in RESPONSE_CLOCKS for c in running)
                and await _agent_replied(session, ticket.id)):
            start(NEXT_RESPONSE, ticket.status_id)
    elif isinstance(event, TicketStatusChanged):
        await _status_changed(session, event, running, pausing, at, start, stop)
    elif isinstance(event, TicketPropertyChanged) and TARGET_PROPERTIES & set(event.changes):
        for clock in running:
            target = settings.target_for(clock.kind, ticket_values(ticket))
            if target is not None:
                clocks.retarget(clock, target)
    current = now or utcnow()
    for clock in running:
        clocks.reschedule(clock, schedule, current)
    return True


async def _agent_replied(session: AsyncSession, ticket_id: int) -> bool:
    return await session.scalar(select(Message.id).where(
        Message.ticket_id == ticket_id, Message.direction == OUTBOUND, Message.author_kind == AGENT).limit(1)) is not None


async def _status_changed(session: AsyncSession, event: TicketStatusChanged, running: list[SlaClock],
                          pausing: set[int], at: datetime, start: Callable[[str, int], None],
                          stop: Callable[[tuple[str, ...]], None]) -> None:
    """Closing stops every clock; a reopen starts time to close; a pause status pauses, leaving it resumes."""
    if event.is_closed:
        previous = await session.get(Status, event.from_status_id)
        if previous is None or not previous.is_closed:
            stop((FIRST_RESPONSE, NEXT_RESPONSE, TIME_TO_CLOSE))
        return
    if event.reopened:
        start(TIME_TO_CLOSE, event.to_status_id)
    for clock in running:
        if event.to_status_id in pausing:
            clocks.pause(clock, at)
        else:
            clocks.resume(clock, at)
