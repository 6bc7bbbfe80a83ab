"""The in-process automation runner for ``frontdesk run`` without Kafka.

It consumes outbox rows not yet handled, in outbox order, and calls the
same :func:`automation.handlers.handle_event` the Kafka worker calls.  It is
woken after each commit that wrote events (register :meth:`wake_async` in
``IngestContext.on_commit``) and polls briefly in case a wake-up was missed
or another process wrote the row.  A failing event is retried with backoff;
after ``max_attempts`` it becomes a ``DeadLetter`` and the runner moves on.
A storage outage is not the event's fault: it is retried until it ends.
"""

from __future__ import annotations

import asyncio
import random

import structlog
from sqlalchemy import select, update

from frontdesk.automation.dead_letters import record_dead_letter
from frontdesk.automation.handlers import handle_event
from frontdesk.automation.services import AutomationServices
from frontdesk.events import DomainEvent, EventSchemaError
from frontdesk.model import OutboxEvent, utcnow
from frontdesk.storage.database import is_storage_outage
from frontdesk.outbound.polling import PollingLoop

log = structlog.get_logger(__name__)


class EmbeddedAutomation(PollingLoop):
    def __init__(self, services: AutomationServices, *, poll_interval: float = 1.0, max_attempts: int = 5,
                 first_delay: float = 0.2, max_delay: float = 10.0, batch_size: int = 100) -> None:
        super().__init__()
        self.name = "embedded-automation"
        self.services = services
        self.poll_interval = poll_interval
        self.max_attempts = max_attempts
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.batch_size = batch_size

    async def step(self) -> None:
        await self.run_until_idle()

    async def run_until_idle(self) -> int:
        """Handle unhandled outbox rows, including the ones handling writes, until none is left."""
        total = 0
        while True:
            async with self.services.sessions() as session:
                rows = (await session.execute(
                    select(OutboxEvent.id, OutboxEvent.event_id, OutboxEvent.body)
                    .where(OutboxEvent.handled_at.is_(None))
                    .order_by(OutboxEvent.id).limit(self.batch_size))).all()
            if not rows:
                return total
            for row_id, event_id, body in rows:
                if self.stopping:  # unhandled rows are picked up at the next start
                    return total
                await self._handle_row(row_id, event_id, body)
                total += 1

    def _delay(self, attempt: int) -> float:
        return min(self.max_delay, self.first_delay * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)

    async def _handle_row(self, row_id: int, event_id: str, body: dict) -> None:
        try:
            event = DomainEvent.from_dict(body)
        except (EventSchemaError, ValueError) as error:
            await self._dead_letter(row_id, event_id, body, f"undecodable: {error}", 1)
            return
        failures = 0
        outages = 0
        while True:
            try:
                await handle_event(self.services, event)
                break
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if is_storage_outage(error):
                    outages += 1
                    log.warning("embedded_automation_outage", event_id=event.id, error=repr(error))
                    await asyncio.sleep(self._delay(min(outages, 8)))
                    continue
                failures += 1
                if failures >= self.max_attempts:
                    log.error("embedded_automation_dead_letter", event_id=event.id, type=event.type,
                              ticket_id=event.ticket_id, attempts=failures, error=repr(error))
                    await self._dead_letter(row_id, event_id, body, f"{type(error).__name__}: {error}"[:4000],
                                            failures)
                    return
                log.warning("embedded_automation_retry", event_id=event.id, attempt=failures, error=repr(error))
                await asyncio.sleep(self._delay(failures))
        await self._mark_handled(row_id)

    async def _dead_letter(self, row_id: int, event_id: str, body: dict, error: str, attempts: int) -> None:
        await record_dead_letter(self.services.sessions, event_id=event_id, body=body, error=error,
                                 attempts=attempts)
        await self._mark_handled(row_id)

    async def _mark_handled(self, row_id: int) -> None:
        async with self.services.sessions.begin() as session:
            await session.execute(update(OutboxEvent).where(OutboxEvent.id == row_id).values(handled_at=utcnow()))
