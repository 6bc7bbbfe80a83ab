"""The update pipeline on its own: receipts, echoes, edits and unsends applied to stored messages."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select

from frontdesk.events import DomainEvent, MessageDeliveryUpdated
from frontdesk.model import Channel, Delivery, Message, OutboxEvent, Pipeline
from frontdesk.model.messages import OUTBOUND
from frontdesk.ingest.context import IngestContext
from frontdesk.ingest.message import InboundMessage
from frontdesk.ingest.pipeline import ingest_message
from frontdesk.ingest.update_pipeline import apply_update
from frontdesk.ingest.updates import ECHO, EDITED, READ, UNSENT, MessageUpdate

PAGE, PSID = "5550001", "4242"
THREAD = f"{PAGE}:{PSID}"
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def ctx(settings, sessions, blobs) -> IngestContext:
    return IngestContext(settings=settings, sessions=sessions, blobs=blobs)


@pytest.fixture
async def channel(sessions) -> Channel:
    async with sessions.begin() as session:
        pipeline = await session.scalar(select(Pipeline).where(Pipeline.internal_name == "support"))
        row = Channel(kind="messenger", key=PAGE, name="Page", pipeline_id=pipeline.id, create_tickets=True, options={})
        session.add(row)
    return row


def _update(channel: Channel, kind: str, **fields) -> MessageUpdate:
    return MessageUpdate(kind=kind, channel="messenger", channel_id=channel.id, thread_key=THREAD,
                         source=f"webhook:messenger/{PAGE}", raw_blob="0" * 64, **fields)


async def _customer_message(ctx: IngestContext, channel: Channel, mid: str = "mid.customer") -> int:
    outcome = await ingest_message(ctx, InboundMessage(
        channel="messenger", channel_key=PAGE, source=f"webhook:messenger/{PAGE}", raw_blob="0" * 64,
        content_hash="1" * 64, external_id=mid, thread_key=THREAD, sender_external_id=PSID,
        text_body="Where is my parcel?", reply_text="Where is my parcel?", sent_at=T0), channel=channel)
    assert outcome.kind == "ticket_created", outcome
    return outcome.message_id


async def _our_reply(sessions, customer_message_id: int, *, sent_at: datetime) -> tuple[int, int]:
    """One of our sent replies in the person's conversation, with its delivery row."""
    async with sessions.begin() as session:
        customer = await session.get(Message, customer_message_id)
        reply = Message(conversation_id=customer.conversation_id, ticket_id=customer.ticket_id, direction=OUTBOUND,
                        channel="messenger", channel_id=customer.channel_id, external_id=f"mid.ours.{sent_at:%H%M}",
                        text_body="On its way", author_kind="agent", delivery_state="sent", sent_at=sent_at)
        session.add(reply)
        await session.flush()
        delivery = Delivery(idempotency_key=f"reply:{reply.id}", channel="messenger", recipient=PSID,
                            kind="agent_reply", state="sent", ticket_id=reply.ticket_id, message_id=reply.id,
                            payload={})
        session.add(delivery)
    return reply.id, delivery.id


async def _delivery_events(sessions) -> list[MessageDeliveryUpdated]:
    async with sessions() as session:
        rows = (await session.scalars(select(OutboxEvent).where(OutboxEvent.type == "message.delivery_updated")
                                      .order_by(OutboxEvent.id))).all()
    return [DomainEvent.from_dict(row.body) for row in rows]


async def test_a_read_receipt_moves_our_message_to_read_and_records_one_event(ctx, sessions, channel) -> None:
    customer = await _customer_message(ctx, channel)
    reply, delivery = await _our_reply(sessions, customer, sent_at=T0.replace(hour=10))
    later, _ = await _our_reply(sessions, customer, sent_at=T0.replace(hour=12))
    woken = []

    async def wake() -> None:
        woken.append(True)

    ctx.on_commit.append(wake)
    result = await apply_update(ctx, _update(channel, READ, watermark=T0.replace(hour=11)))

    assert result == "1 of 1 matched messages now read"
    async with sessions() as session:
        read, unread = await session.get(Message, reply), await session.get(Message, later)
        delivery_row = await session.get(Delivery, delivery)
    assert read.delivery_state == "read" and delivery_row.state == "read"
    assert unread.delivery_state == "sent"  # sent after the watermark
    [event] = await _delivery_events(sessions)
    assert isinstance(event, MessageDeliveryUpdated)
    assert (event.message_id, event.state, event.source) == (reply, "read", "receipt")
    assert woken == [True]
    # The same receipt again moves nothing and records nothing.
    assert await apply_update(ctx, _update(channel, READ, watermark=T0.replace(hour=11))) == "0 of 1 matched messages now read"
    assert len(await _delivery_events(sessions)) == 1


async def test_an_unsend_marks_the_message_deleted_and_keeps_its_text(ctx, sessions, channel) -> None:
    customer = await _customer_message(ctx, channel)
    result = await apply_update(ctx, _update(channel, UNSENT, provider_message_id="mid.customer", sent_at=T0))
    assert result == f"unsend noted on message {customer} (content kept for the record)"
    async with sessions() as session:
        message = await session.get(Message, customer)
    assert message.extra["deleted_by_sender_at"] == T0.isoformat()
    assert message.text_body == "Where is my parcel?"
    again = await apply_update(ctx, _update(channel, UNSENT, provider_message_id="mid.customer", sent_at=T0))
    assert again == "duplicate: unsend already noted"
    missing = await apply_update(ctx, _update(channel, UNSENT, provider_message_id="mid.unknown"))
    assert missing == "ignored: unsend of a message we do not hold"


async def test_an_edit_is_kept_in_history_and_the_original_text_stays(ctx, sessions, channel) -> None:
    customer = await _customer_message(ctx, channel)
    edit = _update(channel, EDITED, provider_message_id="mid.customer", text="Where is my parcel #42?",
                   edit_count=1, sent_at=T0.replace(minute=5))
    assert await apply_update(ctx, edit) == f"edit noted on message {customer}"
    assert await apply_update(ctx, edit) == "duplicate: edit already noted"
    async with sessions() as session:
        message = await session.get(Message, customer)
    assert message.text_body == "Where is my parcel?"
    assert message.extra["edits"] == [{"text": "Where is my parcel #42?", "num_edit": 1,
                                       "at": T0.replace(minute=5).isoformat()}]


async def test_an_echo_of_a_send_made_elsewhere_is_stored_once_as_outbound(ctx, sessions, channel) -> None:
    await _customer_message(ctx, channel)
    echo = _update(channel, ECHO, provider_message_id="mid.inbox", text="Answered from the Page inbox",
                   sent_at=T0, content_hash="2" * 64, extra={"echo": True, "app_id": "263902037430900"})
    assert (await apply_update(ctx, echo)).startswith("echo recorded as an outbound message")
    assert await apply_update(ctx, echo) == "duplicate: a message with this mid is already stored"
    async with sessions() as session:
        [row] = (await session.scalars(select(Message).where(Message.external_id == "mid.inbox"))).all()
        total = await session.scalar(select(func.count()).select_from(Message))
    assert row.direction == OUTBOUND and row.author_kind == "agent" and row.ticket_id is not None
    assert total == 2


async def test_an_echo_of_our_own_send_marks_it_sent_under_the_provider_id(ctx, sessions, channel) -> None:
    customer = await _customer_message(ctx, channel)
    async with sessions.begin() as session:
        first = await session.get(Message, customer)
        ours = Message(conversation_id=first.conversation_id, ticket_id=first.ticket_id, direction=OUTBOUND,
                       channel="messenger", channel_id=channel.id, text_body="Hello", author_kind="agent",
                       delivery_state="queued")
        session.add(ours)
    result = await apply_update(ctx, _update(channel, ECHO, provider_message_id="mid.echoed", our_message_id=ours.id,
                                             text="Hello", sent_at=T0))
    assert result == f"echo of our message {ours.id}"
    async with sessions() as session:
        row = await session.get(Message, ours.id)
    assert (row.external_id, row.delivery_state) == ("mid.echoed", "sent")
    assert [e.state for e in await _delivery_events(sessions)] == ["sent"]
