"""The pipeline runner: runs a pipeline's stages and owns the transaction and every outcome.

Final outcomes that end a run early are exceptions (:class:`FinalOutcome`,
:class:`~ingest.message.QuarantineMessage`), caught in exactly one place,
:func:`run_pipeline`:

* success: commit, then run the context's on-commit callbacks;
* a storage outage, or a transaction that lost a race on every attempt:
  roll back and raise
  :class:`~frontdesk.storage.database.StorageUnavailable` so the edge
  answers "retry later" (SMTP 451, IMAP leaves the mail unseen, a webhook
  intake row stays pending);
* anything else (a bug, input we cannot handle): roll back and keep the
  raw input in the quarantine, with a cause, for replay.

Email runs in batches through :mod:`ingest.batch_runner`, which shares
this module's helpers; this runner runs one already-normalized message
(Messenger, chat, forms).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

from sqlalchemy.exc import DBAPIError

from frontdesk.ingest.context import IngestContext
from frontdesk.model import Channel
from frontdesk.ingest.message import Envelope, InboundMessage, IngestOutcome, QuarantineMessage
from frontdesk.ingest.persist import TicketWrites
from frontdesk.ingest.quarantine import store_quarantined
from frontdesk.ingest.stages import FinalOutcome, Ingest, Stage
from frontdesk.storage.database import StorageUnavailable, is_storage_outage, lost_a_race
from frontdesk.storage.writer import write_transaction

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    """One stage of a run, by the name a failure is reported under."""

    name: str
    run: Stage
    in_transaction: bool = True


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:4000]


# A transaction that lost a race (storage.database.lost_a_race) is re-run
# whole, which is safe because it was rolled back.
TRANSACTION_ATTEMPTS = 3


async def run_pipeline(
    ctx: IngestContext,
    steps: Sequence[Step],
    *,
    envelope: Envelope,
    raw: bytes | None,
    raw_blob: str,
    message: InboundMessage | None = None,
    channel: Channel | None = None,
    replay_of: int | None = None,
) -> IngestOutcome:
    """Run ``steps`` in one transaction; the single place final outcomes and failures are handled.

    The leading steps that are not ``in_transaction`` run before it opens.
    """
    stage_name = "begin"
    leading = 0
    while leading < len(steps) and not steps[leading].in_transaction:
        leading += 1
    try:
        state = Ingest(ctx, None, envelope, raw, raw_blob, message=message, channel=channel)
        try:
            for step in steps[:leading]:
                stage_name = step.name
                await step.run(state)
            for attempt in range(1, TRANSACTION_ATTEMPTS + 1):
                try:
                    async with write_transaction(ctx.sessions) as session:
                        state.session = session
                        state.writes = TicketWrites()  # afresh on a retried transaction
                        for step in steps[leading:]:
                            stage_name = step.name
                            await step.run(state)
                        stage_name = "store"
                        await state.writes.apply(session)
                        stage_name = "commit"
                    break
                except DBAPIError as error:
                    if attempt == TRANSACTION_ATTEMPTS or not lost_a_race(error):
                        raise
                    log.info("ingest: transaction lost a race with another (%s); retrying", describe(error))
            outcome = state.outcome or IngestOutcome("quarantined", reason="no outcome")
        except FinalOutcome as final:
            outcome = final.outcome
    except QuarantineMessage as error:
        cause, detail = error.cause, error.detail
    except Exception as error:  # noqa: BLE001 - the one place every failure is sorted out
        if is_storage_outage(error) or lost_a_race(error):
            # Still losing after the re-runs is contention, not this message's
            # fault: like an outage it is retried later (the intake row stays
            # pending), never quarantined, as the batch runner does.
            log.warning("ingest: storage unavailable in stage %s: %s", stage_name, describe(error))
            raise StorageUnavailable(f"storage unavailable during {stage_name}: {describe(error)}") from error
        log.exception("ingest: stage %s failed; quarantining", stage_name)
        cause, detail = f"{stage_name}_failed", describe(error)
    else:
        if outcome.kind != "duplicate":
            try:
                await ctx.committed()
            except Exception:  # noqa: BLE001 - the message is durable; automation polls anyway
                log.exception("ingest: on-commit callback failed after a successful commit")
        return outcome

    quarantine_id = await store_quarantined(
        ctx,
        channel=envelope.channel,
        source=envelope.source,
        blob=raw_blob,
        cause=cause,
        detail=f"stage {stage_name}: {detail}" if detail else f"stage {stage_name}",
        envelope=envelope_record(envelope, message),
        replay_of=replay_of,
    )
    assert quarantine_id is not None
    return IngestOutcome("quarantined", quarantine_id=quarantine_id, reason=cause)


def envelope_record(envelope: Envelope, message: InboundMessage | None) -> dict:
    record = envelope.to_dict()
    if message is not None and message.external_id:
        # Lets a webhook channel's replayer pick this message out of its payload.
        record["external_id"] = message.external_id
    return record


async def store_raw(ctx: IngestContext, raw: bytes) -> str:
    """Make the raw input durable in the blob store before anything else happens to it."""
    try:
        return await ctx.blobs.put(raw)
    except StorageUnavailable:
        raise
    except OSError as error:
        raise StorageUnavailable(f"blob store cannot write: {error}") from error
