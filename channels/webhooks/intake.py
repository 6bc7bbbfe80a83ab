"""Durable intake: store a raw webhook body before answering, and process stored bodies once.

The edge calls :func:`store_payload` and answers 2xx only after the blob is
fsynced and the ``InboundPayload`` row is committed.  A single
:class:`PayloadProcessor` worker then processes rows in arrival order (so a
thread's messages keep their order); rows still pending after a crash or
restart are picked up again by :meth:`PayloadProcessor.recover_pending`.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable

import structlog
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from channels.webhooks.config import WebhookConfig
from frontdesk.model import InboundPayload, QuarantinedItem, utcnow
from frontdesk.storage.database import StorageUnavailable, is_storage_outage
from ingest.context import IngestContext
from ingest.message import Envelope, InboundMessage, IngestOutcome, QuarantineMessage
from ingest.writer import writer_turn

log = structlog.get_logger(__name__)

PENDING, PROCESSED, QUARANTINED = "pending", "processed", "quarantined"

IngestFunction = Callable[[IngestContext, InboundMessage], Awaitable[IngestOutcome]]


@dataclass(frozen=True)
class StoredPayload:
    id: int
    duplicate: bool  # the exact same body was already stored for this channel


class RecentPayloads:
    """Digests of bodies this process has committed, so a redelivery skips the database.

    Only committed rows enter it, so an answer from here is as durable as
    one from the database; a miss falls back to the database lookup.
    """

    def __init__(self, size: int = 10_000) -> None:
        self._ids: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._size = size

    def get(self, channel: str, digest: str) -> int | None:
        return self._ids.get((channel, digest))

    def clear(self) -> None:
        self._ids.clear()

    def add(self, channel: str, digest: str, payload_id: int) -> None:
        self._ids[(channel, digest)] = payload_id
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass


@asynccontextmanager
async def write_transaction(ctx: IngestContext) -> AsyncIterator[AsyncSession]:
    """A write transaction that takes its turn with the ingest pipeline's.

    SQLite has one writer, and a transaction that read before another
    committed cannot upgrade to a write; the pipeline serialises its
    transactions per database for that reason, and ours join the same
    queue.  PostgreSQL runs them concurrently.
    """
    async with writer_turn(ctx):
        async with ctx.sessions.begin() as session:
            yield session


async def commit_payload_rows(ctx: IngestContext, batch: list[dict[str, Any]]) -> list[int]:
    """Insert pending payload rows and commit; one multi-row INSERT ... RETURNING per batch."""
    received = utcnow()
    rows = [{**values, "state": PENDING, "received_at": received} for values in batch]
    async with write_transaction(ctx) as session:
        result = await session.execute(
            insert(InboundPayload).returning(InboundPayload.id, sort_by_parameter_order=True), rows)
        return list(result.scalars().all())


class PayloadWriter:
    """Group commit: rows from concurrent requests are inserted and committed together.

    Each request still waits for the commit that holds its row before it
    is answered; under load one commit (one fsync) serves many requests.
    """

    def __init__(self, ctx: IngestContext, *, max_batch: int = 200, blob_threads: int = 8) -> None:
        self.ctx = ctx
        self.max_batch = max_batch
        # Blob writes end in fsync; concurrent fsyncs share journal commits,
        # so a few dedicated threads help.  Many more only fight the event
        # loop for the GIL (measured: 32 threads were slower than 8).
        self._blob_pool = ThreadPoolExecutor(blob_threads, thread_name_prefix="webhook-blob")
        self._queue: asyncio.Queue[tuple[dict[str, Any], asyncio.Future[int]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="webhook-payload-writer")

    async def stop(self) -> None:
        await _cancel(self._task)
        self._task = None
        self._blob_pool.shutdown(wait=True)

    async def put_blob(self, raw: bytes) -> str:
        return await asyncio.get_running_loop().run_in_executor(self._blob_pool, self.ctx.blobs.put_sync, raw)

    async def insert(self, values: dict[str, Any]) -> int:
        if self._task is None:  # not started: commit alone
            return (await commit_payload_rows(self.ctx, [values]))[0]
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((values, future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                ids = await commit_payload_rows(self.ctx, [values for values, _ in batch])
            except Exception as error:  # noqa: BLE001 - every waiting request gets the error
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), payload_id in zip(batch, ids):
                if not future.done():
                    future.set_result(payload_id)


async def store_payload(ctx: IngestContext, *, channel: str, route: str, raw: bytes,
                        headers: dict[str, Any], writer: PayloadWriter | None = None,
                        recent: RecentPayloads | None = None) -> StoredPayload:
    """Make the body durable (blob + committed row); raise ``StorageUnavailable`` when we cannot.

    A redelivery of byte-identical content is recognised here and stores
    nothing new: providers retry whenever our answer was lost.
    """
    digest = hashlib.sha256(raw).hexdigest()
    if recent is not None and (known := recent.get(channel, digest)) is not None:
        return StoredPayload(known, duplicate=True)
    try:
        if ctx.blobs.exists(digest):
            async with ctx.sessions() as session:
                known = await session.scalar(select(InboundPayload.id).where(
                    InboundPayload.channel == channel, InboundPayload.blob == digest).limit(1))
            if known is not None:
                if recent is not None:
                    recent.add(channel, digest, known)
                return StoredPayload(known, duplicate=True)
        values = {"channel": channel, "route": route, "blob": digest, "headers": headers}
        if writer is None:  # direct use (recovery tests, tools): no group commit
            await ctx.blobs.put(raw)
            payload_id = (await commit_payload_rows(ctx, [values]))[0]
        else:
            await writer.put_blob(raw)
            payload_id = await writer.insert(values)
    except StorageUnavailable:
        raise
    except Exception as error:
        if is_storage_outage(error):
            raise StorageUnavailable(str(error)) from error
        raise
    if recent is not None:
        recent.add(channel, digest, payload_id)
    return StoredPayload(payload_id, duplicate=False)


# (ctx, config, payload row, raw bytes, ingest) -> human-readable outcomes, one per event.
PayloadHandler = Callable[[IngestContext, WebhookConfig, InboundPayload, bytes, IngestFunction],
                          Awaitable[list[str]]]


class PayloadProcessor:
    """One background worker that turns stored payloads into messages, in arrival order."""

    def __init__(self, ctx: IngestContext, config: WebhookConfig, handlers: dict[str, PayloadHandler],
                 ingest: IngestFunction, *, outage_retry_seconds: float = 5.0) -> None:
        self.ctx = ctx
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
        await _cancel(self._task)
        self._task = None

    async def join(self) -> None:
        """Wait until every submitted payload has been processed (tests, shutdown)."""
        await self.queue.join()

    async def recover_pending(self) -> int:
        """Queue every row still pending: stored and answered 2xx, but never processed."""
        async with self.ctx.sessions() as session:
            ids = list((await session.scalars(
                select(InboundPayload.id).where(InboundPayload.state == PENDING).order_by(InboundPayload.id))).all())
        for payload_id in ids:
            self.submit(payload_id)
        if ids:
            log.info("webhook.recovered_pending", count=len(ids))
        return len(ids)

    async def _run(self) -> None:
        while True:
            payload_id = await self.queue.get()
            try:
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
        async with write_transaction(self.ctx) as session:
            row = await session.get(InboundPayload, payload_id)
            if row is not None:
                row.state = PROCESSED
                row.processed_at = utcnow()
        self._remember(payload_id, outcomes)
        log.info("webhook.processed", payload_id=payload_id, channel=payload.channel, outcomes=outcomes)
        return outcomes

    async def _quarantine(self, payload: InboundPayload, cause: str, detail: str) -> None:
        async with write_transaction(self.ctx) as session:
            session.add(QuarantinedItem(
                channel=payload.channel, source=f"webhook:{payload.channel}/{payload.route}",
                blob=payload.blob, cause=cause, detail=detail[:10_000],
                envelope={**Envelope(channel=payload.channel, source=f"webhook:{payload.channel}/{payload.route}",
                                     channel_key=payload.route, received_at=payload.received_at).to_dict(),
                          "inbound_payload_id": payload.id, "headers": payload.headers},
            ))
            row = await session.get(InboundPayload, payload.id)
            if row is not None:
                row.state = QUARANTINED
                row.processed_at = utcnow()
        self._remember(payload.id, [f"quarantined: {cause}"])
        log.warning("webhook.quarantined", payload_id=payload.id, cause=cause)

    def _remember(self, payload_id: int, outcomes: list[str]) -> None:
        self.outcomes[payload_id] = outcomes
        if len(self.outcomes) > 1000:  # a bounded window for logs and tests, not a store
            self.outcomes.pop(next(iter(self.outcomes)))
