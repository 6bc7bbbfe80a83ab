"""The SLA timer scanner: fire each clock's due-soon and overdue moment once, durably.

Clocks carry ``next_timer_at``, the next moment they can fire, under a
partial index holding only clocks that still can.  One scan claims the
clocks whose moment has passed (``FOR UPDATE SKIP LOCKED`` on PostgreSQL,
so two scanners never take the same clock; SQLite has one writer, taken
through the writer turn), moves their state and records ``sla.due_soon`` /
``sla.overdue`` in the outbox, all in one transaction.  A scanner that was
down catches up at its first scan: the moments are stored, not scheduled in
memory.  A burst of due clocks goes in batches of ``BATCH``, ``LANES`` in
flight at once.  Clocks computed under older SLA settings never fire: each
loop step also recomputes a batch of them (:func:`recompute_stale`), soonest
first, after which they fire at their new moments.  Runs in-process in
embedded mode and in the worker with Kafka.
"""

from __future__ import annotations

import asyncio
import collections
from datetime import datetime
from typing import Awaitable, Callable

import structlog
from prometheus_client import Counter
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from frontdesk.background import PollingLoop
from frontdesk.events import SYSTEM, Actor, SlaDueSoon, SlaOverdue
from frontdesk.model import SlaClock, utcnow
from frontdesk.model.sla import DUE_SOON
from frontdesk.outbox import record_events
from frontdesk.storage.writer import write_transaction
from frontdesk.tickets.sla.clocks import timer_transition
from frontdesk.tickets.sla.store import current_version, recompute_stale_clocks

log = structlog.get_logger(__name__)

FIRED = Counter("frontdesk_sla_timers_fired_total", "SLA clocks that became due soon or overdue", ["state"])
BATCH = 1000
LANES = 2
# Recomputing a clock walks its schedule day by day (milliseconds for long
# targets): a small batch keeps each loop step, and the locks it holds, short.
RECOMPUTE_BATCH = 200


async def fire_due_timers(sessions: async_sessionmaker[AsyncSession], *, now: datetime | None = None,
                          batch: int = BATCH, lanes: int = LANES) -> int:
    """Fire every clock whose moment is at or before ``now``; returns how many fired.

    The first batch runs alone, so a scan with little or nothing due costs
    one transaction.  When it was full, ``lanes`` batches go in flight at
    once, so one batch's events are built while another's statements and
    commit run in the database; each claims its own clocks (SKIP LOCKED),
    and on SQLite the writer turn puts them in line.  A lane stops at its
    first short batch: nothing more is due, or the other lanes hold the rest.
    """
    total = await _fire_batch(sessions, now or utcnow(), batch)
    if total < batch:
        return total

    async def lane() -> None:
        nonlocal total
        while True:
            fired = await _fire_batch(sessions, now or utcnow(), batch)
            total += fired
            if fired < batch:
                return

    await asyncio.gather(*(lane() for _ in range(lanes)))
    return total


async def _fire_batch(sessions: async_sessionmaker[AsyncSession], now: datetime, batch: int) -> int:
    """Fire one transaction's batch of due clocks: one UPDATE ... RETURNING, one INSERT of their events."""
    claim = (select(SlaClock.id).where(SlaClock.next_timer_at <= now, SlaClock.settings_version == current_version())
             .order_by(SlaClock.next_timer_at).limit(batch).with_for_update(skip_locked=True))
    async with write_transaction(sessions) as session:
        fired = (await session.execute(
            update(SlaClock.__table__).where(SlaClock.id.in_(claim)).values(**timer_transition(now))
            .returning(SlaClock.id, SlaClock.ticket_id, SlaClock.kind, SlaClock.state, SlaClock.due_at))).all()
        # One actor and one moment for the whole batch: they fire together, and
        # building them per event was a third of the cost of building the events.
        actor, occurred_at = Actor(SYSTEM), utcnow().isoformat()
        events = [(SlaDueSoon if state == DUE_SOON else SlaOverdue)(
            ticket_id=ticket_id, actor=actor, occurred_at=occurred_at,
            clock_id=clock_id, clock=kind, due_at=due_at.isoformat())
            for clock_id, ticket_id, kind, state, due_at in fired]
        await record_events(session, *events)
    for state, count in collections.Counter(state for _, _, _, state, _ in fired).items():
        FIRED.labels(state).inc(count)
    return len(fired)


async def recompute_stale(sessions: async_sessionmaker[AsyncSession], *, batch: int = RECOMPUTE_BATCH) -> int:
    """Recompute one batch of running clocks behind the SLA settings; returns how many it took."""
    async with write_transaction(sessions) as session:
        return await recompute_stale_clocks(session, batch)


async def next_moment(sessions: async_sessionmaker[AsyncSession]) -> datetime | None:
    """The soonest moment any up-to-date clock can fire (through the partial index), or None."""
    async with sessions() as session:
        return await session.scalar(select(func.min(SlaClock.next_timer_at))
                                    .where(SlaClock.settings_version == current_version()))


class SlaTimerLoop(PollingLoop):
    """Scan when the soonest stored moment comes, and at least every ``poll_interval`` seconds.

    Sleeping until the soonest moment, not a fixed poll, keeps the delay from
    a due time to its event near the scan's own cost; the poll still catches
    clocks that other processes create with sooner moments.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, poll_interval: float = 0.5,
                 on_fired: list[Callable[[], Awaitable[None]]] | None = None) -> None:
        super().__init__()
        self.name = "sla-timers"
        self.sessions = sessions
        self.max_interval = self.poll_interval = poll_interval
        self.on_fired = on_fired if on_fired is not None else []

    async def step(self) -> None:
        try:
            fired = await fire_due_timers(self.sessions)
            recomputed = await recompute_stale(self.sessions)
            if recomputed:  # some may be due at their new moments already
                fired += await fire_due_timers(self.sessions)
        except OperationalError as error:
            if "database is locked" not in str(error):
                raise
            return  # another process holds SQLite's writer: the next scan catches up
        if fired:
            log.info("sla_timers_fired", count=fired)
            for callback in self.on_fired:
                await callback()
        soonest = await next_moment(self.sessions)
        wait = self.max_interval if soonest is None else (soonest - utcnow()).total_seconds()
        if recomputed == RECOMPUTE_BATCH:  # more clocks are behind: go on with the next batch soon
            wait = 0
        self.poll_interval = min(self.max_interval, max(0.01, wait))
