"""The in-process automation runner for ``frontdesk run`` without Kafka.

It consumes outbox rows not yet handled, in outbox order and in batches,
and applies them through the same :class:`automation.event_processor.EventProcessor`
the Kafka worker uses, around the same :class:`automation.handlers.AutomationHandler`
(a batch in one transaction; one event at a time when that fails).
It is woken after each commit that wrote events (register :meth:`wake_async`
in ``IngestContext.on_commit``) and polls briefly in case a wake-up was
missed or another process wrote the row.  A failing event is retried with
backoff; after ``max_attempts`` it becomes a ``DeadLetter`` and the runner
moves on.  A storage outage is not the event's fault: it is retried until it ends.
"""

from __future__ import annotations

from sqlalchemy import select, update

from frontdesk.automation.event_processor import EventProcessor, decode_row
from frontdesk.automation.handlers import AutomationHandler
from frontdesk.automation.services import AutomationServices
from frontdesk.background import Backoff, PollingLoop, RetryPolicy
from frontdesk.model import OutboxEvent, utcnow


class EmbeddedAutomation(PollingLoop):
    def __init__(self, services: AutomationServices, *, poll_interval: float = 1.0, max_attempts: int = 5,
                 first_delay: float = 0.2, max_delay: float = 10.0, batch_size: int = 100) -> None:
        super().__init__()
        self.name = "embedded-automation"
        self.services = services
        self.poll_interval = poll_interval
        self.max_attempts = max_attempts
        self.batch_size = batch_size
        self.processor = EventProcessor(
            AutomationHandler(services), services.sessions, name="embedded_automation",
            policy=RetryPolicy(max_attempts, Backoff(base=first_delay, cap=max_delay)),
        )

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
            if not rows or self.stopping:  # unhandled rows are picked up at the next start
                return total
            await self.processor.apply_batch([decode_row(event_id, body) for _, event_id, body in rows])
            # Handled (or dead-lettered) once apply_batch returned: a crash before
            # this update applies them again, and their effect keys make that a no-op.
            async with self.services.sessions.begin() as session:
                await session.execute(update(OutboxEvent).where(OutboxEvent.id.in_([row[0] for row in rows]))
                                      .values(handled_at=utcnow()))
            total += len(rows)
