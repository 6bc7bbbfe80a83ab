"""The ingest pipeline end to end on a real database: tickets, threading, screening, duplicates, outages, quarantine."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError

from frontdesk.events import DomainEvent, TicketCreated
from frontdesk.model import (
    Attachment,
    Channel,
    Company,
    Contact,
    ContactIdentity,
    Conversation,
    Message,
    OutboxEvent,
    Pipeline,
    QuarantinedItem,
    Status,
    Ticket,
    TicketParticipant,
)
from frontdesk.reply_tokens import make_message_id
from frontdesk.storage.database import StorageUnavailable, create_engine, session_factory
from frontdesk.ingest import pipeline
from frontdesk.ingest.contacts import normalize_address, split_display_name
from frontdesk.ingest.context import IngestContext
from frontdesk.ingest.message import InboundMessage
from frontdesk.ingest.pipeline import ingest_email, ingest_message, replay_email
from frontdesk.ingest.quarantine import list_quarantine, replay_quarantined
from _ingest_mail import SUPPORT, count, counts, event_types, mail, smtp_envelope


REPLAYERS = {"email": replay_email}


@pytest.fixture
def ctx(settings, sessions, blobs) -> IngestContext:
    return IngestContext(settings=settings, sessions=sessions, blobs=blobs)


async def _message(sessions, message_id: int) -> Message:
    async with sessions() as session:
        row = await session.get(Message, message_id)
        assert row is not None
        return row


async def _ticket(sessions, ticket_id: int) -> Ticket:
    async with sessions() as session:
        row = await session.get(Ticket, ticket_id)
        assert row is not None
        return row


async def _events(sessions, ticket_id: int | None = None) -> list[OutboxEvent]:
    async with sessions() as session:
        query = select(OutboxEvent).order_by(OutboxEvent.id)
        if ticket_id is not None:
            query = query.where(OutboxEvent.ticket_id == ticket_id)
        return list((await session.scalars(query)).all())


async def _new_ticket(ctx, **kwargs) -> tuple[int, str]:
    message_id = kwargs.pop("message_id", "first@example.com")
    outcome = await ingest_email(ctx, mail(message_id=message_id, **kwargs), smtp_envelope())
    assert outcome.kind == "ticket_created", outcome
    return outcome.ticket_id, message_id


async def test_new_mail_creates_ticket_in_support_new_with_contact_message_attachment_and_events(ctx, sessions, blobs):
    committed = []

    async def on_commit() -> None:
        committed.append(True)

    ctx.on_commit.append(on_commit)
    pdf = b"%PDF-1.4 pretend invoice\n"
    raw = mail(message_id="abc@example.com", cc="Bob <bob@example.com>",
               attachments=[("invoice.pdf", "application/pdf", pdf)])

    outcome = await ingest_email(ctx, raw, smtp_envelope())

    assert outcome.kind == "ticket_created" and outcome.reason == "new_ticket"
    assert committed == [True]
    async with sessions() as session:
        ticket = await session.get(Ticket, outcome.ticket_id)
        status = await session.get(Status, ticket.status_id)
        pipeline_row = await session.get(Pipeline, ticket.pipeline_id)
        contact = await session.get(Contact, ticket.contact_id)
        message = await session.get(Message, outcome.message_id)
        conversation = await session.get(Conversation, message.conversation_id)
        attachments = (await session.scalars(select(Attachment).where(Attachment.message_id == message.id))).all()
        participants = set((await session.scalars(
            select(TicketParticipant.address).where(TicketParticipant.ticket_id == ticket.id))).all())
    assert (pipeline_row.internal_name, status.internal_name) == ("support", "new")
    assert ticket.name == "The printer is on fire"
    assert "on fire again" in ticket.description
    assert (contact.email, contact.first_name, contact.last_name) == ("ada@example.com", "Ada", "Lovelace")
    assert ticket.origin_conversation_id == conversation.id and conversation.ticket_id == ticket.id
    assert message.ticket_id == ticket.id and message.external_id == "abc@example.com"
    assert (message.match_rule, message.screening, message.direction) == ("new_ticket", "accepted", "inbound")
    assert blobs.get_sync(message.raw_blob) == raw
    assert [(a.filename, a.content_type, a.size) for a in attachments] == [("invoice.pdf", "application/pdf", len(pdf))]
    assert blobs.get_sync(attachments[0].blob) == pdf
    # The support address itself is no participant; customer and Cc are.
    assert participants == {"ada@example.com", "bob@example.com"}

    events = await _events(sessions, ticket.id)
    assert [e.type for e in events] == ["ticket.created", "message.received"]
    created, received = (e.body for e in events)
    assert created["actor"]["kind"] == "customer"
    typed = DomainEvent.from_dict(created)
    assert isinstance(typed, TicketCreated)
    assert typed.pipeline_id == ticket.pipeline_id
    assert typed.status_id == ticket.status_id
    assert typed.contact_id == contact.id
    assert typed.origin_conversation_id == conversation.id
    assert typed.source == "email"
    payload = received["payload"]
    assert payload["message_id"] == message.id and payload["conversation_id"] == conversation.id
    assert payload["on_origin_thread"] is True and payload["ticket_reopened"] is False
    assert payload["match_rule"] == "new_ticket" and payload["sender"] == "ada@example.com"
    assert payload["direction"] == "inbound" and payload["is_forwarded"] is False


async def test_reply_by_in_reply_to_threads_onto_the_ticket(ctx, sessions):
    ticket_id, first = await _new_ticket(ctx)
    outcome = await ingest_email(ctx, mail(subject="Re: The printer is on fire", message_id="second@example.com",
                                           in_reply_to=first, references=[first]), smtp_envelope())
    assert (outcome.kind, outcome.ticket_id, outcome.reason) == ("threaded", ticket_id, "in_reply_to")
    message = await _message(sessions, outcome.message_id)
    assert message.match_detail == f"In-Reply-To: <{first}>"
    assert await event_types(sessions, ticket_id) == ["ticket.created", "message.received", "message.received"]
    received = (await _events(sessions, ticket_id))[-1].body["payload"]
    assert received["on_origin_thread"] is True and received["match_rule"] == "in_reply_to"
    assert await count(sessions, Ticket) == 1


async def test_reply_to_a_reply_threads_by_references(ctx, sessions):
    ticket_id, first = await _new_ticket(ctx)
    await ingest_email(ctx, mail(message_id="second@example.com", in_reply_to=first, references=[first]),
                       smtp_envelope())
    # A client that dropped In-Reply-To but kept References (newest last).
    outcome = await ingest_email(
        ctx, mail(sender="bob@example.com", message_id="third@example.com",
                  references=["unknown-to-us@elsewhere.test", first, "second@example.com"]), smtp_envelope())
    assert (outcome.kind, outcome.ticket_id, outcome.reason) == ("threaded", ticket_id, "references")
    assert (await _message(sessions, outcome.message_id)).match_detail == "References: <second@example.com>"
    # And a reply whose In-Reply-To names that reply (a reply to a reply).
    outcome = await ingest_email(ctx, mail(message_id="fourth@example.com", in_reply_to="third@example.com"),
                                 smtp_envelope())
    assert (outcome.ticket_id, outcome.reason) == (ticket_id, "in_reply_to")


async def test_reply_to_our_signed_message_id_threads_even_without_a_stored_outbound_row(ctx, settings, sessions):
    ticket_id, _ = await _new_ticket(ctx)
    ours = make_message_id(ctx.secret_key, ticket_id, "acme.test")
    outcome = await ingest_email(ctx, mail(subject="Re: something else entirely", message_id="r@example.com",
                                           in_reply_to=ours), smtp_envelope())
    assert (outcome.kind, outcome.ticket_id, outcome.reason) == ("threaded", ticket_id, "reply_token")
    assert (await _message(sessions, outcome.message_id)).match_detail == f"In-Reply-To: <{ours}>"


async def test_forged_reply_token_is_not_trusted(ctx, sessions):
    ticket_id, _ = await _new_ticket(ctx)
    genuine = make_message_id(ctx.secret_key, ticket_id, "acme.test")
    forged = genuine.replace(genuine.split(".")[3].split("@")[0], "A" * 22)
    other_key = make_message_id(b"someone else's key", ticket_id, "acme.test")
    for number, fake in enumerate((forged, other_key)):
        outcome = await ingest_email(ctx, mail(sender="mallory@evil.test", message_id=f"forged-{number}@evil.test",
                                               in_reply_to=fake), smtp_envelope())
        assert outcome.kind == "ticket_created" and outcome.ticket_id != ticket_id


async def test_subject_token_threads_only_for_participants(ctx, sessions):
    ticket_id, _ = await _new_ticket(ctx, cc="bob@example.com")
    # Outlook-style: no In-Reply-To, no References, just the ticket number in the subject.
    by_participant = await ingest_email(
        ctx, mail(sender="Bob <BOB@example.com>", subject=f"RE: [#{ticket_id}] The printer is on fire",
                  message_id="bob-1@example.com"), smtp_envelope())
    assert (by_participant.kind, by_participant.ticket_id, by_participant.reason) == (
        "threaded", ticket_id, "subject_token")
    assert "participant bob@example.com" in (await _message(sessions, by_participant.message_id)).match_detail

    by_stranger = await ingest_email(
        ctx, mail(sender="mallory@evil.test", subject=f"RE: [#{ticket_id}] The printer is on fire",
                  message_id="mallory-1@evil.test"), smtp_envelope())
    assert by_stranger.kind == "ticket_created" and by_stranger.ticket_id != ticket_id


async def test_same_subject_from_different_senders_never_merges(ctx, sessions):
    first = await ingest_email(ctx, mail(sender="a@one.test", subject="Invoice question", message_id="a@one.test"),
                               smtp_envelope())
    second = await ingest_email(ctx, mail(sender="b@two.test", subject="Invoice question", message_id="b@two.test"),
                                smtp_envelope())
    third = await ingest_email(ctx, mail(sender="b@two.test", subject="Re: Invoice question",
                                         message_id="b2@two.test"), smtp_envelope())
    assert first.kind == second.kind == third.kind == "ticket_created"
    assert len({first.ticket_id, second.ticket_id, third.ticket_id}) == 3


async def test_forwarded_mail_starts_a_new_ticket_marked_forwarded(ctx, sessions):
    ticket_id, first = await _new_ticket(ctx)
    body = ("FYI, see below.\n\n---------- Forwarded message ---------\nFrom: Carol <carol@example.org>\n"
            "Subject: Broken login\n\nI cannot log in.\n")
    outcome = await ingest_email(ctx, mail(sender="ada@example.com", subject="Fwd: Broken login", body=body,
                                           message_id="fwd@example.com", in_reply_to=first), smtp_envelope())
    assert outcome.kind == "ticket_created" and outcome.ticket_id != ticket_id and outcome.reason == "forwarded"
    message = await _message(sessions, outcome.message_id)
    assert message.is_forwarded and message.match_rule == "forwarded"
    async with sessions() as session:
        conversation = await session.get(Conversation, message.conversation_id)
    assert conversation.is_forwarded
    received = (await _events(sessions, outcome.ticket_id))[-1].body["payload"]
    assert received["is_forwarded"] is True


async def test_duplicate_delivery_stores_nothing_twice(ctx, sessions):
    raw = mail(message_id="once@example.com")
    first = await ingest_email(ctx, raw, smtp_envelope())
    before = await counts(sessions)
    again = await ingest_email(ctx, raw, smtp_envelope())
    assert again.kind == "duplicate"
    assert (again.ticket_id, again.message_id) == (first.ticket_id, first.message_id)
    assert await counts(sessions) == before
    # Same Message-ID but different bytes is not an exact duplicate: it is
    # kept, and lands on the same ticket.
    changed = await ingest_email(ctx, b"X-Resent: yes\n" + raw, smtp_envelope())
    assert (changed.kind, changed.ticket_id, changed.reason) == ("threaded", first.ticket_id, "same_message_id")


async def test_copies_arriving_at_the_same_moment_are_stored_once(ctx, sessions):
    raw = mail(message_id="race@example.com")
    outcomes = await asyncio.gather(*(ingest_email(ctx, raw, smtp_envelope()) for _ in range(5)))
    assert sorted(o.kind for o in outcomes) == ["duplicate"] * 4 + ["ticket_created"]
    assert len({o.message_id for o in outcomes}) == 1
    assert await count(sessions, Message) == 1 and await count(sessions, Ticket) == 1


async def test_create_tickets_off_stores_the_message_without_a_ticket(ctx, sessions):
    async with sessions.begin() as session:
        await session.execute(update(Channel).where(Channel.key == "billing@acme.test").values(create_tickets=False))
    outcome = await ingest_email(ctx, mail(to="billing@acme.test", message_id="bill@example.com"),
                                 smtp_envelope(rcpt="billing@acme.test"))
    assert outcome.kind == "no_ticket" and outcome.ticket_id is None
    message = await _message(sessions, outcome.message_id)
    assert message.ticket_id is None and message.conversation_id is not None
    assert await count(sessions, Ticket) == 0
    assert await event_types(sessions) == []


async def test_channel_comes_from_the_envelope_recipient(ctx, sessions):
    outcome = await ingest_email(ctx, mail(to="Billing <billing@acme.test>, support@acme.test",
                                           message_id="b@example.com"), smtp_envelope(rcpt="BILLING@acme.test"))
    async with sessions() as session:
        channel = await session.get(Channel, (await session.get(Ticket, outcome.ticket_id)).channel_id)
    assert channel.key == "billing@acme.test"


async def test_storage_outage_raises_storage_unavailable(settings, blobs, sessions, tmp_path):
    if settings.is_sqlite:
        down_url = f"sqlite+aiosqlite:///{tmp_path}/no/such/dir/frontdesk.db"
    else:
        down_url = "postgresql+asyncpg://postgres@127.0.0.1:1/frontdesk"
    engine = create_engine(down_url)
    try:
        down = IngestContext(settings=replace(settings, database_url=down_url), sessions=session_factory(engine),
                             blobs=blobs)
        with pytest.raises(StorageUnavailable):
            await ingest_email(down, mail(message_id="outage@example.com"), smtp_envelope())
    finally:
        await engine.dispose()
    assert await counts(sessions) == {"tickets": 0, "messages": 0, "events": 0, "quarantine": 0}


async def test_outage_in_the_middle_of_persisting_leaves_nothing_half_written(ctx, sessions, monkeypatch):
    real_store = pipeline.STAGES["store"]

    async def store_then_lose_the_connection(state) -> None:
        await real_store(state)
        await state.session.flush()
        raise ConnectionResetError("connection reset by peer")

    monkeypatch.setitem(pipeline.STAGES, "store", store_then_lose_the_connection)
    with pytest.raises(StorageUnavailable):
        await ingest_email(ctx, mail(message_id="half@example.com"), smtp_envelope())
    assert await counts(sessions) == {"tickets": 0, "messages": 0, "events": 0, "quarantine": 0}
    async with sessions() as session:
        assert (await session.scalars(select(Contact))).all() == []


class _Deadlock(Exception):
    sqlstate = "40P01"


async def test_a_transaction_that_loses_a_race_is_run_again(ctx, sessions, monkeypatch):
    real_store = pipeline.STAGES["store"]
    attempts = []

    async def store_losing_once(state) -> None:
        await real_store(state)
        attempts.append(state.outcome)
        if len(attempts) == 1:
            raise DBAPIError("INSERT ...", {}, _Deadlock("deadlock detected"))

    monkeypatch.setitem(pipeline.STAGES, "store", store_losing_once)
    outcome = await ingest_email(ctx, mail(message_id="race-lost@example.com"), smtp_envelope())
    assert outcome.kind == "ticket_created" and len(attempts) == 2
    assert await counts(sessions) == {"tickets": 1, "messages": 1, "events": 2, "quarantine": 0}


async def test_failing_stage_quarantines_with_cause_and_replay_is_idempotent(ctx, sessions, blobs, monkeypatch):
    async def broken_threading(state) -> None:
        raise KeyError("a bug in threading")

    raw = mail(message_id="bug@example.com")
    real_threading = pipeline.STAGES["thread_email"]
    monkeypatch.setitem(pipeline.STAGES, "thread_email", broken_threading)
    outcome = await ingest_email(ctx, raw, smtp_envelope())
    assert outcome.kind == "quarantined" and outcome.reason == "thread_email_failed"
    # Rolled back: the contact created before the failure is gone too.
    assert await counts(sessions) == {"tickets": 0, "messages": 0, "events": 0, "quarantine": 1}
    assert await count(sessions, Contact) == 0
    async with sessions() as session:
        item = await session.get(QuarantinedItem, outcome.quarantine_id)
    assert "KeyError" in item.detail and "thread_email" in item.detail
    assert blobs.get_sync(item.blob) == raw
    assert item.envelope["rcpt_tos"] == [SUPPORT] and item.envelope["source"] == "smtp"

    monkeypatch.setitem(pipeline.STAGES, "thread_email", real_threading)  # the bug is fixed
    replayed = await replay_quarantined(ctx, outcome.quarantine_id, REPLAYERS)
    assert replayed.kind == "ticket_created"
    again = await replay_quarantined(ctx, outcome.quarantine_id, REPLAYERS)
    assert again.kind == "duplicate" and again.message_id == replayed.message_id
    assert await count(sessions, Message) == 1 and await count(sessions, Ticket) == 1
    assert await list_quarantine(ctx) == []
    [entry] = await list_quarantine(ctx, include_replayed=True)
    assert entry.replayed_at is not None and entry.replay_outcome.startswith("duplicate")


# -- screened mail ------------------------------------------------------------

async def test_auto_reply_is_stored_flagged_without_ticket_or_received_event(ctx, sessions):
    ticket_id, first = await _new_ticket(ctx)
    vacation = mail(sender="ada@example.com", subject="Out of office: The printer is on fire",
                    body="I am away until Monday.\n", message_id="ooo@example.com", in_reply_to=first,
                    extra_headers=[("Auto-Submitted", "auto-replied")])
    outcome = await ingest_email(ctx, vacation, smtp_envelope())
    assert outcome.kind == "screened" and outcome.reason == "auto_reply"
    message = await _message(sessions, outcome.message_id)
    assert message.screening == "auto_reply" and message.screening_reason
    # Linked to the ticket it answers, but automation never hears of it as a reply.
    assert message.ticket_id == ticket_id
    assert await event_types(sessions, ticket_id) == ["ticket.created", "message.received", "message.screened"]
    assert await count(sessions, Ticket) == 1

    stranger = mail(sender="bot@elsewhere.test", subject="Auto: thanks", message_id="auto2@elsewhere.test",
                    extra_headers=[("Auto-Submitted", "auto-replied")])
    outcome = await ingest_email(ctx, stranger, smtp_envelope())
    assert outcome.kind == "screened" and outcome.ticket_id is None
    assert await count(sessions, Ticket) == 1
    assert "message.received" not in [e.type for e in await _events(sessions) if e.ticket_id is None]
    async with sessions() as session:
        assert await session.scalar(select(Contact).where(Contact.email == "bot@elsewhere.test")) is None


def _bounce(original_id: str) -> bytes:
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\n"
        "To: support@acme.test\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <bounce-1@mx.example.com>\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
        "\r\n--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.com\r\n\r\n"
        "Final-Recipient: rfc822; gone@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        "From: support@acme.test\r\nTo: gone@example.com\r\nSubject: Re: hello\r\n"
        f"Message-ID: <{original_id}>\r\n"
        "--B--\r\n"
    ).encode()


async def test_bounce_is_linked_to_the_outbound_message_it_bounces(ctx, sessions):
    ticket_id, _ = await _new_ticket(ctx, sender="gone@example.com")
    ours = make_message_id(ctx.secret_key, ticket_id, "acme.test")
    async with sessions.begin() as session:
        conversation_id = (await session.get(Ticket, ticket_id)).origin_conversation_id
        outbound = Message(ticket_id=ticket_id, conversation_id=conversation_id, direction="outbound",
                           channel="email", external_id=ours, from_address=SUPPORT, author_kind="agent")
        session.add(outbound)
    outcome = await ingest_email(ctx, _bounce(ours), smtp_envelope(mail_from=""))
    assert outcome.kind == "screened" and outcome.reason == "bounce"
    message = await _message(sessions, outcome.message_id)
    assert message.bounced_message_id == outbound.id and message.ticket_id == ticket_id
    assert message.match_rule == "bounce"
    events = await _events(sessions, ticket_id)
    assert [e.type for e in events] == ["ticket.created", "message.received", "message.screened"]
    assert events[-1].body["payload"]["verdict"] == "bounce"
    assert await count(sessions, Ticket) == 1


async def test_mail_loop_is_stored_flagged_without_ticket(ctx, sessions):
    looped = mail(sender="support@acme.test", subject="Ticket received", message_id="loop@acme.test",
                  extra_headers=[("X-Loop", "support@acme.test")])
    outcome = await ingest_email(ctx, looped, smtp_envelope())
    assert outcome.kind == "screened"
    message = await _message(sessions, outcome.message_id)
    assert message.screening != "accepted" and message.ticket_id is None
    assert await count(sessions, Ticket) == 0
    assert await event_types(sessions) == ["message.screened"]


# -- non-email channels -------------------------------------------------------

async def _messenger_channel(sessions) -> int:
    async with sessions.begin() as session:
        pipeline_id = await session.scalar(select(Pipeline.id).where(Pipeline.internal_name == "support"))
        channel = Channel(kind="messenger", key="page-1", name="Acme page", pipeline_id=pipeline_id)
        session.add(channel)
        await session.flush()
        return channel.id


def _chat(blobs, mid: str, text: str, *, psid: str = "psid-1", **kwargs) -> InboundMessage:
    payload = f'{{"mid": "{mid}", "text": "{text}"}}'.encode()
    digest = blobs.put_sync(payload)
    return InboundMessage(channel="messenger", channel_key="page-1", source="webhook:messenger", raw_blob=digest,
                          content_hash=digest, external_id=mid, thread_key=f"page-1:{psid}", text_body=text,
                          sender_external_id=psid, **kwargs)


async def test_messenger_messages_thread_by_channel_and_thread_key(ctx, sessions, blobs):
    channel_id = await _messenger_channel(sessions)
    first = await ingest_message(ctx, _chat(blobs, "m1", "Hi, my order never arrived", sender_name="Grace Hopper"))
    second = await ingest_message(ctx, _chat(blobs, "m2", "Order 1234"))
    other = await ingest_message(ctx, _chat(blobs, "m3", "Hello?", psid="psid-2"))
    again = await ingest_message(ctx, _chat(blobs, "m2", "Order 1234"))
    assert first.kind == "ticket_created" and other.kind == "ticket_created"
    assert (second.kind, second.ticket_id, second.reason) == ("threaded", first.ticket_id, "thread_key")
    assert other.ticket_id != first.ticket_id
    assert again.kind == "duplicate" and again.message_id == second.message_id
    async with sessions() as session:
        ticket = await session.get(Ticket, first.ticket_id)
        contact = await session.get(Contact, ticket.contact_id)
        identities = (await session.scalars(select(ContactIdentity).where(ContactIdentity.channel_id == channel_id))).all()
    assert ticket.name == "Hi, my order never arrived" and ticket.source_channel == "messenger"
    assert (contact.first_name, contact.last_name, contact.email) == ("Grace", "Hopper", None)
    assert {i.external_id for i in identities} == {"psid-1", "psid-2"}
    assert await count(sessions, Message) == 3


async def test_form_submission_fills_contact_and_ticket_fields(ctx, sessions, blobs):
    async with sessions.begin() as session:
        pipeline_id = await session.scalar(select(Pipeline.id).where(Pipeline.internal_name == "support"))
        session.add(Channel(kind="form", key="contact-us", name="Contact us", pipeline_id=pipeline_id))
    digest = blobs.put_sync(b"form body")
    form = InboundMessage(
        channel="form", channel_key="contact-us", source="webhook:form", raw_blob=digest, content_hash=digest,
        external_id="sub-1", thread_key="sub-1", subject="Refund please", text_body="I want my money back.",
        contact_fields={"first_name": "Ada", "last_name": "Lovelace", "email": "Ada@Example.com",
                        "phone": "+44 1", "company": "Analytical Engines"},
        ticket_fields={"priority": "high", "order_number": "A-17"},
    )
    outcome = await ingest_message(ctx, form)
    assert outcome.kind == "ticket_created"
    async with sessions() as session:
        ticket = await session.get(Ticket, outcome.ticket_id)
        contact = await session.get(Contact, ticket.contact_id)
    assert (ticket.name, ticket.priority, ticket.custom_properties) == ("Refund please", "high", {"order_number": "A-17"})
    assert (contact.email, contact.first_name, contact.phone) == ("ada@example.com", "Ada", "+44 1")
    assert contact.company_id is not None and ticket.company_id == contact.company_id
    # The same person writing by email later is the same contact, and as a
    # participant of the form's ticket, her "[#id]" subject is trusted.
    by_mail = await ingest_email(ctx, mail(sender="ada@example.com", message_id="later@example.com"), smtp_envelope())
    assert (await _ticket(sessions, by_mail.ticket_id)).contact_id == contact.id
    follow_up = await ingest_email(ctx, mail(sender="ada@example.com", subject=f"Re: [#{ticket.id}] Refund please",
                                             message_id="later2@example.com"), smtp_envelope())
    assert (follow_up.ticket_id, follow_up.reason) == (ticket.id, "subject_token")


async def test_new_contact_joins_the_company_on_file_for_its_domain(ctx, sessions):
    async with sessions.begin() as session:
        company = Company(name="Example Ltd", domain="example.com")
        session.add(company)
    outcome = await ingest_email(ctx, mail(sender="Ada <ada@example.com>", message_id="c1@example.com"),
                                 smtp_envelope())
    stranger = await ingest_email(ctx, mail(sender="zed@nowhere.test", message_id="c2@nowhere.test"),
                                  smtp_envelope())
    async with sessions() as session:
        ticket = await session.get(Ticket, outcome.ticket_id)
        contact = await session.get(Contact, ticket.contact_id)
        other = await session.get(Contact, (await session.get(Ticket, stranger.ticket_id)).contact_id)
        companies = (await session.scalars(select(Company))).all()
    assert contact.company_id == company.id and ticket.company_id == company.id
    assert other.company_id is None and len(companies) == 1


async def test_messenger_echo_of_our_own_reply_is_outbound_and_starts_no_ticket(ctx, sessions, blobs):
    await _messenger_channel(sessions)
    first = await ingest_message(ctx, _chat(blobs, "m1", "Where is my parcel?"))
    echo = await ingest_message(ctx, _chat(blobs, "m2", "It ships today.", direction="outbound", author_kind="agent"))
    stray_echo = await ingest_message(ctx, _chat(blobs, "m3", "Hello!", psid="psid-9", direction="outbound",
                                                 author_kind="agent"))
    assert (echo.kind, echo.ticket_id) == ("threaded", first.ticket_id)
    assert stray_echo.kind == "no_ticket"
    received = (await _events(sessions, first.ticket_id))[-1].body
    assert received["type"] == "message.received" and received["actor"]["kind"] == "agent"
    assert received["payload"]["direction"] == "outbound"
    assert await count(sessions, Ticket) == 1


def test_contact_names_and_addresses_are_read_the_way_people_write_them():
    assert split_display_name("Ada Lovelace") == ("Ada", "Lovelace")
    assert split_display_name('"Lovelace, Ada"') == ("Ada", "Lovelace")
    assert split_display_name("Cher") == ("Cher", None)
    assert split_display_name("ada@example.com") == (None, None)
    assert normalize_address("Ada <ADA@Example.COM>") == "ada@example.com"
    assert normalize_address("undisclosed-recipients:;") is None
    assert normalize_address(None) is None
