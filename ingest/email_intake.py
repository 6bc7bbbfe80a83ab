"""Email behind the durable intake: edges commit raw mail in an intake row, one processor runs the pipeline.

:meth:`EmailIntake.accept` is what the SMTP and IMAP edges call: it commits
the raw bytes and the envelope (mail from, rcpt tos, peer, received at) in
an ``InboundPayload`` row (group commit across concurrent sessions,
:class:`ingest.intake.PayloadWriter`) and returns once that row is durable;
only then does SMTP answer ``250`` and IMAP mark the mail ``\\Seen``.

Behind it, one background task processes pending email rows in arrival
order, in batches of up to ``batch_size`` (whatever is waiting), each
batch through the email pipeline in one transaction
(:func:`ingest.pipeline.ingest_emails`, :mod:`ingest.batch_runner`).  The
transaction claims the batch's rows (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so two daemons never process the same row) and settles them
before it commits, so the messages and "processed" are durable together.
Rows still pending at start-up are processed first.  A mail that cannot be
processed goes to the quarantine with its cause and the rest of the batch
commits; a storage outage leaves the batch pending and the processor
tries again at its next poll.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

import structlog
from sqlalchemy import select

from frontdesk.background import PollingLoop
from frontdesk.model import InboundPayload
from frontdesk.model.channels import EMAIL
from frontdesk.storage.database import StorageUnavailable
from frontdesk.ingest.batch_runner import EmailItem
from frontdesk.ingest.context import IngestContext
from frontdesk.ingest.intake import PENDING, PayloadWriter, store_payload
from frontdesk.ingest.message import Envelope, IngestOutcome
from frontdesk.ingest.quarantine import store_quarantined

log = structlog.get_logger(__name__)

# ingest.pipeline.ingest_emails, or a stand-in in tests: a batch of mail
# in, their outcomes (in order) out.
IngestEmail = Callable[[IngestContext, list[EmailItem]], Awaitable[list[IngestOutcome]]]

BATCH_SIZE = 100


class EmailIntake(PollingLoop):
    """The email intake: ``accept`` at the edges, a batched processor behind them."""

    name = "email-intake-processor"

    def __init__(self, ctx: IngestContext, *, ingest: IngestEmail | None = None, batch_size: int = BATCH_SIZE,
                 paused: bool = False, poll_interval: float = 5.0) -> None:
        super().__init__()
        if ingest is None:
            from frontdesk.ingest.pipeline import ingest_emails

            ingest = ingest_emails
        self.ctx = ctx
        self.ingest = ingest
        self.batch_size = batch_size
        # Accept and commit but never process: for tests that kill the
        # daemon between the 250 and processing.
        self.paused = paused
        # A row committed by another daemon wakes nobody here, and a storage
        # outage leaves rows pending: the poll finds both.
        self.poll_interval = poll_interval
        self.writer = PayloadWriter(ctx, dedupe=False, name="email-intake-writer")
        self._idle = asyncio.Event()
        self.outcomes: dict[int, IngestOutcome] = {}  # recent outcomes by intake row (logs, tests)

    async def start(self) -> None:
        await self.writer.start()
        if not self.paused:
            await super().start()  # its first step processes the rows left pending by the last run

    async def stop(self, grace: float = 30.0) -> None:
        """Stop processing (the mail in hand finishes within ``grace``), then the writer."""
        await super().stop(grace)
        await self.writer.stop()

    async def accept(self, raw: bytes, envelope: Envelope) -> int:
        """Commit the raw mail and its envelope as a pending intake row; return the row's id.

        Raises :class:`StorageUnavailable` when it cannot be made durable
        (the edge answers 451 / leaves the mail unseen).
        """
        stored = await store_payload(self.ctx, channel=EMAIL, route=envelope.source, raw=raw,
                                     envelope=envelope.to_dict(), writer=self.writer)
        self.wake()
        return stored.id

    def wake(self) -> None:
        self._idle.clear()
        super().wake()

    async def drained(self) -> None:
        """Wait until the processor has found nothing pending since the last ``accept`` (tests, tools)."""
        await self._idle.wait()

    async def step(self) -> None:
        while not self.stopping and await self.process_batch():
            pass
        if not self.stopping and not self._wake.is_set():
            self._idle.set()

    async def pending_batch(self) -> list[InboundPayload]:
        """The oldest pending email rows, at most ``batch_size``, in arrival order, with their bodies."""
        async with self.ctx.sessions() as session:
            return list((await session.scalars(
                select(InboundPayload).where(InboundPayload.channel == EMAIL, InboundPayload.state == PENDING)
                .order_by(InboundPayload.id).limit(self.batch_size))).all())

    async def process_batch(self) -> int:
        """Process one batch of pending rows in one pipeline run; how many there were (0: nothing waiting).

        Raises only storage outages, which leave the rows pending.
        """
        rows = await self.pending_batch()
        if not rows or self.stopping:  # what is left stays pending for the next start
            return 0
        items: list[EmailItem] = []
        for row in rows:
            # None: settled meanwhile (by another daemon), and then in the blob store.
            raw = row.body if row.body is not None else await self.ctx.blobs.get(row.blob)
            try:
                envelope = Envelope.from_dict(row.envelope)
            except Exception as error:  # noqa: BLE001 - an envelope we cannot read is this row's alone
                log.exception("email_intake.unreadable_envelope", intake_id=row.id)
                self._settled(row.id, await self._quarantine(row, raw, f"{type(error).__name__}: {error}"))
                continue
            items.append(EmailItem(raw, envelope, intake_id=row.id))
        outcomes = await self.ingest(self.ctx, items)
        for item, outcome in zip(items, outcomes):
            assert item.intake_id is not None
            self._settled(item.intake_id, outcome)
        return len(rows)

    def _settled(self, intake_id: int, outcome: IngestOutcome) -> None:
        self._remember(intake_id, outcome)
        log.info("email_intake.processed", intake_id=intake_id, outcome=outcome.kind, ticket_id=outcome.ticket_id,
                 message_id=outcome.message_id, quarantine_id=outcome.quarantine_id)

    async def _quarantine(self, row: InboundPayload, raw: bytes, detail: str) -> IngestOutcome:
        try:
            await self.ctx.blobs.put(raw)
        except OSError as error:
            raise StorageUnavailable(f"blob store cannot write: {error}") from error
        envelope: dict[str, Any] = dict(row.envelope or {})
        envelope.setdefault("channel", EMAIL)
        envelope.setdefault("source", row.route)
        quarantine_id = await store_quarantined(
            self.ctx, intake_id=row.id, channel=EMAIL, source=row.route, blob=row.blob,
            cause="processing_error", detail=detail, envelope=envelope)
        if quarantine_id is None:  # another processor settled the row meanwhile
            return IngestOutcome("skipped", reason="intake row already settled")
        return IngestOutcome("quarantined", quarantine_id=quarantine_id, reason="processing_error")

    def _remember(self, intake_id: int, outcome: IngestOutcome) -> None:
        self.outcomes[intake_id] = outcome
        if len(self.outcomes) > 1000:  # a bounded window for logs and tests, not a store
            self.outcomes.pop(next(iter(self.outcomes)))
