"""Messenger events that change messages we already hold: echoes, receipts, edits, deletions.

These never make a ticket, so they do not go through the ingest pipeline:
an echo is our own (or the Page inbox's) send, recorded as outbound and
never as a customer message; a receipt advances the delivery state of our
messages; an edit or an unsend is noted on the customer's stored message,
whose original text is kept (an agent may already have answered it).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.channels.webhooks.messenger import MessengerEvent
from frontdesk.events import SYSTEM, Actor, MessageDeliveryUpdated
from frontdesk.model import Channel, Conversation, Delivery, Message
from frontdesk.outbox import record_events
from frontdesk.model.messages import INBOUND, OUTBOUND
from frontdesk.outbound.messenger import ECHO_METADATA_PREFIX  # "fd:<message id>" in the Send API metadata

# Delivery states only move forward; "failed" is final and never touched.
STATE_ORDER = {None: 0, "queued": 1, "deferred": 1, "sent": 2, "delivered": 3, "read": 4}


async def _advance(session: AsyncSession, messages: list[Message], state: str, at: datetime | None) -> int:
    """Move each message (and its deliveries) forward to ``state``; return how many moved."""
    moved = [m for m in messages if m.delivery_state != "failed"
             and STATE_ORDER.get(m.delivery_state, 0) < STATE_ORDER[state]]
    for message in moved:
        message.delivery_state = state
        message.extra = {**(message.extra or {}), f"{state}_at": (at or datetime.now(timezone.utc)).isoformat()}
    if moved:
        await session.execute(
            update(Delivery)
            .where(Delivery.message_id.in_([m.id for m in moved]), Delivery.state.in_(("queued", "deferred", "sent", "delivered")))
            .values(state=state)
        )
    for message in moved:
        # The same event the delivery loop records for sent / failed.
        await record_events(session, MessageDeliveryUpdated(
            ticket_id=message.ticket_id, actor=Actor(SYSTEM), message_id=message.id, channel=message.channel,
            state=state, source="receipt",
        ))
    return len(moved)


async def _thread_messages(session: AsyncSession, channel: Channel, event: MessengerEvent) -> list[Message]:
    """Our outbound messages in this person's thread, sent no later than the watermark."""
    query = (
        select(Message)
        .join(Conversation, Message.conversation_id == Conversation.id)
        .where(Conversation.channel_id == channel.id, Conversation.thread_key == event.thread_key,
               Message.direction == OUTBOUND)
    )
    if event.watermark is not None:
        watermark = event.watermark
        query = query.where(or_(Message.sent_at <= watermark,
                                (Message.sent_at.is_(None)) & (Message.created_at <= watermark)))
    return list((await session.scalars(query)).all())


async def apply_receipt(session: AsyncSession, channel: Channel, event: MessengerEvent, state: str) -> str:
    """A delivery (mids and/or watermark) or read (watermark) receipt; returns what happened."""
    targets: dict[int, Message] = {}
    if event.receipt_mids:
        found = await session.scalars(select(Message).where(
            Message.channel_id == channel.id, Message.direction == OUTBOUND,
            Message.external_id.in_(event.receipt_mids)))
        targets.update({m.id: m for m in found})
    if event.watermark is not None:
        targets.update({m.id: m for m in await _thread_messages(session, channel, event)})
    moved = await _advance(session, list(targets.values()), state, event.watermark or event.sent_at)
    if not targets:
        return "matched none of our messages"
    return f"{moved} of {len(targets)} matched messages now {state}"


async def _find(session: AsyncSession, channel: Channel, mid: str | None, direction: str | None = None) -> Message | None:
    if not mid:
        return None
    query = select(Message).where(Message.channel_id == channel.id, Message.external_id == mid)
    if direction:
        query = query.where(Message.direction == direction)
    return await session.scalar(query.limit(1))


async def message_exists(session: AsyncSession, channel: Channel, external_id: str | None) -> bool:
    return await _find(session, channel, external_id) is not None


async def record_echo(session: AsyncSession, channel: Channel, event: MessengerEvent, *, source: str,
                      raw_blob: str) -> str:
    """Our own send coming back: confirm it; a send from the Page inbox: record it as outbound."""
    ours: Message | None = None
    if event.metadata and event.metadata.startswith(ECHO_METADATA_PREFIX):
        ident = event.metadata.removeprefix(ECHO_METADATA_PREFIX)
        if ident.isdigit():
            ours = await session.get(Message, int(ident))
            if ours is not None and (ours.channel_id != channel.id or ours.direction != OUTBOUND):
                ours = None
    if ours is None:
        existing = await _find(session, channel, event.mid)
        if existing is not None:
            return "duplicate: a message with this mid is already stored"
    if ours is not None:
        if ours.external_id is None:
            ours.external_id = event.mid
        await _advance(session, [ours], "sent", event.sent_at)
        return f"echo of our message {ours.id}"
    conversation = await session.scalar(
        select(Conversation).where(Conversation.channel_id == channel.id, Conversation.thread_key == event.thread_key)
        .order_by(Conversation.id.desc()).limit(1))
    extra: dict[str, Any] = {"echo": True, "app_id": event.extra.get("app_id")}
    if event.metadata:
        extra["metadata"] = event.metadata
    attachments = [{"type": a.type, "url": a.url} for a in event.attachments]
    if attachments:
        extra["attachments"] = attachments
    session.add(Message(
        conversation_id=conversation.id if conversation else None,
        ticket_id=conversation.ticket_id if conversation else None,
        direction=OUTBOUND, channel="messenger", channel_id=channel.id,
        external_id=event.mid, text_body=event.text, reply_text=event.text,
        sent_at=event.sent_at, author_kind="agent", delivery_state="sent",
        source=source, raw_blob=raw_blob, content_hash=event.content_hash, extra=extra,
    ))
    return "echo recorded as an outbound message sent from outside Frontdesk" + (
        "" if conversation else " (no conversation with this person yet)")


async def apply_edit(session: AsyncSession, channel: Channel, event: MessengerEvent) -> str:
    message = await _find(session, channel, event.mid, INBOUND)
    if message is None:
        return "ignored: edit of a message we do not hold"
    edits = list((message.extra or {}).get("edits") or [])
    entry = {"text": event.text, "num_edit": event.extra.get("num_edit"),
             "at": event.sent_at.isoformat() if event.sent_at else None}
    if entry in edits:
        return "duplicate: edit already noted"
    message.extra = {**(message.extra or {}), "edits": [*edits, entry]}
    return f"edit noted on message {message.id}"


async def apply_delete(session: AsyncSession, channel: Channel, event: MessengerEvent) -> str:
    message = await _find(session, channel, event.mid, INBOUND)
    if message is None:
        return "ignored: unsend of a message we do not hold"
    if (message.extra or {}).get("deleted_by_sender_at"):
        return "duplicate: unsend already noted"
    at = (event.sent_at or datetime.now(timezone.utc)).isoformat()
    message.extra = {**(message.extra or {}), "deleted_by_sender_at": at}
    return f"unsend noted on message {message.id} (content kept for the record)"
