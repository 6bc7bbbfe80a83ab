"""The live-chat endpoint: signed, fresh, threaded by session, refusals with no side effects."""

from __future__ import annotations

import json
import time

from sqlalchemy import select

from _webhooks_support import CHAT_SECRET, count_rows
from frontdesk.model import Contact, InboundPayload, Message, Ticket
from frontdesk.model.messages import INBOUND

PATH = "/webhooks/chat/widget"


def chat_message(message_id: str, text: str = "Hi, is anyone there?", session: str = "sess-1", **extra) -> bytes:
    body = {"session_id": session, "message_id": message_id,
            "visitor": {"id": "visitor-9", "name": "Ada Lovelace", "email": "ada@example.com"},
            "text": text, "timestamp": "2026-11-23T10:00:00Z", **extra}
    return json.dumps(body).encode()


async def test_a_session_of_several_messages_makes_one_ticket(webhooks, sessions) -> None:
    for n, text in enumerate(["Hello", "My invoice is wrong", "It says 40 EUR instead of 30"]):
        response = await webhooks.post_signed(PATH, chat_message(f"m-{n}", text), secret=CHAT_SECRET)
        assert response.status == 200, await response.text()
    attachment = [{"url": "https://cdn.example/invoice.png", "filename": "invoice.png", "content_type": "image/png"}]
    response = await webhooks.post_signed(PATH, chat_message("m-3", "", attachments=attachment), secret=CHAT_SECRET)
    assert response.status == 200, await response.text()
    await webhooks.settle()
    async with sessions() as session:
        messages = list((await session.scalars(select(Message).order_by(Message.id))).all())
        tickets = list((await session.scalars(select(Ticket))).all())
        contact = await session.scalar(select(Contact))
    assert len(tickets) == 1 and tickets[0].source_channel == "chat"
    assert [m.text_body for m in messages[:3]] == ["Hello", "My invoice is wrong", "It says 40 EUR instead of 30"]
    assert all(m.ticket_id == tickets[0].id and m.direction == INBOUND for m in messages)
    assert contact.email == "ada@example.com" and contact.first_name == "Ada"


async def test_another_session_is_another_ticket_and_redelivery_is_not_a_second_message(webhooks, sessions) -> None:
    body = chat_message("m-1")
    assert (await webhooks.post_signed(PATH, body, secret=CHAT_SECRET)).status == 200
    # The provider retries with a fresh timestamp: same message id, no second message.
    again = await webhooks.post_signed(PATH, body, secret=CHAT_SECRET, timestamp=time.time() + 1)
    assert again.status == 200
    assert (await webhooks.post_signed(PATH, chat_message("m-1", session="sess-2"), secret=CHAT_SECRET)).status == 200
    await webhooks.settle()
    assert await count_rows(sessions, Message, Ticket) == {"messages": 2, "tickets": 2}


async def test_bad_requests_are_refused_with_no_side_effects(webhooks, sessions) -> None:
    body = chat_message("m-bad")
    stamp = str(int(time.time()))
    responses = {
        "unknown channel": (await webhooks.post_signed("/webhooks/chat/nope", body, secret=CHAT_SECRET), 404),
        "wrong secret": (await webhooks.post_signed(PATH, body, secret="guess"), 403),
        "unsigned": (await webhooks.client.post(PATH, data=body, headers={"Content-Type": "application/json"}), 403),
        "stale replay": (await webhooks.post_signed(PATH, body, secret=CHAT_SECRET, timestamp=time.time() - 3600), 403),
        "future timestamp": (await webhooks.post_signed(PATH, body, secret=CHAT_SECRET, timestamp=time.time() + 3600), 403),
        "timestamp swapped": (await webhooks.client.post(PATH, data=body, headers={
            "Content-Type": "application/json", "X-Frontdesk-Timestamp": stamp,
            "X-Frontdesk-Signature": "sha256=" + "0" * 64}), 403),
        "malformed json": (await webhooks.post_signed(PATH, b"{oops", secret=CHAT_SECRET), 400),
        "content type": (await webhooks.post_signed(PATH, body, secret=CHAT_SECRET, content_type="text/plain"), 415),
        "too large": (await webhooks.post_signed(PATH, b"x" * (webhooks.config.max_body_size + 1), secret=CHAT_SECRET), 413),
        "invalid fields": (await webhooks.post_signed(PATH, json.dumps({"visitor": {"email": "not-an-address"}}).encode(),
                                                      secret=CHAT_SECRET), 422),
    }
    assert {name: r.status for name, (r, _) in responses.items()} == {name: s for name, (_, s) in responses.items()}
    stale = await responses["stale replay"][0].json()
    assert stale["error"]["code"] == "timestamp_stale"
    invalid = (await responses["invalid fields"][0].json())["error"]["fields"]
    assert set(invalid) == {"session_id", "message_id", "visitor.email", "text", "timestamp"}
    await webhooks.settle()
    assert await count_rows(sessions, InboundPayload, Message, Ticket) == {
        "inbound_payloads": 0, "messages": 0, "tickets": 0}
