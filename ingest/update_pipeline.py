"""The update pipelines and their runner: one :class:`~ingest.updates.MessageUpdate` applied in one transaction.

Beside the message pipelines of :mod:`ingest.pipeline`, each update kind
has its own small pipeline, an ordered tuple of stage names.  A stage that
decides what becomes of the update raises :class:`UpdateSettled`; the
runner, :func:`apply_update`, owns the transaction: it commits, and after a
commit that recorded events it runs the context's on-commit callbacks.
Any other error rolls back and propagates: the caller keeps the raw payload
(the webhook processor retries on a storage outage and quarantines the
payload otherwise).

What the stages do: receipts move our outbound messages forward
(``delivery_state`` and their ``deliveries`` rows; states only move
forward, ``failed`` is never touched) and record one
``message.delivery_updated`` event per moved message; an echo of our own
send marks it sent and records its provider id, an echo of a send made
elsewhere is stored as an outbound agent message; an edit or an unsend is
noted on the customer's stored message, whose text is kept (an agent may
already have answered it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.events import SYSTEM, Actor, MessageDeliveryUpdated
from frontdesk.model import Conversation, Delivery, Message
from frontdesk.model.messages import INBOUND, OUTBOUND
from frontdesk.outbox import record_events
from frontdesk.tickets.search_index import refresh_ticket_index
from frontdesk.ingest.context import IngestContext
from frontdesk.ingest.duplicates import known_message
from frontdesk.ingest.updates import DELIVERED, ECHO, EDITED, READ, UNSENT, MessageUpdate
from frontdesk.storage.writer import write_transaction

# Delivery states only move forward; "failed" is final and never touched.
STATE_ORDER = {None: 0, "queued": 1, "deferred": 1, "sent": 2, "delivered": 3, "read": 4}


class UpdateSettled(Exception):
    """A stage has decided what becomes of the update; no later stage runs."""

    def __init__(self, result: str) -> None:
        super().__init__(result)
        self.result = result


@dataclass
class UpdateRun:
    """What the stages of one update share."""

    ctx: IngestContext
    update: MessageUpdate
    session: AsyncSession | None = None
    targets: list[Message] = field(default_factory=list)  # the stored messages the update concerns
    events_recorded: bool = False

    @property
    def db(self) -> AsyncSession:
        assert self.session is not None, "an update stage ran outside the transaction"
        return self.session


UpdateStage = Callable[[UpdateRun], Awaitable[None]]


async def _advance(run: UpdateRun, state: str, at: datetime | None) -> int:
    """Move each target (and its deliveries) forward to ``state``, one event each; return how many moved."""
    moved = [m for m in run.targets if m.delivery_state != "failed"
             and STATE_ORDER.get(m.delivery_state, 0) < STATE_ORDER[state]]
    for message in moved:
        message.delivery_state = state
        message.extra = {**(message.extra or {}), f"{state}_at": (at or datetime.now(timezone.utc)).isoformat()}
    if moved:
        await run.db.execute(
            update(Delivery)
            .where(Delivery.message_id.in_([m.id for m in moved]),
                   Delivery.state.in_(("queued", "deferred", "sent", "delivered")))
            .values(state=state)
        )
        # The same event the delivery loop records for sent / failed.
        await record_events(run.db, *(MessageDeliveryUpdated(
            ticket_id=message.ticket_id, actor=Actor(SYSTEM), message_id=message.id, channel=message.channel,
            state=state, source="receipt",
        ) for message in moved))
        run.events_recorded = True
    return len(moved)


# -- stages -----------------------------------------------------------------

async def find_receipt_targets(run: UpdateRun) -> None:
    """Our outbound messages the receipt names by id, and those in the thread sent up to its watermark."""
    change = run.update
    targets: dict[int, Message] = {}
    if change.receipt_message_ids:
        targets.update({m.id: m for m in await run.db.scalars(select(Message).where(
            Message.channel_id == change.channel_id, Message.direction == OUTBOUND,
            Message.external_id.in_(change.receipt_message_ids)))})
    if change.watermark is not None:
        in_thread = await run.db.scalars(
            select(Message)
            .join(Conversation, Message.conversation_id == Conversation.id)
            .where(Conversation.channel_id == change.channel_id, Conversation.thread_key == change.thread_key,
                   Message.direction == OUTBOUND,
                   or_(Message.sent_at <= change.watermark,
                       Message.sent_at.is_(None) & (Message.created_at <= change.watermark))))
        targets.update({m.id: m for m in in_thread})
    run.targets = list(targets.values())


async def advance_to_receipt_state(run: UpdateRun) -> None:
    state = run.update.kind  # DELIVERED or READ: the names of the delivery states they move to
    moved = await _advance(run, state, run.update.watermark or run.update.sent_at)
    if not run.targets:
        raise UpdateSettled("matched none of our messages")
    raise UpdateSettled(f"{moved} of {len(run.targets)} matched messages now {state}")


async def find_our_send(run: UpdateRun) -> None:
    """The echo names our message (the marker we put in the send): that message, on this channel, outbound."""
    change = run.update
    if change.our_message_id is not None:
        ours = await run.db.get(Message, change.our_message_id)
        if ours is not None and ours.channel_id == change.channel_id and ours.direction == OUTBOUND:
            run.targets = [ours]


async def reject_known_echo(run: UpdateRun) -> None:
    """A send made elsewhere is stored once: the duplicate rule of :mod:`ingest.duplicates`."""
    if not run.targets and await known_message(run.db, run.update.channel_id, run.update.provider_message_id):
        raise UpdateSettled("duplicate: a message with this mid is already stored")


async def confirm_our_send(run: UpdateRun) -> None:
    """Our own send coming back: it is sent, under the provider's id."""
    if not run.targets:
        return
    [ours] = run.targets
    if ours.external_id is None:
        ours.external_id = run.update.provider_message_id
    await _advance(run, "sent", run.update.sent_at)
    raise UpdateSettled(f"echo of our message {ours.id}")


async def record_outside_send(run: UpdateRun) -> None:
    """A send from the provider's own inbox or another app: an outbound agent message on the person's conversation."""
    change = run.update
    conversation = await run.db.scalar(
        select(Conversation).where(Conversation.channel_id == change.channel_id,
                                   Conversation.thread_key == change.thread_key)
        .order_by(Conversation.id.desc()).limit(1))
    run.db.add(Message(
        conversation_id=conversation.id if conversation else None,
        ticket_id=conversation.ticket_id if conversation else None,
        direction=OUTBOUND, channel=change.channel, channel_id=change.channel_id,
        external_id=change.provider_message_id, text_body=change.text, reply_text=change.text,
        sent_at=change.sent_at, author_kind="agent", delivery_state="sent",
        source=change.source, raw_blob=change.raw_blob, content_hash=change.content_hash, extra=dict(change.extra),
    ))
    await refresh_ticket_index(run.db, conversation.ticket_id if conversation else None)
    raise UpdateSettled("echo recorded as an outbound message sent from outside Frontdesk" + (
        "" if conversation else " (no conversation with this person yet)"))


async def find_customer_message(run: UpdateRun) -> None:
    """The customer's stored message an edit or unsend is about."""
    change = run.update
    message = None
    if change.provider_message_id:
        message = await run.db.scalar(select(Message).where(
            Message.channel_id == change.channel_id, Message.external_id == change.provider_message_id,
            Message.direction == INBOUND).limit(1))
    if message is None:
        what = "edit" if change.kind == EDITED else "unsend"
        raise UpdateSettled(f"ignored: {what} of a message we do not hold")
    run.targets = [message]


async def note_edit(run: UpdateRun) -> None:
    """Append the edit to ``extra.edits``; the original text stays (an agent may have answered it)."""
    [message] = run.targets
    edits = list((message.extra or {}).get("edits") or [])
    entry: dict[str, Any] = {"text": run.update.text, "num_edit": run.update.edit_count,
                             "at": run.update.sent_at.isoformat() if run.update.sent_at else None}
    if entry in edits:  # the same edit delivered again
        raise UpdateSettled("duplicate: edit already noted")
    message.extra = {**(message.extra or {}), "edits": [*edits, entry]}
    raise UpdateSettled(f"edit noted on message {message.id}")


async def note_unsend(run: UpdateRun) -> None:
    """Flag ``extra.deleted_by_sender_at``; the content is kept for the record."""
    [message] = run.targets
    if (message.extra or {}).get("deleted_by_sender_at"):
        raise UpdateSettled("duplicate: unsend already noted")
    at = (run.update.sent_at or datetime.now(timezone.utc)).isoformat()
    message.extra = {**(message.extra or {}), "deleted_by_sender_at": at}
    raise UpdateSettled(f"unsend noted on message {message.id} (content kept for the record)")


# -- the pipelines, as data -------------------------------------------------

STAGES: dict[str, UpdateStage] = {stage.__name__: stage for stage in (
    find_receipt_targets, advance_to_receipt_state, find_our_send, reject_known_echo, confirm_our_send,
    record_outside_send, find_customer_message, note_edit, note_unsend,
)}

UPDATE_PIPELINES: dict[str, tuple[str, ...]] = {
    DELIVERED: ("find_receipt_targets", "advance_to_receipt_state"),
    READ: ("find_receipt_targets", "advance_to_receipt_state"),
    ECHO: ("find_our_send", "reject_known_echo", "confirm_our_send", "record_outside_send"),
    EDITED: ("find_customer_message", "note_edit"),
    UNSENT: ("find_customer_message", "note_unsend"),
}


# -- the runner ---------------------------------------------------------------

async def apply_update(ctx: IngestContext, change: MessageUpdate) -> str:
    """Run the update's pipeline in one transaction; return what became of it (logged by the caller)."""
    run = UpdateRun(ctx, change)
    result = f"ignored: no stage settled the {change.kind} update"
    async with write_transaction(ctx.sessions) as session:
        run.session = session
        try:
            for name in UPDATE_PIPELINES[change.kind]:
                await STAGES[name](run)
        except UpdateSettled as settled:
            result = settled.result
    if run.events_recorded:
        await ctx.committed()  # wake automation: message.delivery_updated events were recorded
    return result
