"""handle_event against the database: effects, exactly once, settings read per event, dead letters."""

from __future__ import annotations

import asyncio
import email
import email.policy

from sqlalchemy import func, select, update

from frontdesk.automation.handlers import handle_event
from frontdesk.automation.loop_guard import MAX_AUTOMATED_MAILS_PER_WINDOW, MAX_DEPTH
from frontdesk.events import (
    AGENT,
    AUTOMATION,
    CUSTOMER,
    MESSAGE_SENT,
    TICKET_STATUS_CHANGED,
    Actor,
    MessageReceived,
    MessageSent,
    TicketCreated,
    TicketStatusChanged,
)
from frontdesk.model import (
    AppliedEffect,
    DeadLetter,
    Delivery,
    EmailTemplate,
    OutboxEvent,
    PipelineAutomation,
    StatusAction,
    Ticket,
)
from frontdesk.model.automation import NOTIFY, SEND_EMAIL, TO_OWNER, TO_TEAM, TO_USER
from frontdesk.outbox import record_events
from _automation_world import break_template, make_team, make_ticket, status_ids


def created(ticket_id: int, status_id: int) -> TicketCreated:
    return TicketCreated(ticket_id=ticket_id, actor=Actor(CUSTOMER), pipeline_id=1, status_id=status_id, source="email")


def moved(ticket_id: int, from_id: int, to_id: int, *, is_closed: bool = False) -> TicketStatusChanged:
    return TicketStatusChanged(ticket_id=ticket_id, actor=Actor(AGENT, "1"), pipeline_id=1, from_status_id=from_id,
                               to_status_id=to_id, from_status="before", to_status="after", is_closed=is_closed,
                               reopened=False)


def closed(ticket_id: int, from_id: int, to_id: int) -> TicketStatusChanged:
    return moved(ticket_id, from_id, to_id, is_closed=True)


def agent_email(ticket_id: int, actor: Actor = Actor(AGENT, "1")) -> MessageSent:
    """What an agent's reply through the API records (see frontdesk.api.replies)."""
    return MessageSent(ticket_id=ticket_id, actor=actor, message_id=1, conversation_id=None, channel="email",
                       from_ticket=True, automated=False)


def customer_email(ticket_id: int, *, on_origin_thread: bool) -> MessageReceived:
    """What ingest records for a customer's reply (see frontdesk.ingest.persist)."""
    return MessageReceived(ticket_id=ticket_id, actor=Actor(CUSTOMER), message_id=1, conversation_id=None,
                           channel="email", channel_id=None, direction="inbound", author_kind="customer",
                           sender="ada@example.com", match_rule="in_reply_to", ticket_created=False,
                           on_origin_thread=on_origin_thread, ticket_reopened=False)


async def count(sessions, model, *where) -> int:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where))


async def deliveries_of(sessions) -> list[Delivery]:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        return list((await session.scalars(select(Delivery).order_by(Delivery.id))).all())


async def test_ticket_received_goes_to_the_contact_threaded(services, sessions, sink) -> None:  # type: ignore[no-untyped-def]
    handler, _ = sink
    statuses = await status_ids(sessions)
    ticket_id = await make_ticket(sessions)
    event = created(ticket_id, statuses["new"])
    await handle_event(services, event)
    await services.outbound.deliver_due()
    [mail] = handler.to("ada@example.com")
    assert mail["Subject"] == f"We received your request: The printer is on fire [#{ticket_id}]"
    assert mail["In-Reply-To"] == "<m1@example.com>"
    assert mail["References"] == "<older@example.com> <m1@example.com>"
    assert mail["Auto-Submitted"] == "auto-replied"
    assert mail["From"] == "support@acme.test"
    assert "Hello Ada" in mail.get_body(("plain",)).get_content()
    async with sessions() as session:
        follow_up = (await session.scalars(select(OutboxEvent).where(OutboxEvent.type == MESSAGE_SENT))).one()
    assert follow_up.body["actor"]["kind"] == AUTOMATION
    assert follow_up.body["causation_id"] == event.id and follow_up.body["depth"] == 1
    assert follow_up.body["payload"]["from_ticket"] is False


async def test_the_same_event_twice_or_concurrently_sends_one_email(services, sessions, sink) -> None:  # type: ignore[no-untyped-def]
    handler, _ = sink
    statuses = await status_ids(sessions)
    ticket_id = await make_ticket(sessions)
    event = created(ticket_id, statuses["new"])
    await asyncio.gather(handle_event(services, event), handle_event(services, event))
    await handle_event(services, event)
    await services.outbound.deliver_due()
    assert len(handler.received) == 1
    assert len(await deliveries_of(sessions)) == 1
    assert await count(sessions, AppliedEffect) == 1
    assert await count(sessions, OutboxEvent, OutboxEvent.type == MESSAGE_SENT) == 1


async def test_agent_email_trigger_changes_status_once(services, sessions) -> None:  # type: ignore[no-untyped-def]
    statuses = await status_ids(sessions)
    ticket_id = await make_ticket(sessions)
    event = agent_email(ticket_id)
    await asyncio.gather(handle_event(services, event), handle_event(services, event))
    await handle_event(services, event)
    async with sessions() as session:
        ticket = await session.get(Ticket, ticket_id)
        changes = (await session.scalars(select(OutboxEvent).where(OutboxEvent.type == TICKET_STATUS_CHANGED))).all()
    assert ticket.status_id == statuses["waiting_on_contact"]
    assert len(changes) == 1
    payload = changes[0].body["payload"]
    assert (payload["from_status_id"], payload["to_status_id"]) == (statuses["new"], statuses["waiting_on_contact"])
    assert changes[0].body["depth"] == 1 and changes[0].body["actor"]["kind"] == AUTOMATION


async def test_trigger_settings_are_read_per_event(services, sessions) -> None:  # type: ignore[no-untyped-def]
    statuses = await status_ids(sessions)
    ticket_id = await make_ticket(sessions)
    async with sessions.begin() as session:
        await session.execute(update(PipelineAutomation).values(email_sent_enabled=False))
    await handle_event(services, agent_email(ticket_id, Actor(AGENT)))
    async with sessions() as session:
        assert (await session.get(Ticket, ticket_id)).status_id == statuses["new"]
    async with sessions.begin() as session:
        await session.execute(update(PipelineAutomation).values(email_sent_enabled=True,
                                                                email_sent_status_id=statuses["waiting_on_us"]))
    await handle_event(services, agent_email(ticket_id, Actor(AGENT)))
    async with sessions() as session:
        assert (await session.get(Ticket, ticket_id)).status_id == statuses["waiting_on_us"]


async def test_closing_sends_ticket_closed_and_notifies_the_owners_team(services, sessions, sink) -> None:  # type: ignore[no-untyped-def]
    handler, _ = sink
    statuses = await status_ids(sessions)
    _, (alice, bob) = await make_team(sessions, "Tier 1", [("Alice", "alice@acme.test"), ("Bob", "bob@acme.test")])
    await make_team(sessions, "Tier 2", [("Eve", "eve@acme.test")])
    ticket_id = await make_ticket(sessions, owner_id=alice, status="closed")
    await handle_event(services, closed(ticket_id, statuses["waiting_on_us"], statuses["closed"]))
    await services.outbound.deliver_due()
    [to_contact] = handler.to("ada@example.com")
    assert to_contact["Subject"].startswith("Your request is closed")
    assert len(handler.to("alice@acme.test")) == 1 and len(handler.to("bob@acme.test")) == 1
    assert handler.to("eve@acme.test") == []
    note = handler.to("bob@acme.test")[0]
    assert note["Auto-Submitted"] == "auto-generated" and f"[#{ticket_id}]" in note["Subject"]
    assert f"Ticket #{ticket_id}" in note.get_body(("plain",)).get_content()


async def _chain(sessions, status_id: int, *actions: StatusAction) -> None:  # type: ignore[no-untyped-def]
    async with sessions.begin() as session:
        await session.execute(StatusAction.__table__.delete().where(StatusAction.status_id == status_id))
        for position, action in enumerate(actions):
            action.status_id, action.position = status_id, position
            session.add(action)


async def test_every_recipient_kind(services, sessions, sink) -> None:  # type: ignore[no-untyped-def]
    handler, _ = sink
    statuses = await status_ids(sessions)
    team, (alice, bob) = await make_team(sessions, "Tier 1", [("Alice", "alice@acme.test"), ("Bob", "bob@acme.test")])
    _, (eve,) = await make_team(sessions, "Tier 2", [("Eve", "eve@acme.test")])
    await _chain(sessions, statuses["waiting_on_us"],
                 StatusAction(kind=NOTIFY, recipient_kind=TO_USER, recipient_id=eve),
                 StatusAction(kind=NOTIFY, recipient_kind=TO_TEAM, recipient_id=team),
                 StatusAction(kind=NOTIFY, recipient_kind=TO_OWNER))
    ticket_id = await make_ticket(sessions, owner_id=bob)
    event = moved(ticket_id, statuses["new"], statuses["waiting_on_us"])
    await handle_event(services, event)
    await services.outbound.deliver_due()
    assert len(handler.to("eve@acme.test")) == 1
    assert len(handler.to("alice@acme.test")) == 1
    assert len(handler.to("bob@acme.test")) == 2  # as a team member and as the owner
    assert handler.to("ada@example.com") == []


async def test_marketing_template_only_reaches_marketing_contacts(services, sessions) -> None:  # type: ignore[no-untyped-def]
    statuses = await status_ids(sessions)
    async with sessions.begin() as session:
        newsletter = EmailTemplate(key="tips", name="Tips", subject="Tips", body_text="Tips", body_html="",
                                   transactional=False)
        session.add(newsletter)
        await session.flush()
        template_id = newsletter.id
    await _chain(sessions, statuses["new"], StatusAction(kind=SEND_EMAIL, template_id=template_id))
    plain = await make_ticket(sessions, contact_email="plain@example.com")
    fan = await make_ticket(sessions, contact_email="fan@example.com", marketing=True)
    await handle_event(services, created(plain, statuses["new"]))
    await handle_event(services, created(fan, statuses["new"]))
    assert [d.recipient for d in await deliveries_of(sessions)] == ["fan@example.com"]


async def test_messenger_tickets_get_actions_only_when_enabled(services, sessions) -> None:  # type: ignore[no-untyped-def]
    statuses = await status_ids(sessions)
    first = await make_ticket(sessions, source_channel="messenger")
    await handle_event(services, created(first, statuses["new"]))
    assert await deliveries_of(sessions) == []
    async with sessions.begin() as session:
        await session.execute(update(PipelineAutomation).values(action_sources=["messenger"]))
    second = await make_ticket(sessions, source_channel="messenger", message_id="m2@example.com")
    await handle_event(services, created(second, statuses["new"]))
    assert [d.ticket_id for d in await deliveries_of(sessions)] == [second]


async def test_depth_limit_stops_automation_chains(services, sessions) -> None:  # type: ignore[no-untyped-def]
    statuses = await status_ids(sessions)
    ticket_id = await make_ticket(sessions)
    event = created(ticket_id, statuses["new"])
    for _ in range(MAX_DEPTH):
        event = event.follow_up(TicketStatusChanged, **moved(ticket_id, statuses["new"], statuses["new"]).payload)
    await handle_event(services, event)
    assert await deliveries_of(sessions) == []


async def test_automated_mail_to_one_recipient_is_rate_limited(services, sessions) -> None:  # type: ignore[no-untyped-def]
    statuses = await status_ids(sessions)
    for n in range(MAX_AUTOMATED_MAILS_PER_WINDOW + 2):
        ticket_id = await make_ticket(sessions, message_id=f"loop{n}@example.com")
        await handle_event(services, created(ticket_id, statuses["new"]))
    assert len(await deliveries_of(sessions)) == MAX_AUTOMATED_MAILS_PER_WINDOW


async def test_embedded_runner_dead_letters_a_failing_event_and_moves_on(runner, sessions) -> None:  # type: ignore[no-untyped-def]
    statuses = await status_ids(sessions)
    await break_template(sessions, "ticket_received")
    broken = await make_ticket(sessions)
    fine = await make_ticket(sessions, message_id="m2@example.com", status="waiting_on_us")
    async with sessions.begin() as session:
        await record_events(session, created(broken, statuses["new"]), agent_email(fine, Actor(AGENT)))
    await runner.run_until_idle()
    async with sessions() as session:
        [letter] = (await session.scalars(select(DeadLetter))).all()
        assert letter.attempts == runner.max_attempts and "does not render" in letter.error
        assert (await session.get(Ticket, fine)).status_id == statuses["waiting_on_contact"]
        assert await session.scalar(select(func.count()).select_from(OutboxEvent)
                                    .where(OutboxEvent.handled_at.is_(None))) == 0


async def test_a_customer_reply_reopens_a_closed_ticket_then_any_thread_counts(services, sessions) -> None:  # type: ignore[no-untyped-def]
    statuses = await status_ids(sessions)
    ticket_id = await make_ticket(sessions, status="closed")
    await handle_event(services, customer_email(ticket_id, on_origin_thread=True))
    async with sessions() as session:
        ticket = await session.get(Ticket, ticket_id)
        change = (await session.scalars(select(OutboxEvent).where(OutboxEvent.type == TICKET_STATUS_CHANGED))).one()
    assert ticket.status_id == statuses["waiting_on_us"] and ticket.reopened_at is not None
    assert ticket.closed_at is None
    assert change.body["payload"]["reopened"] is True and change.body["payload"]["is_closed"] is False
    async with sessions.begin() as session:
        (await session.get(Ticket, ticket_id)).status_id = statuses["waiting_on_contact"]
    await handle_event(services, customer_email(ticket_id, on_origin_thread=False))
    assert await _status_of(sessions, ticket_id) == statuses["waiting_on_us"]


async def test_an_email_on_another_thread_of_a_never_closed_ticket_changes_nothing(services, sessions) -> None:  # type: ignore[no-untyped-def]
    statuses = await status_ids(sessions)
    ticket_id = await make_ticket(sessions, status="waiting_on_contact")
    await handle_event(services, customer_email(ticket_id, on_origin_thread=False))
    assert await _status_of(sessions, ticket_id) == statuses["waiting_on_contact"]


async def _status_of(sessions, ticket_id: int) -> int:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        return (await session.get(Ticket, ticket_id)).status_id


async def test_a_spam_ticket_triggers_no_automation(services, sessions, sink) -> None:  # type: ignore[no-untyped-def]
    """Neither its status actions (the "ticket received" email) nor a status trigger run; unmarked, they do."""
    statuses = await status_ids(sessions)
    ticket_id = await make_ticket(sessions)
    async with sessions.begin() as session:
        await session.execute(update(Ticket).where(Ticket.id == ticket_id).values(is_spam=True))
    await handle_event(services, created(ticket_id, statuses["new"]))
    await handle_event(services, agent_email(ticket_id))
    assert await count(sessions, Delivery) == 0
    assert await count(sessions, AppliedEffect) == 0
    async with sessions() as session:
        assert (await session.get_one(Ticket, ticket_id)).status_id == statuses["new"]
    async with sessions.begin() as session:
        await session.execute(update(Ticket).where(Ticket.id == ticket_id).values(is_spam=False))
    await handle_event(services, created(ticket_id, statuses["new"]))
    assert await count(sessions, Delivery) == 1
