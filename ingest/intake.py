"""Durable intake for every channel: raw input is committed in its row before the edge acknowledges it.

An edge (a webhook endpoint, the SMTP ``DATA`` hook, the IMAP poller) calls
:func:`store_payload` and acknowledges (2xx, ``250``, ``\\Seen``) only after
the ``InboundPayload`` row holding the raw bytes is committed (group commit,
:class:`PayloadWriter`: one commit makes a whole batch of concurrent inputs
durable, no file fsync per request).  A processor takes the rows from there
(webhooks: :mod:`channels.webhooks.processor`; email:
:mod:`ingest.email_intake`); a row goes pending -> processed or pending ->
quarantined, and one still pending after a crash is processed on restart.

With ``dedupe`` (webhooks), a byte-identical body already committed for its
channel is not stored again: the sender lost our answer and retried, and
gets the first row's id back.  That answers "this exact body is durable";
whether a *message* is a duplicate is decided in ingest, during processing
(:mod:`ingest.duplicates`, and ``reject_duplicate`` for email), because a
redelivered message may come in a different body.  Email rows are never
deduplicated here: each accepted mail gets its row, and the pipeline's
duplicate rule absorbs a redelivery exactly as it would without intake.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import structlog
from prometheus_client import Histogram
from sqlalchemy import bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.background import finish_or_cancel
from frontdesk.model import InboundPayload, utcnow
from frontdesk.storage.database import StorageUnavailable, is_storage_outage
from frontdesk.storage.writer import HeldConnection, write_connection
from frontdesk.ingest.context import IngestContext

log = structlog.get_logger(__name__)

# What the group commit costs: when requests wait on their 2xx, these say whether it is the database.
COMMIT_SECONDS = Histogram("frontdesk_intake_commit_seconds",
                           "Time of one intake group commit (lookup, insert and commit), by writer.", ["writer"],
                           buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
COMMIT_INPUTS = Histogram("frontdesk_intake_commit_inputs", "Inputs made durable by one group commit, by writer.",
                          ["writer"], buckets=(1, 2, 5, 10, 25, 50, 100, 200))

PENDING, PROCESSED, QUARANTINED = "pending", "processed", "quarantined"


def body_digest(raw: bytes) -> str:
    """The SHA-256 a body is stored, recognised and blob-addressed under (computed once per request)."""
    return hashlib.sha256(raw).hexdigest()


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


PAYLOADS = InboundPayload.__table__
# The group commit's two statements, built once (and so compiled once, from SQLAlchemy's cache):
# building ``blob.in_(<the batch's digests>)`` anew coerced every value, per batch.
_KNOWN_BODIES = (select(PAYLOADS.c.id, PAYLOADS.c.channel, PAYLOADS.c.blob)
                 .where(PAYLOADS.c.blob.in_(bindparam("digests", expanding=True))).order_by(PAYLOADS.c.id))
_INSERT_PAYLOADS = insert(PAYLOADS).returning(PAYLOADS.c.id, sort_by_parameter_order=True)


async def commit_payload_rows(ctx: IngestContext, batch: list[dict[str, Any]], *,
                              dedupe: bool = True, held: HeldConnection | None = None) -> list[StoredPayload]:
    """Insert the batch's new bodies as pending rows and commit, in one transaction.

    With ``dedupe``, a body already stored for its channel (same SHA-256,
    found by one indexed lookup for the whole batch), or repeated inside
    the batch, is not inserted again: it answers as a duplicate of the
    first row.  Without, every input gets a row of its own.  Core
    statements in one transaction (:func:`write_connection`): this runs
    for every accepted mail and webhook, and an ORM session costs about as
    much CPU as the insert.  ``held``: the group commit's own connection,
    kept between batches.
    """
    received = utcnow()
    async with (held.transaction(ctx.sessions) if held is not None else write_connection(ctx.sessions)) as connection:
        known: dict[tuple[str, str], int] = {}
        if dedupe:
            digests = sorted({values["blob"] for values in batch})
            for payload_id, channel, blob in (await connection.execute(_KNOWN_BODIES, {"digests": digests})).all():
                known.setdefault((channel, blob), payload_id)
        # The first input with a given body owns its new row (every input, without dedupe).
        fresh: dict[Any, dict[str, Any]] = {}
        for index, values in enumerate(batch):
            key = (values["channel"], values["blob"]) if dedupe else index
            if key not in known and key not in fresh:
                fresh[key] = {"headers": {}, "envelope": {}, **values, "state": PENDING, "received_at": received}
        inserted: dict[Any, int] = {}
        if fresh:
            result = await connection.execute(_INSERT_PAYLOADS, list(fresh.values()))
            inserted = dict(zip(fresh, result.scalars().all()))
    if not dedupe:
        return [StoredPayload(inserted[index], duplicate=False) for index in range(len(batch))]
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

    def __init__(self, ctx: IngestContext, *, max_batch: int = 200, dedupe: bool = True,
                 name: str = "webhook-payload-writer") -> None:
        self.ctx = ctx
        self.max_batch = max_batch
        self.dedupe = dedupe
        self.name = name
        self._queue: asyncio.Queue[tuple[dict[str, Any], asyncio.Future[StoredPayload]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._held = HeldConnection()  # one connection for every group commit
        self._last_request = 0.0  # monotonic time of the latest request
        self._commit_seconds = COMMIT_SECONDS.labels(name)
        self._commit_inputs = COMMIT_INPUTS.labels(name)

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
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:  # a queue consumer never ends by itself: cancel it at once
            await finish_or_cancel(task, 0, name=self.name)
        await self._held.close()

    async def insert(self, values: dict[str, Any]) -> StoredPayload:
        if self._task is None:  # not started: commit alone
            return (await commit_payload_rows(self.ctx, [values], dedupe=self.dedupe))[0]
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
            started = time.perf_counter()
            try:
                stored = await commit_payload_rows(self.ctx, [values for values, _ in batch], dedupe=self.dedupe,
                                                   held=self._held)
                self._commit_seconds.observe(time.perf_counter() - started)
                self._commit_inputs.observe(len(batch))
            except Exception as error:  # noqa: BLE001 - every waiting request gets the error
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                stored = []
            for (_, future), result in zip(batch, stored):
                if not future.done():
                    future.set_result(result)


async def store_payload(ctx: IngestContext, *, channel: str, route: str, raw: bytes,
                        headers: dict[str, Any] | None = None, envelope: dict[str, Any] | None = None,
                        writer: PayloadWriter | None = None, recent: RecentPayloads | None = None,
                        digest: str | None = None) -> StoredPayload:
    """Make the body durable (committed in its row); raise ``StorageUnavailable`` when we cannot.

    A redelivery of byte-identical content is recognised here and stores
    nothing new: providers retry whenever our answer was lost.  ``digest``
    is :func:`body_digest` of ``raw`` when the edge already computed it.
    """
    digest = digest or body_digest(raw)
    if recent is not None and (known := recent.get(channel, digest)) is not None:
        return StoredPayload(known, duplicate=True)
    if not BLOB_PROBE.writable(ctx.blobs):
        raise StorageUnavailable("blob store cannot take writes")
    try:
        values = {"channel": channel, "route": route, "blob": digest, "body": raw, "headers": headers or {},
                  "envelope": envelope or {}}
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


async def claim_pending(session: AsyncSession, payload_id: int) -> InboundPayload | None:
    """Lock the row for the caller's transaction if it is still pending; ``None`` if it is not ours to process.

    On PostgreSQL ``FOR UPDATE SKIP LOCKED``: a row another process holds
    is skipped rather than waited for, and one it has settled is no longer
    pending once we get it, so two processors never both process a row.
    (SQLite writers take turns through :mod:`frontdesk.storage.writer`.)
    """
    return await session.scalar(
        select(InboundPayload).where(InboundPayload.id == payload_id, InboundPayload.state == PENDING)
        .with_for_update(skip_locked=True).execution_options(populate_existing=True))


def settle(row: InboundPayload, state: str) -> None:
    """Mark a claimed row done (``PROCESSED`` or ``QUARANTINED``), in the transaction that claimed it.

    Its body is dropped: by now it is in the blob store, where messages
    and quarantine items refer to it by digest.
    """
    row.state = state
    row.processed_at = utcnow()
    row.body = None
