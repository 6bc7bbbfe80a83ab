"""The quarantine: input the pipeline could not process, kept raw with a cause, listed and replayed.

Nothing is ever dropped: the raw bytes stay in the blob store and a
:class:`~frontdesk.model.QuarantinedItem` row says why.  ``frontdesk
quarantine list|replay`` calls :func:`list_quarantine` and
:func:`replay_quarantined`.  Replaying is idempotent: the pipeline's
duplicate check sees the message a first replay stored, so a second
replay adds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Awaitable, Callable, Mapping

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.model import QuarantinedItem, utcnow
from frontdesk.storage.database import StorageUnavailable, is_storage_outage
from frontdesk.storage.writer import write_transaction
from frontdesk.ingest.context import IngestContext
from frontdesk.ingest.intake import QUARANTINED, claim_pending, settle
from frontdesk.ingest.message import Envelope, IngestOutcome

# How to re-run one channel's raw input: ``replayer(ctx, raw, envelope, record, item_id)``.
Replayer = Callable[[IngestContext, bytes, Envelope, dict[str, Any], int], Awaitable[IngestOutcome]]

# Channel kind -> its replayer: email's is ingest.pipeline.replay_email, the
# webhook channels' come from channels.webhooks.replay (they know how to
# re-read their payloads).  The CLI builds the table (runtime.registries).
Replayers = Mapping[str, Replayer]


@dataclass(frozen=True)
class QuarantineEntry:
    """One quarantined item as the CLI shows it."""

    id: int
    channel: str
    source: str | None
    blob: str
    cause: str
    detail: str | None
    created_at: datetime
    replayed_at: datetime | None
    replay_outcome: str | None
    replay_attempts: int = 0
    last_replay_cause: str | None = None


def _describe_outcome(outcome: IngestOutcome) -> str:
    parts = [outcome.kind]
    if outcome.ticket_id is not None:
        parts.append(f"ticket={outcome.ticket_id}")
    if outcome.message_id is not None:
        parts.append(f"message={outcome.message_id}")
    if outcome.reason:
        parts.append(f"reason={outcome.reason}")
    return " ".join(parts)


async def add_quarantined(
    session: AsyncSession,
    *,
    channel: str,
    source: str | None,
    blob: str,
    cause: str,
    detail: str,
    envelope: dict[str, Any],
    replay_of: int | None = None,
) -> int:
    """Add a quarantined item in the caller's transaction; a failing replay updates its item instead.

    The one writer of quarantine rows: the pipeline runner (through
    :func:`store_quarantined`) and the webhook intake, which also marks its
    payload row in the same transaction, both call it.
    """
    if replay_of is not None:
        item = await session.get(QuarantinedItem, replay_of)
        if item is not None:
            # Still not processable: the item stays listed (and in replay
            # --all), with how often it was tried and why it failed last.
            _count_attempt(item, f"{cause}: {detail}")
            return item.id
    item = QuarantinedItem(channel=channel, source=(source or "")[:320] or None, blob=blob,
                           cause=cause[:50], detail=detail[:4000], envelope=envelope)
    session.add(item)
    await session.flush()
    return item.id


def _count_attempt(item: QuarantinedItem, failure: str | None) -> None:
    item.replay_attempts = (item.replay_attempts or 0) + 1
    item.last_replay_at = utcnow()
    if failure is not None:
        item.last_replay_cause = failure[:4000]


async def store_quarantined(ctx: IngestContext, *, intake_id: int | None = None, **item: Any) -> int | None:
    """:func:`add_quarantined` in a write transaction of its own.

    With ``intake_id`` the intake row is marked quarantined in the same
    transaction; if it is no longer pending (another processor settled it)
    nothing is added and the answer is ``None``.  Raises
    :class:`StorageUnavailable` if even this cannot be written: the caller
    must then not acknowledge the input.
    """
    try:
        async with write_transaction(ctx.sessions) as session:
            if intake_id is None:
                return await add_quarantined(session, **item)
            row = await claim_pending(session, intake_id)
            if row is None:
                return None
            item_id = await add_quarantined(session, **{**item, "envelope": {**item["envelope"],
                                                                              "inbound_payload_id": intake_id}})
            settle(row, QUARANTINED)
            return item_id
    except Exception as error:
        if is_storage_outage(error):
            raise StorageUnavailable(f"cannot write the quarantine: {error}") from error
        raise


async def list_quarantine(ctx: IngestContext, *, include_replayed: bool = False, cause: str | None = None,
                          limit: int = 100) -> list[QuarantineEntry]:
    """Quarantined items, oldest first; replayed ones only when asked for."""
    query = select(QuarantinedItem).order_by(QuarantinedItem.id).limit(limit)
    if not include_replayed:
        query = query.where(QuarantinedItem.replayed_at.is_(None))
    if cause is not None:
        query = query.where(QuarantinedItem.cause == cause)
    async with ctx.sessions() as session:
        items = (await session.scalars(query)).all()
    return [QuarantineEntry(i.id, i.channel, i.source, i.blob, i.cause, i.detail, i.created_at,
                            i.replayed_at, i.replay_outcome, i.replay_attempts or 0, i.last_replay_cause)
            for i in items]


async def replay_quarantined(ctx: IngestContext, quarantine_id: int, replayers: Replayers) -> IngestOutcome:
    """Run a quarantined item's raw input through its channel's replayer again and record what happened."""
    async with ctx.sessions() as session:
        item = await session.get(QuarantinedItem, quarantine_id)
    if item is None:
        raise LookupError(f"no quarantined item {quarantine_id}")
    replayer = replayers.get(item.channel)
    if replayer is None:
        raise LookupError(f"no replayer for {item.channel} items")
    raw = await ctx.blobs.get(item.blob)
    try:
        outcome = await replayer(ctx, raw, Envelope.from_dict(item.envelope), dict(item.envelope), item.id)
    except Exception as error:
        # A replayer that crashes (a bug, or storage going away) leaves the
        # item where it was, counted, with the error as its last cause.
        if not is_storage_outage(error):
            await _record_attempt(ctx, quarantine_id, failure=f"replay_error: {type(error).__name__}: {error}")
        raise
    if outcome.kind != "quarantined":
        await _record_attempt(ctx, quarantine_id, done=outcome)
    return outcome


async def _record_attempt(ctx: IngestContext, quarantine_id: int, *, failure: str | None = None,
                          done: IngestOutcome | None = None) -> None:
    async with write_transaction(ctx.sessions) as session:
        stored = await session.get(QuarantinedItem, quarantine_id)
        assert stored is not None
        _count_attempt(stored, failure)
        if done is not None:
            stored.replayed_at = utcnow()
            stored.replay_outcome = _describe_outcome(done)
