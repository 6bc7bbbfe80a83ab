"""The whole path in embedded mode: real ingest, the real HTTP API, the embedded runner, an SMTP sink.

A customer writes in, gets "Ticket received" threaded on their mail, an
agent replies through the API, the customer answers our Message-ID, the
agent closes the ticket: statuses follow the triggers and every mail lands
in the sink with the right threading headers.  Also: autoresponders do not
loop, and the API refuses header injection.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from typing import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import func, select

from _automation_world import make_team, status_ids
from frontdesk.api.app import create_app
from frontdesk.api.auth import hash_token
from frontdesk.api.replies import AFTER_COMMIT
from frontdesk.automation.loop_guard import MAX_AUTOMATED_MAILS_PER_WINDOW
from frontdesk.model import (
    ApiToken,
    Channel,
    Contact,
    ContactIdentity,
    Conversation,
    Delivery,
    OutboxEvent,
    Status,
    Ticket,
    User,
)
from frontdesk.ingest.context import IngestContext
from frontdesk.ingest.message import Envelope
from frontdesk.ingest.pipeline import ingest_email
from frontdesk.outbound.dispatch import DeliveryJob

CUSTOMER = "ada@example.com"
SUPPORT = "support@acme.test"


def customer_mail(*, message_id: str, subject: str, body: str = "Hello,\n\nthe printer is on fire.\n",
                  in_reply_to: str | None = None, references: tuple[str, ...] = (),
                  sender: str = f"Ada Lovelace <{CUSTOMER}>", headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = SUPPORT
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(timezone.utc))
    msg["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = " ".join(references)
    for name, value in headers:
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes()


def envelope() -> Envelope:
    return Envelope(channel="email", source="smtp", mail_from=CUSTOMER, rcpt_tos=(SUPPORT,),
                    received_at=datetime.now(timezone.utc))


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait until ``check`` holds; a generous bound, so slow machines do not fail the test."""
    for _ in range(400):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


@pytest.fixture
async def api(mail_settings, sessions, blobs, runner, deliveries) -> AsyncIterator[aiohttp.ClientSession]:  # type: ignore[no-untyped-def]
    app = create_app(mail_settings, sessions, blobs)
    app[AFTER_COMMIT] = [runner.wake_async, deliveries.wake_async]
    web_runner = web.AppRunner(app, access_log=None)
    await web_runner.setup()
    site = web.TCPSite(web_runner, "127.0.0.1", 0)
    await site.start()
    host, port = web_runner.addresses[0][:2]
    async with aiohttp.ClientSession(base_url=f"http://{host}:{port}") as client:
        yield client
    await web_runner.cleanup()


async def agent_token(sessions, user_id: int) -> dict[str, str]:  # type: ignore[no-untyped-def]
    token = secrets.token_urlsafe(24)
    async with sessions.begin() as session:
        session.add(ApiToken(user_id=user_id, token_hash=hash_token(token), label="test"))
    return {"Authorization": f"Bearer {token}"}


async def ticket_status(sessions, ticket_id: int) -> int:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        return (await session.get(Ticket, ticket_id)).status_id


async def test_customer_agent_round_trip_in_embedded_mode(mail_settings, sessions, blobs, sink, runner,  # type: ignore[no-untyped-def]
                                                         deliveries, api) -> None:
    handler, _ = sink
    statuses = await status_ids(sessions)
    _, (alice, bob) = await make_team(sessions, "Tier 1", [("Alice", "alice@acme.test"), ("Bob", "bob@acme.test")])
    headers = await agent_token(sessions, alice)
    ctx = IngestContext(mail_settings, sessions, blobs, on_commit=[runner.wake_async, deliveries.wake_async])
    deliveries.poll_interval = runner.poll_interval = 0.2
    await runner.start()
    await deliveries.start()
    try:
        # 1. The customer writes in: a ticket, and "Ticket received" threaded on their mail.
        outcome = await ingest_email(ctx, customer_mail(message_id="c1@example.com", subject="Printer on fire"),
                                     envelope())
        assert outcome.kind == "ticket_created"
        ticket_id = outcome.ticket_id

        async def mails_to_customer(n: int) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                return len(handler.to(CUSTOMER)) >= n
            return check

        await eventually(await mails_to_customer(1), "Ticket received reaches the customer")
        received = handler.to(CUSTOMER)[0]
        assert received["Subject"] == f"We received your request: Printer on fire [#{ticket_id}]"
        assert received["In-Reply-To"] == "<c1@example.com>"
        assert received["Auto-Submitted"] == "auto-replied"
        # The mail that opened the ticket is not a customer *reply*: it stays New.
        await runner.run_until_idle()  # both events of the new ticket handled
        assert await ticket_status(sessions, ticket_id) == statuses["new"]

        # 2. The agent takes the ticket and replies through the API.
        answer = await api.patch(f"/api/v1/tickets/{ticket_id}", json={"owner_id": alice}, headers=headers)
        assert answer.status == 200, await answer.text()
        answer = await api.post(f"/api/v1/tickets/{ticket_id}/replies", json={"text": "We are on our way."},
                                headers=headers)
        assert answer.status == 201, await answer.text()
        await eventually(await mails_to_customer(2), "the agent's reply reaches the customer")
        reply = handler.to(CUSTOMER)[1]
        assert reply["Subject"] == f"Re: Printer on fire [#{ticket_id}]"
        assert reply["In-Reply-To"] == "<c1@example.com>"
        assert "<c1@example.com>" in reply["References"]
        assert reply["Auto-Submitted"] is None
        assert "We are on our way." in reply.get_body(("plain",)).get_content()

        async def status_is(name: str) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                return await ticket_status(sessions, ticket_id) == statuses[name]
            return check

        await eventually(await status_is("waiting_on_contact"), "status Waiting on contact")

        # 3. The customer answers our reply: threaded by our Message-ID, status Waiting on us.
        ours = reply["Message-ID"]
        outcome = await ingest_email(ctx, customer_mail(
            message_id="c2@example.com", subject=f"Re: Printer on fire [#{ticket_id}]", body="Thanks!\n",
            in_reply_to=ours, references=("<c1@example.com>", ours)), envelope())
        assert (outcome.kind, outcome.ticket_id) == ("threaded", ticket_id)
        await eventually(await status_is("waiting_on_us"), "status Waiting on us")

        # 4. The agent closes it: "Ticket closed" to the customer, a notification to the owner's team.
        answer = await api.patch(f"/api/v1/tickets/{ticket_id}", json={"status": "closed"}, headers=headers)
        assert answer.status == 200, await answer.text()
        assert (await answer.json())["closed_at"] is not None
        await eventually(await mails_to_customer(3), "Ticket closed reaches the customer")

        async def team_notified() -> bool:
            return bool(handler.to("alice@acme.test")) and bool(handler.to("bob@acme.test"))

        await eventually(team_notified, "the owner's team is notified")
        closed = handler.to(CUSTOMER)[2]
        assert closed["Subject"] == f"Your request is closed: Printer on fire [#{ticket_id}]"
        assert closed["In-Reply-To"] == "<c2@example.com>"
    finally:
        await runner.stop()
        await deliveries.stop()
    assert len(handler.to(CUSTOMER)) == 3
    assert await ticket_status(sessions, ticket_id) == statuses["closed"]


async def _run_to_quiet(runner, deliveries) -> None:  # type: ignore[no-untyped-def]
    """Handle events and send mail until neither has anything left; fails if that never happens."""
    for _ in range(12):
        handled = await runner.run_until_idle()
        sent = await deliveries.deliver_due()
        if not handled and not sent:
            return
    raise AssertionError("automation and delivery never went quiet: a loop")


@pytest.mark.parametrize("autoresponder", ["rfc3834", "naive_in_thread"])
async def test_an_autoresponder_does_not_loop(mail_settings, sessions, blobs, sink, runner, deliveries,  # type: ignore[no-untyped-def]
                                              autoresponder: str) -> None:
    handler, _ = sink
    ctx = IngestContext(mail_settings, sessions, blobs)
    answered = 0

    async def answer_everything(message) -> None:  # type: ignore[no-untyped-def]
        nonlocal answered
        if CUSTOMER not in str(message["To"]):
            return
        answered += 1
        extra = (("Auto-Submitted", "auto-replied"),) if autoresponder == "rfc3834" else ()
        await ingest_email(ctx, customer_mail(
            message_id=f"auto{answered}@example.com", subject=f"Re: {message['Subject']}",
            body="I am away until Monday.\n", in_reply_to=message["Message-ID"],
            references=(message["Message-ID"],), headers=extra), envelope())

    handler.on_message = answer_everything
    await ingest_email(ctx, customer_mail(message_id="c1@example.com", subject="Printer on fire"), envelope())
    await _run_to_quiet(runner, deliveries)
    async with sessions() as session:
        tickets = await session.scalar(select(func.count()).select_from(Ticket))
        mails = await session.scalar(select(func.count()).select_from(Delivery))
    assert tickets == 1
    assert mails == 1 and answered == 1  # "Ticket received", answered once, and nothing after


async def test_the_api_refuses_header_injection_and_hides_invisible_tickets(mail_settings, sessions, blobs, api) -> None:  # type: ignore[no-untyped-def]
    ctx = IngestContext(mail_settings, sessions, blobs)
    outcome = await ingest_email(ctx, customer_mail(message_id="c1@example.com", subject="Hi"), envelope())
    operator = {"Authorization": "Bearer test-api-token"}
    url = f"/api/v1/tickets/{outcome.ticket_id}"
    answer = await api.post(f"{url}/replies", json={"text": "x", "subject": "Hi\r\nBcc: victim@example.org"},
                            headers=operator)
    assert answer.status == 422 and (await answer.json())["error"]["code"] == "header_injection"
    answer = await api.post(f"{url}/replies", json={"text": "x", "cc": ["a@example.org\nBcc: b@example.org"]},
                            headers=operator)
    assert answer.status == 422
    answer = await api.patch(url, json={"name": "New name\r\nBcc: victim@example.org"}, headers=operator)
    assert answer.status == 422 and (await answer.json())["error"]["code"] == "header_injection"
    answer = await api.patch(url, json={"status": "no_such_status"}, headers=operator)
    error = (await answer.json())["error"]
    assert answer.status == 422 and error["code"] == "unknown_status" and error["field"] == "status"
    assert {"internal_name": "closed", "label": "Closed"} in error["valid"] and "waiting_on_us" in error["message"]
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Delivery)) == 0
    # The label works too, in any case; PATCH answers GET's ticket JSON (without the messages and the SLA
    # clocks, which the change's events move after it commits).
    answer = await api.patch(url, json={"status": "waiting ON us"}, headers=operator)
    patched = await answer.json()
    assert answer.status == 200 and patched["status"]["internal_name"] == "waiting_on_us"
    answer = await api.patch(url, json={"status": "Closed"}, headers=operator)
    patched = await answer.json()
    assert answer.status == 200 and patched["status"]["internal_name"] == "closed"
    got = await (await api.get(url, headers=operator)).json()
    assert patched == {k: v for k, v in got.items() if k not in ("messages", "sla")}
    listed = await (await api.get("/api/v1/tickets?status=Closed", headers=operator)).json()
    assert [t["id"] for t in listed["tickets"]] == [outcome.ticket_id]
    # A status nobody has is a 400 naming it, not a silently empty list.
    unknown = await api.get("/api/v1/tickets?status=Closd", headers=operator)
    error = (await unknown.json())["error"]
    assert unknown.status == 400 and error["parameter"] == "status" and "closed" in error["valid"]
    _, (outsider,) = await make_team(sessions, "Elsewhere", [("Olga", "olga@acme.test")])
    async with sessions.begin() as session:
        (await session.get(User, outsider)).ticket_access = "owned"
    headers = await agent_token(sessions, outsider)
    assert (await api.post(f"{url}/replies", json={"text": "x"}, headers=headers)).status == 404
    assert (await api.patch(url, json={"status": "closed"}, headers=headers)).status == 404


async def test_a_retried_reply_with_the_same_idempotency_key_sends_once(mail_settings, sessions, blobs, sink,  # type: ignore[no-untyped-def]
                                                                       deliveries, api) -> None:
    handler, _ = sink
    ctx = IngestContext(mail_settings, sessions, blobs)
    outcome = await ingest_email(ctx, customer_mail(message_id="c1@example.com", subject="Hi"), envelope())
    headers = {"Authorization": "Bearer test-api-token", "Idempotency-Key": "reply-1"}
    url = f"/api/v1/tickets/{outcome.ticket_id}/replies"
    first = await api.post(url, json={"text": "Once"}, headers=headers)
    again = await api.post(url, json={"text": "Once"}, headers=headers)
    assert (first.status, again.status) == (201, 200)
    assert (await first.json())["delivery_id"] == (await again.json())["delivery_id"]
    await deliveries.deliver_due()
    detail = await (await api.get(f"/api/v1/tickets/{outcome.ticket_id}", headers=headers)).json()
    [ours] = [m for m in detail["messages"] if m["direction"] == "outbound"]
    assert ours["delivery_state"] == "sent" and ours["sent_at"] is not None  # stamped when delivered
    assert len([m for m in handler.to(CUSTOMER) if "Once" in m.get_body(("plain",)).get_content()]) == 1
    async with sessions() as session:
        sent = (await session.scalars(select(OutboxEvent).where(OutboxEvent.type == "message.sent"))).all()
    assert len(sent) == 1 and sent[0].body["payload"]["from_ticket"] is True


async def test_a_messenger_ticket_is_answered_through_the_dispatch_registry(sessions, deliveries, api) -> None:  # type: ignore[no-untyped-def]
    statuses = await status_ids(sessions)
    async with sessions.begin() as session:
        pipeline_id = (await session.get(Status, statuses["new"])).pipeline_id
        channel = Channel(kind="messenger", key="page-1", pipeline_id=pipeline_id)
        contact = Contact(first_name="Max")
        session.add_all([channel, contact])
        await session.flush()
        session.add(ContactIdentity(contact_id=contact.id, channel_id=channel.id, external_id="psid-42"))
        conversation = Conversation(channel="messenger", channel_id=channel.id, thread_key="page-1:psid-42",
                                    contact_id=contact.id)
        session.add(conversation)
        await session.flush()
        ticket = Ticket(name="Hi", pipeline_id=pipeline_id, status_id=statuses["new"],
                        source_channel="messenger", channel_id=channel.id, contact_id=contact.id,
                        origin_conversation_id=conversation.id)
        session.add(ticket)
        await session.flush()
        ticket_id = ticket.id
    sent: list[DeliveryJob] = []

    async def fake_messenger(job: DeliveryJob) -> str:
        sent.append(job)
        return "mid.1"

    deliveries.deliverers = {**deliveries.deliverers, "messenger": fake_messenger}
    answer = await api.post(f"/api/v1/tickets/{ticket_id}/replies", json={"text": "Hello Max"},
                            headers={"Authorization": "Bearer test-api-token"})
    assert answer.status == 201, await answer.text()
    await deliveries.deliver_due()
    [job] = sent
    assert (job.recipient, job.payload["text"], job.payload["thread_key"]) == ("psid-42", "Hello Max", "page-1:psid-42")
    async with sessions() as session:
        delivery = (await session.scalars(select(Delivery))).one()
    assert (delivery.state, delivery.payload["provider_id"]) == ("sent", "mid.1")


async def test_patch_changes_properties_and_reopens(mail_settings, sessions, blobs, api) -> None:  # type: ignore[no-untyped-def]
    ctx = IngestContext(mail_settings, sessions, blobs)
    outcome = await ingest_email(ctx, customer_mail(message_id="c1@example.com", subject="Hi"), envelope())
    operator = {"Authorization": "Bearer test-api-token"}
    url = f"/api/v1/tickets/{outcome.ticket_id}"
    team, _ = await make_team(sessions, "Tier 1", [("Alice", "alice@acme.test")])
    async with sessions() as session:
        description = (await session.get(Ticket, outcome.ticket_id)).description  # from the mail body
    answer = await api.patch(url, json={"priority": "high", "category": "billing", "team_id": team,
                                        "name": "Printer fire", "description": "Room 4"}, headers=operator)
    assert answer.status == 200
    body = await answer.json()
    assert (body["priority"], body["category"], body["team_id"], body["name"]) == ("high", "billing", team,
                                                                                  "Printer fire")
    closed = await (await api.patch(url, json={"status": "closed"}, headers=operator)).json()
    assert closed["status"]["is_closed"] and closed["closed_at"]
    reopened = await (await api.patch(url, json={"status": "waiting_on_us"}, headers=operator)).json()
    assert reopened["reopened_at"] and reopened["closed_at"] is None
    assert (await api.patch(url, json={"owner_id": 999999}, headers=operator)).status == 422
    assert (await api.patch(url, json={"pipeline_id": 2}, headers=operator)).status == 422
    async with sessions() as session:
        events = (await session.scalars(select(OutboxEvent).where(OutboxEvent.ticket_id == outcome.ticket_id)
                                        .order_by(OutboxEvent.id))).all()
    changed = [e.body["payload"] for e in events if e.type == "ticket.property_changed"]
    assert changed == [{"changes": {
        "priority": {"from": None, "to": "high"}, "category": {"from": None, "to": "billing"},
        "name": {"from": "Hi", "to": "Printer fire"}, "description": {"from": description, "to": "Room 4"},
        "team_id": {"from": None, "to": team}}}]
    moves = [e.body["payload"] for e in events if e.type == "ticket.status_changed"]
    assert [(m["to_status"], m["is_closed"], m["reopened"]) for m in moves] == [
        ("closed", True, False), ("waiting_on_us", False, True)]
    assert all(e.body["actor"]["kind"] == "agent" for e in events if e.type.startswith("ticket.") and
               e.type != "ticket.created")


async def test_an_autoresponder_that_breaks_threading_is_cut_off(mail_settings, sessions, blobs, sink, runner,  # type: ignore[no-untyped-def]
                                                                 deliveries) -> None:
    """No headers, no references, no ticket token: every answer is a new ticket, until the rate limit."""
    handler, _ = sink
    ctx = IngestContext(mail_settings, sessions, blobs)
    answered = 0

    async def answer_on_a_new_thread(message) -> None:  # type: ignore[no-untyped-def]
        nonlocal answered
        if CUSTOMER in str(message["To"]):
            answered += 1
            await ingest_email(ctx, customer_mail(message_id=f"fresh{answered}@example.com",
                                                  subject=f"Thanks for your mail no. {answered}"), envelope())

    handler.on_message = answer_on_a_new_thread
    await ingest_email(ctx, customer_mail(message_id="c1@example.com", subject="Printer on fire"), envelope())
    await _run_to_quiet(runner, deliveries)
    assert answered == MAX_AUTOMATED_MAILS_PER_WINDOW
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Ticket)) == MAX_AUTOMATED_MAILS_PER_WINDOW + 1


async def test_a_subject_decoding_to_a_line_break_can_still_be_answered(mail_settings, sessions, blobs, sink,  # type: ignore[no-untyped-def]
                                                                       deliveries, api) -> None:
    """Ingest stores the customer's Subject as it decodes; the reply's header is flattened, not a 500."""
    handler, _ = sink
    ctx = IngestContext(mail_settings, sessions, blobs)
    raw = customer_mail(message_id="crlf@example.com", subject="PLACEHOLDER", body="Answer me\n").replace(
        b"Subject: PLACEHOLDER", b"Subject: =?utf-8?q?Hello=0D=0ABcc:_x@evil.test?=")
    outcome = await ingest_email(ctx, raw, envelope())
    assert outcome.kind == "ticket_created"
    answer = await api.post(f"/api/v1/tickets/{outcome.ticket_id}/replies", json={"text": "Here you are"},
                            headers={"Authorization": "Bearer test-api-token"})
    assert answer.status == 201, await answer.text()
    await deliveries.deliver_due()
    [sent] = [m for m in handler.to(CUSTOMER) if "Here you are" in m.get_body(("plain",)).get_content()]
    assert sent.get_all("Subject") == [f"Re: Hello Bcc: x@evil.test [#{outcome.ticket_id}]"]
    assert sent.get_all("Bcc") is None
    async with sessions() as session:
        assert (await session.get(Ticket, outcome.ticket_id)).name == "Hello Bcc: x@evil.test"
