"""The batch runner: runs a pipeline over a batch of mail or of channel messages, one transaction per batch.

The stages are the same named steps as ever (:mod:`ingest.stages`); this
runner gives them their shape (:func:`run_email_batch` for mail,
:func:`run_message_batch` for Messenger, chat and form messages, whose
raw payload is already in the blob store and whose stages look their
facts up in the batch's transaction, where the messages stored before
them in the batch are visible):

1. every raw mail to the blob store, then the stages that touch no
   database (parse, in the process pool; screen; attachment bytes) for
   all mails at once;
2. one write transaction: claim the batch's intake rows, read the facts
   every decision needs for the whole batch (:class:`ingest.email_batch.EmailBatch`),
   then, for each mail in arrival order, decide (channel, duplicate,
   thread: pure functions of those facts) and write (contact, message);
   each stored mail joins the facts, so the next one sees it; every intake
   row is settled and every failure quarantined in the same transaction.

One bad mail does not sink the batch.  A mail that fails before it wrote
anything (parsing, deciding) is quarantined with its cause and the rest
commit.  A mail that fails while writing rolls the batch back; the batch
is then run again one mail at a time, so only that one is quarantined.  A
storage outage, or a transaction that lost a race with another
(``storage.database.lost_a_race``) on every attempt, raises
:class:`~frontdesk.storage.database.StorageUnavailable` with nothing
settled: the intake rows stay pending and are retried, never quarantined.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Iterable, Protocol, Sequence

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.ingest.context import IngestContext
from frontdesk.ingest.email_batch import EmailBatch
from frontdesk.ingest.intake import PENDING, PROCESSED, QUARANTINED, settle
from frontdesk.ingest.message import Envelope, IngestOutcome, QuarantineMessage
from frontdesk.ingest.parse_pool import use_pool
from frontdesk.ingest.persist import TicketWrites
from frontdesk.ingest.quarantine import add_quarantined, store_quarantined
from frontdesk.ingest.runner import TRANSACTION_ATTEMPTS, Step, describe, envelope_record, store_raw
from frontdesk.ingest.stages import FinalOutcome, Ingest
from frontdesk.model import Channel, Contact, InboundPayload
from frontdesk.ingest.message import InboundMessage
from frontdesk.ingest.persist import Persisted
from frontdesk.storage.database import StorageUnavailable, is_storage_outage, lost_a_race
from frontdesk.storage.writer import write_transaction

log = logging.getLogger(__name__)

# The outcome of a mail whose intake row was not ours to process.
SKIPPED = "skipped"
INTAKE_TAKEN = "intake row already settled or held by another processor"


@dataclass(frozen=True)
class EmailItem:
    """One mail to ingest: its bytes and envelope, and the intake row or quarantined item it comes from."""

    raw: bytes
    envelope: Envelope
    intake_id: int | None = None
    replay_of: int | None = None


@dataclass(frozen=True)
class MessageItem:
    """One normalized channel message to ingest (its raw payload already in the blob store)."""

    message: InboundMessage
    channel: Channel | None = None  # its channel row, when the caller already looked it up
    replay_of: int | None = None  # the quarantined item being replayed
    intake_id: int | None = None  # settled by the webhook processor, not here: a payload holds several

    raw = None

    @property
    def envelope(self) -> Envelope:
        message = self.message
        return Envelope(channel=message.channel, source=message.source, channel_key=message.channel_key)


class BatchFacts(Protocol):
    """What the stages of one batch read once for the whole batch, and learn as it stores messages."""

    async def look_up(self, session: AsyncSession, messages: list[InboundMessage]) -> None: ...

    def remember(self, message: InboundMessage, stored: Persisted, contact: Contact | None) -> None: ...

    async def drop_unused_contacts(self, session: AsyncSession, used: Iterable[Contact | None]) -> None: ...


class _NoFacts:
    """The message pipeline's stages query in the batch's transaction, where earlier messages are visible."""

    async def look_up(self, session: AsyncSession, messages: list[InboundMessage]) -> None:
        return None

    def remember(self, message: InboundMessage, stored: Persisted, contact: Contact | None) -> None:
        return None

    async def drop_unused_contacts(self, session: AsyncSession, used: Iterable[Contact | None]) -> None:
        return None  # the stages made each contact in the transaction, for a message they stored


@dataclass
class _Run:
    """One mail's (or message's) way through a batch."""

    item: EmailItem | MessageItem
    state: Ingest
    stage: str = "begin"
    outcome: IngestOutcome | None = None
    cause: str | None = None  # quarantined, with detail
    detail: str = ""

    def fail(self, error: BaseException) -> None:
        if isinstance(error, QuarantineMessage):
            self.cause, detail = error.cause, error.detail
        else:
            log.error("ingest: stage %s failed; quarantining", self.stage, exc_info=error)
            self.cause, detail = f"{self.stage}_failed", describe(error)
        self.detail = f"stage {self.stage}: {detail}" if detail else f"stage {self.stage}"

    def restart(self) -> None:
        """Forget what a rolled-back transaction decided, keeping what came before it."""
        state = self.state
        state.session = state.channel = state.contact = state.match = state.stored = state.outcome = None
        self.outcome = None


class _WriteFailed(Exception):
    """A mail failed after it wrote in the batch's transaction: the batch rolls back."""

    def __init__(self, run: _Run, error: BaseException) -> None:
        super().__init__(run.stage)
        self.run, self.error = run, error


async def run_email_batch(ctx: IngestContext, steps: Sequence[Step], items: Sequence[EmailItem],
                          *, writing: frozenset[str]) -> list[IngestOutcome]:
    """Ingest ``items`` through ``steps``; their outcomes, in order (see the module docstring).

    ``writing`` names the in-transaction steps that write (after one of them
    has run for a mail, its failure rolls the batch back).  Raises only
    :class:`StorageUnavailable`.
    """
    if not items:
        return []
    batch = EmailBatch(ctx, pooled=use_pool(len(items)))
    runs = [_Run(item, Ingest(ctx, None, item.envelope, item.raw, "", email_batch=batch)) for item in items]
    for run in runs:
        run.state.raw_blob = await store_raw(ctx, run.item.raw)
    return await _run_batch(ctx, batch, runs, steps, writing)


async def run_message_batch(ctx: IngestContext, steps: Sequence[Step], items: Sequence[MessageItem],
                            *, writing: frozenset[str]) -> list[IngestOutcome]:
    """Ingest channel messages through ``steps`` in one transaction; their outcomes, in order.

    As :func:`run_email_batch`: a message that fails before writing is
    quarantined alone, a failed write reruns the batch one message at a
    time; raises only :class:`StorageUnavailable`.
    """
    if not items:
        return []
    runs = [_Run(item, Ingest(ctx, None, item.envelope, None, item.message.raw_blob, message=item.message,
                              channel=item.channel)) for item in items]
    return await _run_batch(ctx, _NoFacts(), runs, steps, writing)


async def _run_batch(ctx: IngestContext, batch: BatchFacts, runs: list[_Run], steps: Sequence[Step],
                     writing: frozenset[str]) -> list[IngestOutcome]:
    leading = 0
    while leading < len(steps) and not steps[leading].in_transaction:
        leading += 1
    await asyncio.gather(*(_before_transaction(run, steps[:leading]) for run in runs))
    await _process(ctx, batch, runs, steps[leading:], writing)
    if any(run.outcome.kind not in ("duplicate", "quarantined", SKIPPED) for run in runs if run.outcome):
        try:
            await ctx.committed()
        except Exception:  # noqa: BLE001 - the mail is durable; automation polls anyway
            log.exception("ingest: on-commit callback failed after a successful commit")
    return [run.outcome or IngestOutcome("quarantined", reason="no outcome") for run in runs]


async def _before_transaction(run: _Run, steps: Sequence[Step]) -> None:
    try:
        for step in steps:
            run.stage = step.name
            await step.run(run.state)
    except Exception as error:  # noqa: BLE001 - sorted out here: quarantined, or an outage raised
        if is_storage_outage(error):
            raise StorageUnavailable(f"storage unavailable during {run.stage}: {describe(error)}") from error
        run.fail(error)


async def _process(ctx: IngestContext, batch: BatchFacts, runs: list[_Run], steps: Sequence[Step],
                   writing: frozenset[str]) -> None:
    """The batch's transaction; after a failed write, one mail at a time."""
    try:
        await _transaction(ctx, batch, runs, steps, writing)
        return
    except _WriteFailed as failed:
        if len(runs) > 1:
            log.warning("ingest: a write failed in a batch of %d (stage %s); one mail at a time",
                        len(runs), failed.run.stage)
            for run in runs:
                run.restart()
                await _process(ctx, batch, [run], steps, writing)
            return
        run = failed.run
        run.fail(failed.error)
    # A single mail whose write failed: the quarantine, in a transaction of its own.
    run.restart()
    quarantine_id = await store_quarantined(ctx, intake_id=run.item.intake_id, **_quarantine_item(run))
    run.outcome = (IngestOutcome(SKIPPED, reason=INTAKE_TAKEN) if quarantine_id is None
                   else IngestOutcome("quarantined", quarantine_id=quarantine_id, reason=run.cause))


async def _transaction(ctx: IngestContext, batch: BatchFacts, runs: list[_Run], steps: Sequence[Step],
                       writing: frozenset[str]) -> None:
    for attempt in range(1, TRANSACTION_ATTEMPTS + 1):
        try:
            async with write_transaction(ctx.sessions) as session:
                await _run_in(session, batch, runs, steps, writing)
            return
        except _WriteFailed:
            raise
        except DBAPIError as error:
            if is_storage_outage(error):
                raise StorageUnavailable(f"storage unavailable: {describe(error)}") from error
            if lost_a_race(error) and attempt == TRANSACTION_ATTEMPTS:
                # Contention, not a mail's fault: retried later, like an outage.
                raise StorageUnavailable(f"lost a race {attempt} times: {describe(error)}") from error
            if not lost_a_race(error):
                # Not one mail's fault that we know of: find it one at a time.
                raise _WriteFailed(runs[0], error) from error
            log.info("ingest: transaction lost a race with another (%s); retrying", describe(error))
            for run in runs:
                run.restart()
        except Exception as error:
            if is_storage_outage(error):
                raise StorageUnavailable(f"storage unavailable: {describe(error)}") from error
            raise _WriteFailed(runs[0], error) from error


async def _run_in(session: AsyncSession, batch: BatchFacts, runs: list[_Run], steps: Sequence[Step],
                  writing: frozenset[str]) -> None:
    rows = await claim_rows(session, [run.item.intake_id for run in runs if run.item.intake_id is not None])
    live = []
    writes = TicketWrites()  # shared by the batch, applied once
    for run in runs:
        if run.item.intake_id is not None and run.item.intake_id not in rows:
            run.outcome = IngestOutcome(SKIPPED, reason=INTAKE_TAKEN)
        elif run.cause is None:
            run.state.session, run.state.writes = session, writes
            run.stage = "look_up"
            live.append(run)
    await batch.look_up(session, [run.state.inbound for run in live])
    # The mails' new rows are written together at the end (TicketWrites);
    # a read in between must not flush a change that points at one of them.
    with session.no_autoflush:
        for run in live:
            await _run_one(run, batch, steps, writing)
    try:
        await batch.drop_unused_contacts(session, [run.state.contact for run in live if run.state.stored is not None])
        await writes.apply(session)
    except Exception as error:
        if is_storage_outage(error) or lost_a_race(error):
            raise
        stored = [run for run in live if run.state.stored is not None]
        raise _WriteFailed(stored[-1] if stored else runs[0], error) from error
    for run in runs:
        row = rows.get(run.item.intake_id) if run.item.intake_id is not None else None
        if run.cause is not None:
            item = _quarantine_item(run)
            if row is not None:
                item["envelope"] = {**item["envelope"], "inbound_payload_id": row.id}
            quarantine_id = await add_quarantined(session, **item)
            run.outcome = IngestOutcome("quarantined", quarantine_id=quarantine_id, reason=run.cause)
        if row is not None:
            settle(row, QUARANTINED if run.cause is not None else PROCESSED)


async def _run_one(run: _Run, batch: BatchFacts, steps: Sequence[Step], writing: frozenset[str]) -> None:
    wrote = False
    try:
        for step in steps:
            run.stage = step.name
            wrote = wrote or step.name in writing
            await step.run(run.state)
    except FinalOutcome as final:
        run.outcome = final.outcome
        return
    except Exception as error:
        if is_storage_outage(error) or lost_a_race(error):
            raise  # the whole transaction's fate, not this mail's
        if wrote:
            raise _WriteFailed(run, error) from error
        run.fail(error)
        return
    state = run.state
    run.outcome = state.outcome
    if state.stored is not None:
        batch.remember(state.inbound, state.stored, state.contact)


async def claim_rows(session: AsyncSession, ids: list[int]) -> dict[int, InboundPayload]:
    """Lock the still-pending ones among ``ids`` for this transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL).

    A row another processor holds or has settled is not returned: not
    ours to process.  (SQLite writers take turns, :mod:`frontdesk.storage.writer`.)
    """
    if not ids:
        return {}
    rows = await session.scalars(
        select(InboundPayload).where(InboundPayload.id.in_(ids), InboundPayload.state == PENDING)
        .order_by(InboundPayload.id)
        .with_for_update(skip_locked=True).execution_options(populate_existing=True))
    return {row.id: row for row in rows}


def _quarantine_item(run: _Run) -> dict:
    envelope = run.item.envelope
    return dict(channel=envelope.channel, source=envelope.source, blob=run.state.raw_blob, cause=run.cause or "",
                detail=run.detail, envelope=envelope_record(envelope, run.state.message), replay_of=run.item.replay_of)
