"""The payload processor: one background worker turning stored webhook payloads into ingest work, in arrival order.

Rows committed by the intake (:mod:`ingest.intake`) are
processed one at a time in arrival order (so a thread's messages keep their
order).  Each body is moved to the content-addressed blob store before it
is processed and its column cleared after; rows still pending after a crash
or restart are queued again by :meth:`PayloadProcessor.recover_pending`.
What a payload becomes is the channel's handler's business
(:mod:`channels.webhooks.processing`); a payload that cannot be processed
goes to the quarantine with a cause, and a storage outage leaves it pending
for a retry.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

import structlog
from sqlalchemy import select

from frontdesk.channels.webhooks.config import WebhookConfig
from frontdesk.background import finish_or_cancel
from frontdesk.ingest.intake import PENDING, PROCESSED, QUARANTINED, PayloadWriter, settle
from frontdesk.model import InboundPayload
from frontdesk.model.channels import EMAIL
from frontdesk.storage.database import is_storage_outage
from frontdesk.storage.writer import write_transaction
from frontdesk.ingest.context import IngestContext
from frontdesk.ingest.quarantine import add_quarantined
from frontdesk.ingest.message import Envelope, IngestOutcome, QuarantineMessage

log = structlog.get_logger(__name__)

# ingest.pipeline.ingest_message, or a stand-in in tests; called as
# ingest(ctx, message, channel=<the Channel row the processor looked up>).
IngestFunction = Callable[..., Awaitable[IngestOutcome]]

# (ctx, config, payload row, raw bytes, ingest) -> human-readable outcomes, one per event.
PayloadHandler = Callable[[IngestContext, WebhookConfig, InboundPayload, bytes, IngestFunction],
                          Awaitable[list[str]]]


class PayloadProcessor:
    """One background worker that turns stored payloads into messages, in arrival order."""

    def __init__(self, ctx: IngestContext, config: WebhookConfig, handlers: dict[str, PayloadHandler],
                 ingest: IngestFunction, *, outage_retry_seconds: float = 5.0,
                 writer: PayloadWriter | None = None, max_yield_seconds: float = 0.0) -> None:
        self.ctx = ctx
        # Before each payload the processor may wait (at most
        # max_yield_seconds) for a lull in requests.  Off by default: any
        # wait caps processing under a steady load below what the pipeline
        # can do, and the backlog, though durable, would then never drain;
        # the processor already gives way to intake at each of its awaits.
        self.writer = writer
        self.max_yield_seconds = max_yield_seconds
        self.config = config
        self.handlers = handlers
        self.ingest = ingest
        self.outage_retry_seconds = outage_retry_seconds
        self.queue: asyncio.Queue[int] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.outcomes: dict[int, list[str]] = {}  # recent outcomes by payload id (logs, tests)

    def submit(self, payload_id: int) -> None:
        self.queue.put_nowait(payload_id)

    async def start(self, *, recover: bool = True) -> None:
        if recover:
            await self.recover_pending()
        self._task = asyncio.create_task(self._run(), name="webhook-payload-processor")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:  # a payload cut short stays pending; the next start recovers it
            await finish_or_cancel(task, 0, name="webhook-payload-processor")

    async def join(self) -> None:
        """Wait until every submitted payload has been processed (tests, shutdown)."""
        await self.queue.join()

    async def recover_pending(self) -> int:
        """Queue every webhook row still pending: stored and answered 2xx, but never processed.

        Email rows share the table and have their own processor (:mod:`ingest.email_intake`).
        """
        async with self.ctx.sessions() as session:
            ids = list((await session.scalars(
                select(InboundPayload.id).where(InboundPayload.state == PENDING, InboundPayload.channel != EMAIL)
                .order_by(InboundPayload.id))).all())
        for payload_id in ids:
            self.submit(payload_id)
        if ids:
            log.info("webhook.recovered_pending", count=len(ids))
        return len(ids)

    async def _run(self) -> None:
        while True:
            payload_id = await self.queue.get()
            try:
                if self.writer is not None:
                    await self.writer.idle(self.max_yield_seconds)
                await self.process(payload_id)
            except Exception as error:  # storage outage: keep the row pending and try again later
                log.warning("webhook.processing_deferred", payload_id=payload_id, error=str(error))
                asyncio.get_running_loop().call_later(self.outage_retry_seconds, self.submit, payload_id)
            finally:
                self.queue.task_done()

    async def process(self, payload_id: int) -> list[str]:
        """Process one stored payload; quarantine it when it cannot be processed.

        Re-raises only storage outages, leaving the row pending for a retry.
        """
        async with self.ctx.sessions() as session:
            payload = await session.get(InboundPayload, payload_id)
        if payload is None or payload.state != PENDING:
            return []
        try:
            if payload.body is not None:
                # Into the content-addressed store first: messages and the
                # quarantine refer to the body by its digest.
                raw = payload.body
                await self.ctx.blobs.put(raw)
            else:
                raw = await self.ctx.blobs.get(payload.blob)
            handler = self.handlers.get(payload.channel)
            if handler is None:
                raise QuarantineMessage("unknown_channel", f"no handler for channel {payload.channel!r}")
            outcomes = await handler(self.ctx, self.config, payload, raw, self.ingest)
        except QuarantineMessage as refusal:
            await self._quarantine(payload, refusal.cause, refusal.detail)
            return [f"quarantined: {refusal.cause}"]
        except Exception as error:
            if is_storage_outage(error) and not isinstance(error, FileNotFoundError):
                raise
            log.exception("webhook.processing_failed", payload_id=payload_id)
            await self._quarantine(payload, "processing_error", f"{type(error).__name__}: {error}")
            return ["quarantined: processing_error"]
        async with write_transaction(self.ctx.sessions) as session:
            row = await session.get(InboundPayload, payload_id)
            if row is not None:
                settle(row, PROCESSED)
        self._remember(payload_id, outcomes)
        log.info("webhook.processed", payload_id=payload_id, channel=payload.channel, outcomes=outcomes)
        return outcomes

    async def _quarantine(self, payload: InboundPayload, cause: str, detail: str) -> None:
        async with write_transaction(self.ctx.sessions) as session:
            source = f"webhook:{payload.channel}/{payload.route}"
            await add_quarantined(
                session, channel=payload.channel, source=source, blob=payload.blob, cause=cause, detail=detail,
                envelope={**Envelope(channel=payload.channel, source=source, channel_key=payload.route,
                                     received_at=payload.received_at).to_dict(),
                          "inbound_payload_id": payload.id, "headers": payload.headers},
            )
            row = await session.get(InboundPayload, payload.id)
            if row is not None:
                settle(row, QUARANTINED)
        self._remember(payload.id, [f"quarantined: {cause}"])
        log.warning("webhook.quarantined", payload_id=payload.id, cause=cause)

    def _remember(self, payload_id: int, outcomes: list[str]) -> None:
        self.outcomes[payload_id] = outcomes
        if len(self.outcomes) > 1000:  # a bounded window for logs and tests, not a store
            self.outcomes.pop(next(iter(self.outcomes)))
