"""The payload processor: one background worker turning stored webhook payloads into ingest work, in batches, in arrival order.

Rows committed by the intake (:mod:`ingest.intake`) are processed in
batches of whatever is waiting (up to ``batch_size``), in arrival order
(so a thread's messages keep their order).  Each body is moved to the
content-addressed blob store first; the channel's handler
(:mod:`channels.webhooks.processing`) lists what the payload holds; the
messages of the whole batch go through the message pipeline in one
transaction (:func:`ingest.pipeline.ingest_messages`), and the batch's
rows are settled together after it.  A payload that cannot be processed
goes to the quarantine with a cause; a storage outage (or a transaction
that kept losing races) leaves the rows pending for a retry, and rows
still pending after a crash or restart are queued again by
:meth:`PayloadProcessor.recover_pending`.  A message stored before a
crash and processed again is a duplicate (:mod:`ingest.duplicates`).
"""

from __future__ import annotations

import asyncio
from collections import Counter

import structlog
from sqlalchemy import select, update

from frontdesk.channels.webhooks.config import WebhookConfig
from frontdesk.channels.webhooks.processing import ChannelRows, IngestMessages, PayloadHandler, Work, run_work
from frontdesk.background import finish_or_cancel
from frontdesk.ingest.intake import PENDING, PROCESSED, QUARANTINED, PayloadWriter, settle
from frontdesk.model import InboundPayload, utcnow
from frontdesk.model.channels import EMAIL
from frontdesk.storage.database import is_storage_outage
from frontdesk.storage.writer import write_transaction
from frontdesk.ingest.context import IngestContext
from frontdesk.ingest.quarantine import add_quarantined
from frontdesk.ingest.message import Envelope, QuarantineMessage

log = structlog.get_logger(__name__)

BATCH_SIZE = 200
# On SQLite a batch's transaction holds the database's one writer turn,
# which the intake's group commit needs before any request is answered:
# smaller batches keep that wait to a fraction of a second.
SQLITE_BATCH_SIZE = 25


class PayloadProcessor:
    """One background worker that turns stored payloads into messages, a batch at a time, in arrival order."""

    def __init__(self, ctx: IngestContext, config: WebhookConfig, handlers: dict[str, PayloadHandler],
                 ingest: IngestMessages, *, outage_retry_seconds: float = 5.0,
                 writer: PayloadWriter | None = None, max_yield_seconds: float = 0.0,
                 batch_size: int | None = None) -> None:
        self.ctx = ctx
        # Before each batch the processor may wait (at most
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
        if batch_size is None:
            sqlite = ctx.sessions.kw["bind"].dialect.name == "sqlite"
            batch_size = SQLITE_BATCH_SIZE if sqlite else BATCH_SIZE
        self.batch_size = batch_size
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
        if task is not None:  # a batch cut short stays pending; the next start recovers it
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
            ids = [await self.queue.get()]
            while len(ids) < self.batch_size and not self.queue.empty():
                ids.append(self.queue.get_nowait())
            try:
                if self.writer is not None:
                    await self.writer.idle(self.max_yield_seconds)
                await self.process_batch(ids)
            except Exception as error:  # storage outage: keep the rows pending and try again later
                log.warning("webhook.processing_deferred", payload_ids=ids, error=str(error))
                for payload_id in ids:
                    asyncio.get_running_loop().call_later(self.outage_retry_seconds, self.submit, payload_id)
            finally:
                for _ in ids:
                    self.queue.task_done()

    async def process_batch(self, payload_ids: list[int]) -> dict[int, list[str]]:
        """Process the stored payloads still pending among ``payload_ids``; their outcomes by id.

        One that cannot be processed is quarantined; re-raises only
        storage outages, leaving the rows pending for a retry.
        """
        async with self.ctx.sessions() as session:
            payloads = list((await session.scalars(
                select(InboundPayload).where(InboundPayload.id.in_(set(payload_ids)),
                                             InboundPayload.state == PENDING)
                .order_by(InboundPayload.id))).all())
        channels = ChannelRows(self.ctx)
        handled: list[tuple[InboundPayload, list[Work]]] = []
        for payload in payloads:
            try:
                handled.append((payload, await self._work_of(payload, channels)))
            except QuarantineMessage as refusal:
                await self._quarantine(payload, refusal.cause, refusal.detail)
        try:
            lines = await run_work(self.ctx, self.ingest, [work for _, work in handled])
        except Exception as error:
            if is_storage_outage(error) and not isinstance(error, FileNotFoundError):
                raise
            if len(handled) > 1:  # not one payload's fault that we know of: find it one payload at a time
                for payload, _ in handled:
                    await self.process_batch([payload.id])
                return {payload.id: self.outcomes.get(payload.id, []) for payload in payloads}
            [(payload, _)] = handled
            log.exception("webhook.processing_failed", payload_id=payload.id)
            await self._quarantine(payload, "processing_error", f"{type(error).__name__}: {error}")
            return {payload.id: self.outcomes[payload.id]}
        await self._settle([payload.id for payload, _ in handled])
        kinds: Counter[str] = Counter()
        for (payload, _), outcomes in zip(handled, lines):
            self._remember(payload.id, outcomes)
            kinds.update(line.split(":", 1)[0] for line in outcomes)
            log.debug("webhook.processed", payload_id=payload.id, channel=payload.channel, outcomes=outcomes)
        if handled:  # one line a batch: a burst brings thousands of payloads a second
            log.info("webhook.batch_processed", payloads=len(handled), first_id=handled[0][0].id,
                     last_id=handled[-1][0].id, outcomes=dict(kinds))
        return {payload.id: self.outcomes[payload.id] for payload in payloads}

    async def _work_of(self, payload: InboundPayload, channels: ChannelRows) -> list[Work]:
        """The payload's body into the blob store (messages and the quarantine refer to it by digest), then its work."""
        try:
            if payload.body is not None:
                raw = payload.body
                await self.ctx.blobs.put(raw)
            else:
                raw = await self.ctx.blobs.get(payload.blob)
            handler = self.handlers.get(payload.channel)
            if handler is None:
                raise QuarantineMessage("unknown_channel", f"no handler for channel {payload.channel!r}")
            return await handler(self.ctx, self.config, payload, raw, channels)
        except QuarantineMessage:
            raise
        except Exception as error:
            if is_storage_outage(error) and not isinstance(error, FileNotFoundError):
                raise
            log.exception("webhook.processing_failed", payload_id=payload.id)
            raise QuarantineMessage("processing_error", f"{type(error).__name__}: {error}") from error

    async def _settle(self, payload_ids: list[int]) -> None:
        """Mark the batch's rows processed and drop their bodies (now in the blob store), in one statement."""
        if not payload_ids:
            return
        async with write_transaction(self.ctx.sessions) as session:
            await session.execute(
                update(InboundPayload).where(InboundPayload.id.in_(payload_ids), InboundPayload.state == PENDING)
                .values(state=PROCESSED, processed_at=utcnow(), body=None))

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
