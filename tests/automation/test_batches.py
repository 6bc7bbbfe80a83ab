"""Batches of events, as both runners apply them: one transaction, a poison event isolated, nothing twice."""

from __future__ import annotations

from sqlalchemy import func, select

from frontdesk.automation.event_processor import EventProcessor, ReceivedEvent, decode_message
from frontdesk.automation.handlers import AutomationHandler
from frontdesk.background import Backoff, RetryPolicy
from frontdesk.events import AGENT, MESSAGE_SENT, TICKET_STATUS_CHANGED, Actor, DomainEvent
from frontdesk.automation.loop_guard import MAX_AUTOMATED_MAILS_PER_WINDOW
from frontdesk.model import AppliedEffect, DeadLetter, Delivery, Message, OutboxEvent, Ticket, TicketSearchDocument
from _automation_world import break_template, make_ticket, status_ids
from test_handlers import agent_email, closed, created


def processor(services) -> EventProcessor:  # type: ignore[no-untyped-def]
    """The worker's processor around the production handler, retrying without waiting."""
    return EventProcessor(AutomationHandler(services), services.sessions, name="test_batch",
                          policy=RetryPolicy(max_attempts=2, backoff=Backoff(base=0.0, cap=0.0)))


def received(*events: DomainEvent) -> list[ReceivedEvent]:
    return [ReceivedEvent(event.id, event.to_dict(), event) for event in events]


async def deliveries_by_ticket(sessions) -> dict[int, int]:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        return dict((await session.execute(select(Delivery.ticket_id, func.count()).group_by(Delivery.ticket_id)))
                    .all())


async def outbox_count(sessions, kind: str) -> int:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        return await session.scalar(select(func.count()).select_from(OutboxEvent).where(OutboxEvent.type == kind))


async def test_a_poison_event_is_dead_lettered_and_the_rest_of_its_batch_applied(services, sessions) -> None:  # type: ignore[no-untyped-def]
    statuses = await status_ids(sessions)
    # Closing a ticket renders the Ticket closed template, which no longer renders: that event always fails.
    await break_template(sessions, "ticket_closed")
    first = await make_ticket(sessions)
    doomed = await make_ticket(sessions, message_id="m2@example.com", status="waiting_on_us")
    answered = await make_ticket(sessions, message_id="m3@example.com", status="waiting_on_us")
    last = await make_ticket(sessions, message_id="m4@example.com")
    poison = closed(doomed, statuses["waiting_on_us"], statuses["closed"])
    batch = received(created(first, statuses["new"]), poison, agent_email(answered, Actor(AGENT)),
                     created(last, statuses["new"]))
    garbage = decode_message(b"k", b"{not json", origin="events/0/7")

    await processor(services).apply_batch([*batch, garbage])

    assert await deliveries_by_ticket(sessions) == {first: 1, last: 1}  # the two Ticket received emails
    async with sessions() as session:
        assert (await session.get(Ticket, answered)).status_id == statuses["waiting_on_contact"]
        letters = {row.event_id: row for row in (await session.scalars(select(DeadLetter))).all()}
        assert set(letters) == {poison.id, garbage.event_id}
        assert "does not render" in letters[poison.id].error
        assert await session.scalar(select(func.count()).select_from(AppliedEffect)
                                    .where(AppliedEffect.event_id == poison.id)) == 0


async def test_a_redelivered_batch_applies_nothing_twice(services, sessions) -> None:  # type: ignore[no-untyped-def]
    statuses = await status_ids(sessions)
    new = await make_ticket(sessions)
    answered = await make_ticket(sessions, message_id="m2@example.com", status="waiting_on_us")
    ticket_created = created(new, statuses["new"])
    # The relay may publish an event twice (a crash before it marked the row): here within one batch.
    batch = received(ticket_created, agent_email(answered, Actor(AGENT)), ticket_created)

    # Straight to the batch form, which raises rather than fall back: the batch itself must work.
    await AutomationHandler(services).apply_batch([item.event for item in batch])
    async with sessions() as session:
        keys = set((await session.scalars(select(AppliedEffect.key))).all())
    await processor(services).apply_batch(batch)  # the whole batch again, as after a worker killed before its offsets were committed

    assert await deliveries_by_ticket(sessions) == {new: 1}
    assert await outbox_count(sessions, MESSAGE_SENT) == 1
    assert await outbox_count(sessions, TICKET_STATUS_CHANGED) == 1
    async with sessions() as session:
        assert set((await session.scalars(select(AppliedEffect.key))).all()) == keys
        assert (await session.get(Ticket, answered)).status_id == statuses["waiting_on_contact"]
        assert await session.scalar(select(func.count()).select_from(DeadLetter)) == 0


async def test_a_batch_of_new_tickets_writes_each_email_on_its_own_ticket(services, sessions, blobs) -> None:  # type: ignore[no-untyped-def]
    statuses = await status_ids(sessions)
    tickets = [await make_ticket(sessions, contact_email=f"c{n}@example.com", message_id=f"m{n}@example.com",
                                 subject=f"Order {n} is late") for n in range(3)]

    await AutomationHandler(services).apply_batch([created(t, statuses["new"]) for t in tickets])

    async with sessions() as session:
        sent = [DomainEvent.from_dict(body) for body in (await session.scalars(
            select(OutboxEvent.body).where(OutboxEvent.type == MESSAGE_SENT).order_by(OutboxEvent.id))).all()]
        messages = {m.id: m for m in (await session.scalars(select(Message).where(Message.direction == "outbound")))}
        deliveries = (await session.scalars(select(Delivery))).all()
        found = {t: await indexed_with_email(session, f"order {n} is late") for n, t in enumerate(tickets)}
    assert [e.ticket_id for e in sent] == tickets  # in the order decided
    for event in sent:  # each event names its own ticket's message, threaded on the customer's mail
        message = messages[event.message_id]
        assert message.ticket_id == event.ticket_id and message.conversation_id == event.conversation_id
        assert message.in_reply_to == f"m{tickets.index(event.ticket_id)}@example.com"
        assert message.to_addresses == [f"c{tickets.index(event.ticket_id)}@example.com"]
        assert blobs.exists(message.raw_blob)
    assert {(d.ticket_id, d.message_id) for d in deliveries} == {(m.ticket_id, m.id) for m in messages.values()}
    # The ticket's search document has the email's text: its index was refreshed with the batch.
    assert all(found[t] for t in tickets)


async def test_the_automated_mail_cap_counts_the_batchs_own_mail(services, sessions) -> None:  # type: ignore[no-untyped-def]
    statuses = await status_ids(sessions)
    # An autoresponder loop: one contact opens a new ticket with every mail, all in one batch.
    tickets = [await make_ticket(sessions, message_id=f"m{n}@example.com") for n in range(MAX_AUTOMATED_MAILS_PER_WINDOW + 2)]

    await AutomationHandler(services).apply_batch([created(t, statuses["new"]) for t in tickets])

    assert sum((await deliveries_by_ticket(sessions)).values()) == MAX_AUTOMATED_MAILS_PER_WINDOW


async def indexed_with_email(session, text: str) -> bool:  # type: ignore[no-untyped-def]
    document = await session.scalar(select(TicketSearchDocument.document).where(
        TicketSearchDocument.document.contains("we will get back to you soon"),
        TicketSearchDocument.names.contains(text)))
    return document is not None
