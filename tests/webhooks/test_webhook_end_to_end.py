"""The whole path over real HTTP: webhook in, ticket, agent reply through the API, out to Messenger / chat.

The webhook sub-app is mounted in the real API application the way the
daemon mounts it; the reply goes through ``POST /api/v1/tickets/{id}/replies``
and the real delivery loop with the registered deliverers.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from _webhooks_support import APP_SECRET, CHAT_SECRET
from frontdesk.api.app import AppExtras, create_app
from frontdesk.channels.webhooks.app import PROCESSOR, create_webhook_app, openapi_paths
from frontdesk.channels.webhooks.signing import SignatureRefused, check_timestamped, hub_signature, timestamped_signature
from frontdesk.model import Delivery, Message, Ticket
from frontdesk.settings import Secret
from graph_api import FakeGraphApi
from frontdesk.ingest.context import IngestContext
from frontdesk.outbound.deliveries import DeliveryLoop
from frontdesk.runtime.registries import deliverers

OPERATOR = {"Authorization": "Bearer test-api-token"}
PAGE, PSID = "12345654332", "90210"


@pytest.fixture
async def stack(webhook_settings, webhook_config, sessions, blobs):
    graph = await FakeGraphApi(tokens={f"token-{PAGE}": PAGE}).start()
    received: list[tuple[dict, bool]] = []

    async def provider(request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            check_timestamped(raw, request.headers.get("X-Frontdesk-Timestamp"),
                              request.headers.get("X-Frontdesk-Signature"), Secret(CHAT_SECRET), 300)
            received.append((json.loads(raw), True))
        except SignatureRefused:
            received.append((json.loads(raw), False))
            return web.json_response({"error": "bad signature"}, status=401)
        return web.json_response({"id": "p-1"})

    provider_app = web.Application()
    provider_app.router.add_post("/replies", provider)
    provider_server = TestServer(provider_app, host="127.0.0.1", port=0)
    await provider_server.start_server()
    config = replace(
        webhook_config,
        messenger=tuple(replace(p, graph_api_base=graph.base_url) for p in webhook_config.messenger),
        chat=tuple(replace(c, callback_url=str(provider_server.make_url("/replies"))) for c in webhook_config.chat),
    )
    webhook_app = create_webhook_app(IngestContext(webhook_settings, sessions, blobs), config)
    api = create_app(webhook_settings, sessions, blobs,
                     extra=AppExtras(subapps=[("/webhooks/", webhook_app)], openapi=[openapi_paths()]))
    server = TestServer(api, host="127.0.0.1", port=0)
    await server.start_server()
    async with aiohttp.ClientSession(base_url=str(server.make_url("/"))) as client:
        yield {"client": client, "graph": graph, "received": received, "webhooks": webhook_app[PROCESSOR],
               "loop": DeliveryLoop(webhook_settings, sessions, blobs, deliverers=deliverers(config, sessions))}
    await server.close()
    await provider_server.close()
    await graph.close()


async def only_ticket(sessions) -> Ticket:
    async with sessions() as session:
        [ticket] = (await session.scalars(select(Ticket))).all()
        return ticket


async def test_messenger_message_to_ticket_to_agent_reply_through_the_send_api(stack, sessions) -> None:
    client, graph = stack["client"], stack["graph"]
    body = json.dumps({"object": "page", "entry": [{"id": PAGE, "time": 1, "messaging": [{
        "sender": {"id": PSID}, "recipient": {"id": PAGE}, "timestamp": int(time.time() * 1000),
        "message": {"mid": "mid.e2e.1", "text": "Can I change my delivery address?"}}]}]}).encode()
    response = await client.post("/webhooks/messenger", data=body, headers={
        "Content-Type": "application/json", "X-Hub-Signature-256": hub_signature(APP_SECRET, body)})
    assert response.status == 200
    await stack["webhooks"].join()
    ticket = await only_ticket(sessions)

    reply = await client.post(f"/api/v1/tickets/{ticket.id}/replies", json={"text": "Yes, send us the new one."},
                              headers=OPERATOR)
    assert reply.status == 201, await reply.text()
    assert (await reply.json())["channel"] == "messenger"
    await stack["loop"].deliver_due()
    [sent] = graph.sent
    assert sent["recipient"] == PSID and sent["body"]["messaging_type"] == "RESPONSE"
    assert sent["body"]["message"]["text"] == "Yes, send us the new one."
    async with sessions() as session:
        delivery = await session.scalar(select(Delivery))
        message = await session.get(Message, delivery.message_id)
    assert delivery.state == "sent" and message.delivery_state == "sent" and message.external_id == sent["mid"]

    document = await (await client.get("/openapi.json")).json()
    assert "/webhooks/messenger" in document["paths"] and "ChatMessage" in document["components"]["schemas"]


async def test_chat_session_to_ticket_to_signed_reply_at_the_provider(stack, sessions) -> None:
    client = stack["client"]
    for n, text in enumerate(["Hi", "Is the shop open on Sunday?"]):
        body = json.dumps({"session_id": "s-e2e", "message_id": f"m{n}", "visitor": {"id": "v-e2e", "name": "Ada"},
                           "text": text, "timestamp": time.time()}).encode()
        stamp = str(int(time.time()))
        response = await client.post("/webhooks/chat/widget", data=body, headers={
            "Content-Type": "application/json", "X-Frontdesk-Timestamp": stamp,
            "X-Frontdesk-Signature": timestamped_signature(CHAT_SECRET, stamp, body)})
        assert response.status == 200
    await stack["webhooks"].join()
    ticket = await only_ticket(sessions)
    reply = await client.post(f"/api/v1/tickets/{ticket.id}/replies", json={"text": "Yes, 10 to 16."},
                              headers=OPERATOR)
    assert reply.status == 201, await reply.text()
    await stack["loop"].deliver_due()
    [(payload, signed)] = stack["received"]
    assert signed and payload["session_id"] == "s-e2e" and payload["text"] == "Yes, 10 to 16."
    async with sessions() as session:
        delivery = await session.scalar(select(Delivery))
    assert delivery.state == "sent"
