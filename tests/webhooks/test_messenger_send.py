"""Agent replies on Messenger tickets through the Send API (a local fake of its documented contract).

The reply is queued the way ``POST /api/v1/tickets/{id}/replies`` queues it
(an outbound message plus a ``Delivery``), then the real delivery loop
sends it with the registered deliverer.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select

from _webhooks_support import start_server
from frontdesk.model import Conversation, Delivery, Message, Ticket, utcnow
from frontdesk.model.messages import OUTBOUND
from graph_api import FakeGraphApi
from frontdesk.ingest.context import IngestContext
from frontdesk.outbound.deliveries import DeliveryLoop, queue_delivery
from frontdesk.runtime.registries import deliverers

PAGE, PSID = "12345654332", "4242"


@pytest.fixture
async def graph() -> FakeGraphApi:
    fake = await FakeGraphApi(tokens={f"token-{PAGE}": PAGE}).start()
    yield fake
    await fake.close()


@pytest.fixture
async def world(webhook_settings, webhook_config, sessions, blobs, graph):
    pages = tuple(replace(p, graph_api_base=graph.base_url) for p in webhook_config.messenger)
    config = replace(webhook_config, messenger=pages)
    server = await start_server(IngestContext(webhook_settings, sessions, blobs), config)
    yield server, DeliveryLoop(webhook_settings, sessions, blobs, deliverers=deliverers(config, sessions))
    await server.client.close()


def event(item: dict) -> bytes:
    return json.dumps({"object": "page", "entry": [{"id": PAGE, "time": 1, "messaging": [
        {"sender": {"id": PSID}, "recipient": {"id": PAGE}, "timestamp": 1700000000000, **item}]}]}).encode()


async def queue_reply(server, sessions, text: str) -> tuple[int, int]:
    """A customer writes in, an agent answers: what the reply API stores."""
    response = await server.post_messenger(event({"message": {"mid": f"mid.in.{text}", "text": "Help"}}))
    assert response.status == 200
    await server.settle()
    async with sessions.begin() as session:
        ticket = await session.scalar(select(Ticket))
        conversation = await session.get(Conversation, ticket.origin_conversation_id)
        message = Message(conversation_id=conversation.id, ticket_id=ticket.id, direction=OUTBOUND,
                          channel="messenger", channel_id=ticket.channel_id, text_body=text, author_kind="agent",
                          delivery_state="queued", source="outbound")
        session.add(message)
        await session.flush()
        delivery = queue_delivery(session, idempotency_key=f"reply:{ticket.id}:{text}", channel="messenger",
                                  recipient=PSID, kind="agent_reply", ticket_id=ticket.id, message_id=message.id,
                                  payload={"text": text, "channel_id": ticket.channel_id,
                                           "thread_key": conversation.thread_key})
        await session.flush()
        return message.id, delivery.id


async def load(sessions, message_id: int, delivery_id: int) -> tuple[Message, Delivery]:
    async with sessions() as session:
        return await session.get(Message, message_id), await session.get(Delivery, delivery_id)


async def test_a_reply_goes_out_through_the_send_api_and_receipts_advance_it(world, sessions, graph) -> None:
    server, loop = world
    message_id, delivery_id = await queue_reply(server, sessions, "We are on it")
    assert await loop.deliver_due() == 1
    [sent] = graph.sent
    assert sent["page_id"] == PAGE
    assert sent["body"] == {"recipient": {"id": PSID}, "messaging_type": "RESPONSE",
                            "message": {"text": "We are on it", "metadata": f"fd:{message_id}"}}
    message, delivery = await load(sessions, message_id, delivery_id)
    assert delivery.state == "sent" and message.delivery_state == "sent"
    assert message.external_id == sent["mid"]

    # Meta echoes our send back: recognised by its metadata, not stored again.
    echo = {"message": {"mid": sent["mid"], "text": "We are on it", "is_echo": True, "app_id": 1,
                        "metadata": f"fd:{message_id}"}}
    body = json.loads(event(echo))
    body["entry"][0]["messaging"][0].update(sender={"id": PAGE}, recipient={"id": PSID})
    assert (await server.post_messenger(json.dumps(body).encode())).status == 200
    assert (await server.post_messenger(event({"delivery": {"mids": [sent["mid"]], "watermark": 1}}))).status == 200
    await server.settle()
    message, delivery = await load(sessions, message_id, delivery_id)
    assert (message.delivery_state, delivery.state) == ("delivered", "delivered")
    far_future = int((utcnow() + timedelta(days=1)).timestamp() * 1000)
    assert (await server.post_messenger(event({"read": {"watermark": far_future}}))).status == 200
    await server.settle()
    message, delivery = await load(sessions, message_id, delivery_id)
    assert (message.delivery_state, delivery.state) == ("read", "read")
    async with sessions() as session:
        outbound = (await session.scalars(select(Message).where(Message.direction == OUTBOUND))).all()
    assert len(outbound) == 1


async def test_the_24_hour_window_error_is_a_permanent_failure(world, sessions, graph) -> None:
    server, loop = world
    graph.window_closed.add(PSID)
    message_id, delivery_id = await queue_reply(server, sessions, "Sorry for the wait")
    await loop.deliver_due()
    message, delivery = await load(sessions, message_id, delivery_id)
    assert delivery.state == "failed" and message.delivery_state == "failed"
    assert "code 10 subcode 2018278" in delivery.last_error
    # Nothing is retried later.
    assert await loop.deliver_due(now=utcnow() + timedelta(days=2)) == 0
    assert len(graph.requests) == 1 and graph.sent == []


async def test_a_transient_5xx_is_retried_and_then_sent_once(world, sessions, graph) -> None:
    server, loop = world
    graph.fail_next(503)
    message_id, delivery_id = await queue_reply(server, sessions, "Checking now")
    await loop.deliver_due()
    message, delivery = await load(sessions, message_id, delivery_id)
    assert delivery.state == "deferred" and "HTTP 503" in delivery.last_error
    assert delivery.next_attempt_at is not None
    await loop.deliver_due(now=delivery.next_attempt_at + timedelta(seconds=1))
    message, delivery = await load(sessions, message_id, delivery_id)
    assert delivery.state == "sent" and delivery.attempts == 2 and message.delivery_state == "sent"
    assert len(graph.requests) == 2 and len(graph.sent) == 1


async def test_receipts_record_delivery_events(world, sessions, graph) -> None:
    from frontdesk.model import OutboxEvent

    server, loop = world
    message_id, _ = await queue_reply(server, sessions, "Tracking link sent")
    await loop.deliver_due()
    [sent] = graph.sent
    assert (await server.post_messenger(event({"delivery": {"mids": [sent["mid"]], "watermark": 1}}))).status == 200
    await server.settle()
    async with sessions() as session:
        events = (await session.scalars(select(OutboxEvent).where(
            OutboxEvent.type == "message.delivery_updated").order_by(OutboxEvent.id))).all()
    states = [(e.body["payload"]["message_id"], e.body["payload"]["state"]) for e in events]
    assert states[-1] == (message_id, "delivered") and (message_id, "sent") in states
