"""Durable intake: store a raw webhook body before answering, and process stored bodies once.

The edge calls :func:`store_payload` and answers 2xx only after the
``InboundPayload`` row holding the raw body is committed (group commit: one
commit makes a whole batch of concurrent bodies durable, no file fsync per
request).  A single :class:`PayloadProcessor` worker then processes rows in
arrival order (so a thread's messages keep their order), moving each body
to the content-addressed blob store before processing it and clearing the
column after; rows still pending after a crash or restart are picked up
again by :meth:`PayloadProcessor.recover_pending`.  The processor gives way
to waiting intake batches, so a burst is answered first and processed after.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import structlog
from sqlalchemy import insert, select

from frontdesk.background import finish_or_cancel
from frontdesk.channels.webhooks.config import WebhookConfig
from frontdesk.model import InboundPayload, utcnow
from frontdesk.storage.database import StorageUnavailable, is_storage_outage
from frontdesk.storage.writer import write_transaction
from frontdesk.ingest.context import IngestContext
from frontdesk.ingest.message import Envelope, InboundMessage, IngestOutcome, QuarantineMessage
from frontdesk.ingest.quarantine import add_quarantined

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


class BlobStoreProbe:
    """Whether the blob store can take writes, checked at most once a second.

    Intake no longer writes blobs (the body is committed in its row), but
    a body accepted while the blob store is down could not be processed
    until it returns: refusing with 503 lets the provider hold it instead.
    """

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._checked: dict[Any, tuple[float, bool]] = {}  # by blob store root

    def writable(self, blobs: Any) -> bool:
        now = time.monotonic()
        checked = self._checked.get(blobs.root)
        if checked is None or now - checked[0] > self.interval:
            checked = (now, self._probe(blobs.root))
            self._checked[blobs.root] = checked
        return checked[1]

    @staticmethod
    def _probe(root: Any) -> bool:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError:
            return False
        return os.access(root, os.W_OK | os.X_OK)


BLOB_PROBE = BlobStoreProbe()


async def commit_payload_rows(ctx: IngestContext, batch: list[dict[str, Any]]) -> list[StoredPayload]:
    """Insert the batch's new bodies as pending rows and commit, in one transaction.

    A body already stored for its channel (same SHA-256, found by one
    indexed lookup for the whole batch), or repeated inside the batch, is
    not inserted again: it answers as a duplicate of the first row.
    """
    received = utcnow()
    known: dict[tuple[str, str], int] = {}
    fresh: dict[tuple[str, str], dict[str, Any]] = {}
    async with write_transaction(ctx.sessions) as session:
        for payload_id, channel, blob in (await session.execute(
                select(InboundPayload.id, InboundPayload.channel, InboundPayload.blob)
                .where(InboundPayload.blob.in_({values["blob"] for values in batch}))
                .order_by(InboundPayload.id))).all():
            known.setdefault((channel, blob), payload_id)
        for values in batch:
            key = (values["channel"], values["blob"])
            if key not in known and key not in fresh:
                fresh[key] = {**values, "state": PENDING, "received_at": received}
        inserted: dict[tuple[str, str], int] = {}
        if fresh:
            result = await session.execute(
                insert(InboundPayload).returning(InboundPayload.id, sort_by_parameter_order=True), list(fresh.values()))
            inserted = dict(zip(fresh, result.scalars().all()))
    stored: list[StoredPayload] = []
    for values in batch:
        key = (values["channel"], values["blob"])
        if key in inserted and key in fresh:
            del fresh[key]  # the first request with this body owns the new row
            stored.append(StoredPayload(inserted[key], duplicate=False))
        else:
            stored.append(StoredPayload(known.get(key) or inserted[key], duplicate=True))
    return stored


class PayloadWriter:
    """Group commit: rows from concurrent requests are inserted and committed together.

    Each request still waits for the commit that holds its row before it
    is answered; under load one commit (one fsync) serves many requests.
    """

    def __init__(self, ctx: IngestContext, *, max_batch: int = 200) -> None:
        self.ctx = ctx
        self.max_batch = max_batch
        self._queue: asyncio.Queue[tuple[dict[str, Any], asyncio.Future[StoredPayload]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._last_request = 0.0  # monotonic time of the latest request

    async def idle(self, timeout: float, quiet: float = 0.05) -> None:
        """Return once no request has come for ``quiet`` seconds, or after ``timeout`` seconds at most.

        Under load a commit often finds only a few requests waiting, so
        "the queue is empty" is true between most requests: the processor
        waits for a real lull instead.
        """
        deadline = time.monotonic() + timeout
        while (now := time.monotonic()) < deadline:
            calm = now - self._last_request
            if calm >= quiet and self._queue.empty():
                return
            await asyncio.sleep(min(max(quiet - calm, 0.005), deadline - now))

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="webhook-payload-writer")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:  # a queue consumer never ends by itself: cancel it at once
            await finish_or_cancel(task, 0, name="webhook-payload-writer")

    async def insert(self, values: dict[str, Any]) -> StoredPayload:
        if self._task is None:  # not started: commit alone
            return (await commit_payload_rows(self.ctx, [values]))[0]
        future: asyncio.Future[StoredPayload] = asyncio.get_running_loop().create_future()
        self._last_request = time.monotonic()
        self._queue.put_nowait((values, future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            # One turn of the event loop lets requests already read off
            # their sockets join this commit instead of waiting for the next.
            await asyncio.sleep(0)
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                stored = await commit_payload_rows(self.ctx, [values for values, _ in batch])
            except Exception as error:  # noqa: BLE001 - every waiting request gets the error
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                stored = []
            for (_, future), result in zip(batch, stored):
                if not future.done():
                    future.set_result(result)


async def store_payload(ctx: IngestContext, *, channel: str, route: str, raw: bytes,
                        headers: dict[str, Any], writer: PayloadWriter | None = None,
                        recent: RecentPayloads | None = None) -> StoredPayload:
    """Make the body durable (committed in its row); raise ``StorageUnavailable`` when we cannot.

    A redelivery of byte-identical content is recognised here and stores
    nothing new: providers retry whenever our answer was lost.
    """
    digest = hashlib.sha256(raw).hexdigest()
    if recent is not None and (known := recent.get(channel, digest)) is not None:
        return StoredPayload(known, duplicate=True)
    if not BLOB_PROBE.writable(ctx.blobs):
        raise StorageUnavailable("blob store cannot take writes")
    try:
        values = {"channel": channel, "route": route, "blob": digest, "body": raw, "headers": headers}
        if writer is None:  # direct use (recovery tests, tools): no group commit
            stored = (await commit_payload_rows(ctx, [values]))[0]
        else:
            stored = await writer.insert(values)
    except StorageUnavailable:
        raise
    except Exception as error:
        if is_storage_outage(error):
            raise StorageUnavailable(str(error)) from error
        raise
    if recent is not None:
        recent.add(channel, digest, stored.id)
    return stored


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
                row.state = PROCESSED
                row.processed_at = utcnow()
                row.body = None  # now in the blob store
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
                row.state = QUARANTINED
                row.processed_at = utcnow()
                row.body = None  # now in the blob store, where the quarantine item points
        self._remember(payload.id, [f"quarantined: {cause}"])
        log.warning("webhook.quarantined", payload_id=payload.id, cause=cause)

    def _remember(self, payload_id: int, outcomes: list[str]) -> None:
        self.outcomes[payload_id] = outcomes
        if len(self.outcomes) > 1000:  # a bounded window for logs and tests, not a store
            self.outcomes.pop(next(iter(self.outcomes)))
