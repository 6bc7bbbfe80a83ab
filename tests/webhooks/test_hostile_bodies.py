"""Hostile bodies over HTTP: a clear 4xx, never a 5xx, nothing stored for a body that is not one."""

from __future__ import annotations

import json
import time

import pytest

from _webhooks_support import CHAT_SECRET, count_rows
from frontdesk.channels.webhooks.signing import timestamped_signature
from frontdesk.model import InboundPayload, Message, Ticket

DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize("path, headers", [
    ("/webhooks/forms/contact", {"Content-Type": "application/json"}),
    ("/webhooks/messenger", {"Content-Type": "application/json"}),
])
async def test_json_nested_a_hundred_thousand_levels_is_a_client_error(webhooks, sessions, path, headers) -> None:
    # The form endpoint needs no signature; Messenger checks its signature first, so sign it.
    if path.endswith("messenger"):
        response = await webhooks.post_messenger(DEEP)
    else:
        response = await webhooks.client.post(path, data=DEEP, headers=headers)
    assert 400 <= response.status < 500, await response.text()
    assert (await response.json())["error"]["code"]
    await webhooks.settle()
    assert await count_rows(sessions, InboundPayload) == {"inbound_payloads": 0}


async def test_a_signed_chat_request_stamped_nan_is_refused_not_valid_forever(webhooks) -> None:
    body = json.dumps({"session_id": "s", "message_id": "m-nan", "text": "hi", "timestamp": "2026-11-23T10:00:00Z",
                       "visitor": {"id": "v-1", "name": "Ada", "email": "ada@example.com"}}).encode()
    for stamp in ("nan", "inf", "-inf", "1e309", "1700000000x", "0x10"):
        headers = {"Content-Type": "application/json", "X-Frontdesk-Timestamp": stamp,
                   "X-Frontdesk-Signature": timestamped_signature(CHAT_SECRET, stamp, body)}
        response = await webhooks.client.post("/webhooks/chat/widget", data=body, headers=headers)
        assert response.status == 403, stamp
        assert (await response.json())["error"]["code"] == "timestamp_invalid"
    fresh = str(int(time.time()))
    headers = {"Content-Type": "application/json", "X-Frontdesk-Timestamp": fresh,
               "X-Frontdesk-Signature": timestamped_signature(CHAT_SECRET, fresh, body)}
    accepted = await webhooks.client.post("/webhooks/chat/widget", data=body, headers=headers)
    assert accepted.status == 200, await accepted.text()


async def test_a_messenger_message_whose_text_is_a_number_becomes_a_message(webhooks, sessions) -> None:
    body = json.dumps({"object": "page", "entry": [{"id": webhooks.config.messenger[0].page_id, "time": 1,
                       "messaging": [{"sender": {"id": "4242"}, "recipient": {"id": webhooks.config.messenger[0].page_id},
                                      "timestamp": 1700000000000, "message": {"mid": "m.num", "text": 42}}]}]}).encode()
    assert (await webhooks.post_messenger(body)).status == 200
    await webhooks.settle()
    assert await count_rows(sessions, Ticket, Message) == {"tickets": 1, "messages": 1}
    async with sessions() as session:
        from sqlalchemy import select
        message = await session.scalar(select(Message))
    assert message.text_body == "42"


async def test_form_values_that_are_not_text_are_named(webhooks) -> None:
    body = json.dumps({"email": {"a": 1}, "subject": ["x"]}).encode()
    response = await webhooks.client.post("/webhooks/forms/contact", data=body,
                                          headers={"Content-Type": "application/json"})
    assert response.status == 422
    assert {"email", "subject"} <= set(json.dumps(await response.json()).replace('"', " ").split())


async def test_urlencoded_garbage_is_a_client_error(webhooks) -> None:
    response = await webhooks.client.post("/webhooks/forms/contact", data=b"%%%&&&==\xff",
                                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert 400 <= response.status < 500
