"""An agent's chat reply goes to the provider's callback URL as a signed webhook, with retries."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import timedelta

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from _webhooks_support import CHAT_SECRET, start_server
from frontdesk.channels.webhooks.signing import SignatureRefused, check_timestamped
from frontdesk.model import Conversation, Delivery, Message, Ticket
from frontdesk.model.messages import OUTBOUND
from frontdesk.settings import Secret
from frontdesk.ingest.context import IngestContext
from frontdesk.outbound.deliveries import DeliveryLoop, queue_delivery
from frontdesk.runtime.registries import deliverers


class Provider:
    """A chat provider's callback endpoint: it checks our signature like a real one should."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.refused = 0
        self.failures: list[int] = []

    async def callback(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            check_timestamped(raw, request.headers.get("X-Frontdesk-Timestamp"),
                              request.headers.get("X-Frontdesk-Signature"), Secret(CHAT_SECRET), 300)
        except SignatureRefused:
            self.refused += 1
            return web.json_response({"error": "bad signature"}, status=401)
        if self.failures:
            return web.json_response({"error": "busy"}, status=self.failures.pop(0))
        self.received.append({"body": json.loads(raw), "idempotency_key": request.headers.get("Idempotency-Key")})
        return web.json_response({"id": f"prov-{len(self.received)}"})


@pytest.fixture
async def provider():
    provider = Provider()
    app = web.Application()
    app.router.add_post("/replies", provider.callback)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    provider.url = str(server.make_url("/replies"))
    yield provider
    await server.close()


@pytest.fixture
async def world(webhook_settings, webhook_config, sessions, blobs, provider):
    chats = tuple(replace(c, callback_url=provider.url) for c in webhook_config.chat)
    config = replace(webhook_config, chat=chats)
    server = await start_server(IngestContext(webhook_settings, sessions, blobs), config)
    yield server, DeliveryLoop(webhook_settings, sessions, blobs, deliverers=deliverers(config, sessions))
    await server.client.close()


async def customer_then_agent(server, sessions, text: str) -> tuple[int, int]:
    for n, line in enumerate(["Hello?", "Where is my parcel?"]):
        body = json.dumps({"session_id": "sess-77", "message_id": f"c-{n}", "visitor": {"id": "v-1", "name": "Ada"},
                           "text": line, "timestamp": time.time()}).encode()
        assert (await server.post_signed("/webhooks/chat/widget", body, secret=CHAT_SECRET)).status == 200
    await server.settle()
    async with sessions.begin() as session:
        [ticket] = (await session.scalars(select(Ticket))).all()
        conversation = await session.get(Conversation, ticket.origin_conversation_id)
        message = Message(conversation_id=conversation.id, ticket_id=ticket.id, direction=OUTBOUND, channel="chat",
                          channel_id=ticket.channel_id, text_body=text, author_kind="agent", from_name="Grace",
                          delivery_state="queued", source="outbound")
        session.add(message)
        await session.flush()
        delivery = queue_delivery(session, idempotency_key=f"reply:{ticket.id}:1", channel="chat", recipient="v-1",
                                  kind="agent_reply", ticket_id=ticket.id, message_id=message.id,
                                  payload={"text": text, "channel_id": ticket.channel_id,
                                           "thread_key": conversation.thread_key})
        await session.flush()
        return message.id, delivery.id


async def test_the_reply_reaches_the_provider_signed(world, sessions, provider) -> None:
    server, loop = world
    message_id, delivery_id = await customer_then_agent(server, sessions, "It left the depot this morning.")
    await loop.deliver_due()
    assert provider.refused == 0
    [received] = provider.received
    assert received["body"]["session_id"] == "sess-77"
    assert received["body"]["text"] == "It left the depot this morning."
    assert received["body"]["agent"] == {"name": "Grace"} and received["body"]["type"] == "agent_message"
    assert received["idempotency_key"] == received["body"]["message_id"]
    async with sessions() as session:
        delivery = await session.get(Delivery, delivery_id)
        message = await session.get(Message, message_id)
    assert delivery.state == "sent" and delivery.payload["provider_id"] == "prov-1"
    assert message.delivery_state == "sent"


async def test_a_failing_provider_is_retried_and_a_rejecting_one_is_given_up(world, sessions, provider) -> None:
    server, loop = world
    provider.failures = [502]
    _, delivery_id = await customer_then_agent(server, sessions, "On its way.")
    await loop.deliver_due()
    async with sessions() as session:
        delivery = await session.get(Delivery, delivery_id)
    assert delivery.state == "deferred" and "HTTP 502" in delivery.last_error
    await loop.deliver_due(now=delivery.next_attempt_at + timedelta(seconds=1))
    async with sessions() as session:
        delivery = await session.get(Delivery, delivery_id)
    assert delivery.state == "sent" and len(provider.received) == 1


async def test_a_4xx_from_the_provider_is_permanent(world, sessions, provider) -> None:
    server, loop = world
    provider.failures = [410]
    _, delivery_id = await customer_then_agent(server, sessions, "Hello again")
    await loop.deliver_due()
    async with sessions() as session:
        delivery = await session.get(Delivery, delivery_id)
    assert delivery.state == "failed" and "HTTP 410" in delivery.last_error
