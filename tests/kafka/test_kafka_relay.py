"""The outbox relay against a real broker: order, keys, acknowledgement, broker restarts."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from _kafka_standin import effects_by_ticket, standin_handler
from frontdesk.automation.relay import OutboxRelay, outbox_lag
from _kafka_support import event_ids, read_topic, restart_broker, wait_for
from frontdesk.events import CUSTOMER, Actor, DomainEvent, MessageReceived, TicketCreated
from frontdesk.model import OutboxEvent
from frontdesk.outbox import record_events

pytestmark = pytest.mark.kafka


async def record(sessions, events: list[DomainEvent]) -> None:
    async with sessions() as session, session.begin():
        await record_events(session, *events)


def ticket_events(ticket_id: int, count: int) -> list[DomainEvent]:
    first = TicketCreated(ticket_id=ticket_id, actor=Actor(CUSTOMER), pipeline_id=1, status_id=1, source="email")
    return [first] + [first.follow_up(MessageReceived, actor=Actor(CUSTOMER), message_id=n, conversation_id=None,
                                      channel="email", channel_id=None, direction="inbound", author_kind="customer",
                                      sender=None, match_rule=None, ticket_created=False, on_origin_thread=True,
                                      ticket_reopened=False)
                      for n in range(1, count)]


async def all_published(sessions) -> bool:
    return (await outbox_lag(sessions)).unpublished == 0


async def test_relay_publishes_each_tickets_events_in_order_keyed_by_ticket(sessions, topics):
    # Interleave three tickets' events the way concurrent ingestion would.
    per_ticket = {ticket: ticket_events(ticket, 10) for ticket in (101, 102, 103)}
    for n in range(10):
        await record(sessions, [per_ticket[ticket][n] for ticket in per_ticket])

    async with OutboxRelay(sessions, topics.bootstrap, topic=topics.events, batch_size=7):
        await wait_for(lambda: all_published(sessions), timeout=60, what="the outbox to drain")

    records = await read_topic(topics.bootstrap, topics.events, until=30)
    assert len(records) == 30  # each acknowledged once, nothing left over
    for ticket, events in per_ticket.items():
        mine = [r for r in records if r.key == str(ticket).encode()]
        assert len({r.partition for r in mine}) == 1, "a ticket's events share one partition"
        assert event_ids(sorted(mine, key=lambda r: r.offset)) == [e.id for e in events]
        assert dict(mine[0].headers)["event_type"] == b"ticket.created"
    async with sessions() as session:
        stamps = (await session.execute(select(OutboxEvent.published_at))).scalars().all()
    assert all(stamp is not None for stamp in stamps)


async def test_relay_keeps_events_while_the_broker_is_away_and_publishes_them_after(sessions, topics, settings):
    first = ticket_events(7, 5)
    await record(sessions, first)
    relay = OutboxRelay(sessions, topics.bootstrap, topic=topics.events, batch_size=3, send_timeout=5)
    relay.start()
    try:
        await wait_for(lambda: all_published(sessions), timeout=60, what="the first events to be published")
        # Meanwhile more events are committed: before, during and after the restart.
        writer = asyncio.create_task(_keep_recording(sessions, start_ticket=200, tickets=40))
        await asyncio.to_thread(restart_broker, topics.bootstrap)
        await writer
        await wait_for(lambda: all_published(sessions), timeout=120, what="the outbox to drain after the restart")
    finally:
        await relay.stop()

    async with sessions() as session:
        recorded = (await session.execute(select(OutboxEvent.event_id, OutboxEvent.ticket_id)
                                          .order_by(OutboxEvent.id))).all()
    records = await read_topic(topics.bootstrap, topics.events, until=len(recorded))
    published = event_ids(records)
    assert set(published) == {event_id for event_id, _ in recorded}, "no event lost"
    # At least once: a batch cut off by the restart may go out again, but
    # each ticket's first sightings stay in commit order ...
    for ticket in {t for _, t in recorded}:
        expected = [e for e, t in recorded if t == ticket]
        seen = [json.loads(r.value)["id"] for r in sorted(records, key=lambda r: (r.partition, r.offset))
                if r.key == str(ticket).encode()]
        assert list(dict.fromkeys(seen)) == expected
    # ... and an idempotent consumer applies each exactly once.
    from frontdesk.events import DomainEvent as Event
    handle = standin_handler(settings, sessions)
    for record_ in records:
        await handle(Event.from_dict(json.loads(record_.value)))
    counts = await effects_by_ticket(sessions)
    assert sum(counts.values()) == len(recorded)


async def _keep_recording(sessions, *, start_ticket: int, tickets: int) -> None:
    for ticket in range(start_ticket, start_ticket + tickets):
        await record(sessions, ticket_events(ticket, 2))
        await asyncio.sleep(0.1)


async def test_two_relays_on_postgresql_publish_each_event_once_in_ticket_order(sessions, topics, settings):
    if settings.is_sqlite:
        pytest.skip("on SQLite the daemon runs the only relay")
    per_ticket = {ticket: ticket_events(ticket, 10) for ticket in range(301, 306)}
    first = OutboxRelay(sessions, topics.bootstrap, topic=topics.events, batch_size=4)
    second = OutboxRelay(sessions, topics.bootstrap, topic=topics.events, batch_size=4)
    first.start()
    second.start()
    try:
        for n in range(10):  # committed while both relays run
            await record(sessions, [per_ticket[ticket][n] for ticket in per_ticket])
        await wait_for(lambda: all_published(sessions), timeout=60, what="the outbox to drain")
    finally:
        await first.stop()
        await second.stop()

    records = await read_topic(topics.bootstrap, topics.events, until=50)
    assert len(records) == 50, "each event published once"
    for ticket, events in per_ticket.items():
        mine = sorted((r for r in records if r.key == str(ticket).encode()), key=lambda r: r.offset)
        assert event_ids(mine) == [e.id for e in events]


async def test_relay_lag_metrics_show_what_waits_for_an_unreachable_broker(sessions, topics):
    await record(sessions, ticket_events(9, 3))
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{probe.getsockname()[1]}"
    relay = OutboxRelay(sessions, dead, topic=topics.events, send_timeout=1)
    relay.start()
    try:
        await wait_for(lambda: _metric("frontdesk_outbox_unpublished", 3), timeout=30,
                       what="the unpublished gauge to show the waiting events")
        assert REGISTRY.get_sample_value("frontdesk_outbox_oldest_unpublished_age_seconds") > 0
    finally:
        await relay.stop()
    async with OutboxRelay(sessions, topics.bootstrap, topic=topics.events):
        await wait_for(lambda: _metric("frontdesk_outbox_unpublished", 0), timeout=60,
                       what="the gauge to fall to zero once published")
    assert REGISTRY.get_sample_value("frontdesk_outbox_oldest_unpublished_age_seconds") == 0


async def _metric(name: str, wanted: float) -> bool:
    return REGISTRY.get_sample_value(name) == wanted
