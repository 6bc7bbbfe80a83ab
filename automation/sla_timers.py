"""The SLA timer scanner: fire each clock's due-soon and overdue moment once, durably.

Clocks carry ``next_timer_at``, the next moment they can fire, under a
partial index holding only clocks that still can.  One scan claims the
clocks whose moment has passed (``FOR UPDATE SKIP LOCKED`` on PostgreSQL,
so two scanners never take the same clock; SQLite has one writer, taken
through the writer turn), moves their state and records ``sla.due_soon`` /
``sla.overdue`` in the outbox, all in one transaction.  A scanner that was
down catches up at its first scan: the moments are stored, not scheduled in
memory.  Runs in-process in embedded mode and in the worker with Kafka.
"""

from __future__ import annotations

from datetime import datetime
from typing import Awaitable, Callable

import structlog
from prometheus_client import Counter
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from frontdesk.background import PollingLoop
from frontdesk.events import SYSTEM, Actor, SlaDueSoon, SlaOverdue
from frontdesk.model import SlaClock, utcnow
from frontdesk.model.sla import DUE_SOON
from frontdesk.outbox import record_events
from frontdesk.storage.writer import write_transaction
from frontdesk.tickets.sla.clocks import fire_due_timer

log = structlog.get_logger(__name__)

FIRED = Counter("frontdesk_sla_timers_fired_total", "SLA clocks that became due soon or overdue", ["state"])
BATCH = 1000


async def fire_due_timers(sessions: async_sessionmaker[AsyncSession], *, now: datetime | None = None,
                          batch: int = BATCH) -> int:
    """Fire every clock whose moment is at or before ``now``; returns how many fired."""
    total = 0
    while True:
        fired = await _fire_batch(sessions, now or utcnow(), batch)
        total += fired[0]
        if fired[1] < batch:
            return total


async def _fire_batch(sessions: async_sessionmaker[AsyncSession], now: datetime, batch: int) -> tuple[int, int]:
    """(fired, claimed) for one transaction's batch of due clocks."""
    async with write_transaction(sessions) as session:
        claimed = (await session.scalars(
            select(SlaClock).where(SlaClock.next_timer_at <= now)
            .order_by(SlaClock.next_timer_at).limit(batch).with_for_update(skip_locked=True))).all()
        events = []
        for clock in claimed:
            state = fire_due_timer(clock, now)
            if state is None:
                continue
            event_type = SlaDueSoon if state == DUE_SOON else SlaOverdue
            assert clock.due_at is not None
            events.append(event_type(ticket_id=clock.ticket_id, actor=Actor(SYSTEM), clock_id=clock.id,
                                     clock=clock.kind, due_at=clock.due_at.isoformat()))
            FIRED.labels(state).inc()
        await record_events(session, *events)
    return len(events), len(claimed)


class SlaTimerLoop(PollingLoop):
    """Scan for due SLA moments every ``poll_interval`` seconds; wake the event consumers after a firing."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, poll_interval: float = 0.5,
                 on_fired: list[Callable[[], Awaitable[None]]] | None = None) -> None:
        super().__init__()
        self.name = "sla-timers"
        self.sessions = sessions
        self.poll_interval = poll_interval
        self.on_fired = on_fired if on_fired is not None else []

    async def step(self) -> None:
        try:
            fired = await fire_due_timers(self.sessions)
        except OperationalError as error:
            if "database is locked" not in str(error):
                raise
            return  # another process holds SQLite's writer: the next scan catches up
        if fired:
            log.info("sla_timers_fired", count=fired)
            for callback in self.on_fired:
                await callback()
