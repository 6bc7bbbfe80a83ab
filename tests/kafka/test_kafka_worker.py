"""The worker as a real process: it applies the handler, dead-letters poison, keeps flowing."""

from __future__ import annotations

import json
import sys

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from _kafka_standin import POISON, effects_by_ticket, handling_workers, standin_handler
from _kafka_support import REPO, WorkerProcess, read_topic, wait_for, worker_environment
from frontdesk.automation.dead_letters import list_dead_letters, replay_dead_letters
from frontdesk.automation.relay import OutboxRelay
from frontdesk.events import CUSTOMER, Actor, DomainEvent, TicketCreated
from frontdesk.outbox import record_events

pytestmark = pytest.mark.kafka


async def record(sessions, events: list[DomainEvent]) -> None:
    async with sessions() as session, session.begin():
        await record_events(session, *events)


def created(ticket_id: int, *, poison: bool = False) -> TicketCreated:
    return TicketCreated(ticket_id=ticket_id, actor=Actor(CUSTOMER), pipeline_id=1, status_id=1,
                         source=POISON if poison else "email")


async def test_worker_applies_the_handler_to_every_event_once(sessions, topics, standin_worker):
    await record(sessions, [created(ticket) for ticket in range(1, 21)])
    standin_worker.start()
    async with OutboxRelay(sessions, topics.bootstrap, topic=topics.events):
        counts = await wait_for(
            lambda: _when(effects_by_ticket(sessions), lambda c: len(c) == 20),
            timeout=120, what="the worker to handle 20 tickets")
    assert counts == {ticket: 1 for ticket in range(1, 21)}


async def test_two_workers_in_one_group_share_the_tickets(sessions, settings, topics, standin_worker, tmp_path):
    second = WorkerProcess([sys.executable, str(REPO / "tests" / "kafka" / "_kafka_standin.py")],
                           worker_environment(settings, topics), tmp_path / "second-worker.log")
    standin_worker.start()
    second.start()
    try:
        await wait_for(lambda: _group_size(topics.bootstrap, topics.group, 2), timeout=120,
                       what="both workers to join the consumer group")
        await record(sessions, [created(ticket) for ticket in range(1, 41)])
        async with OutboxRelay(sessions, topics.bootstrap, topic=topics.events):
            counts = await wait_for(
                lambda: _when(effects_by_ticket(sessions), lambda c: len(c) == 40),
                timeout=120, what="the workers to handle 40 tickets")
    finally:
        second.stop()
    assert counts == {ticket: 1 for ticket in range(1, 41)}
    assert len(await handling_workers(sessions)) == 2, "both workers handled a share"


async def _group_size(bootstrap: str, group: str, wanted: int) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [description] = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    group_state = description.to_object()["groups"][0]
    return group_state["state"] == "Stable" and len(group_state["members"]) >= wanted


async def test_poison_events_are_dead_lettered_the_stream_keeps_flowing_and_replay_works(
        sessions, settings, topics, standin_worker):
    poison = created(2, poison=True)
    await record(sessions, [created(1), poison])
    producer = AIOKafkaProducer(bootstrap_servers=topics.bootstrap)
    await producer.start()
    try:  # a message that is not an event at all, between the others
        await producer.send_and_wait(topics.events, b"\xff\x00 not json", key=b"2")
    finally:
        await producer.stop()
    await record(sessions, [created(3)])

    standin_worker.start()
    async with OutboxRelay(sessions, topics.bootstrap, topic=topics.events):
        await wait_for(lambda: _when(effects_by_ticket(sessions), lambda c: 3 in c),
                       timeout=120, what="the event after the poison to be handled")
        letters = await wait_for(lambda: _when(list_dead_letters(sessions), lambda d: len(d) == 2),
                                 timeout=60, what="two dead letters")
    standin_worker.stop()

    assert await effects_by_ticket(sessions) == {1: 1, 3: 1}
    by_kind = {("event" if letter.event_type else "undecodable"): letter for letter in letters}
    assert by_kind["event"].event_id == poison.id
    assert "always fails" in by_kind["event"].error and by_kind["event"].attempts == 3
    assert "not json" in by_kind["undecodable"].body["undecodable"]
    on_topic = [json.loads(r.value) for r in await read_topic(topics.bootstrap, topics.dead_letters, until=2)]
    assert {letter["event_id"] for letter in on_topic} == {poison.id, by_kind["undecodable"].event_id}
    assert any("always fails" in letter["error"] for letter in on_topic)

    # The bug is fixed: replaying through the handler applies the effect, once.
    cured = standin_handler(settings, sessions, cured=True)
    outcomes = await replay_dead_letters(sessions, [by_kind["event"].id, by_kind["undecodable"].id], handler=cured)
    assert [(o.ok, o.detail.split(":")[0]) for o in outcomes] == [(True, "handled"), (False, "not an event, cannot replay")]
    assert await effects_by_ticket(sessions) == {1: 1, 2: 1, 3: 1}
    again = await replay_dead_letters(sessions, [by_kind["event"].id], handler=cured)
    assert again[0].ok is False and again[0].detail == "already replayed"
    remaining = await list_dead_letters(sessions)
    assert [letter.id for letter in remaining] == [by_kind["undecodable"].id]


async def test_replay_can_republish_to_the_main_topic(sessions, topics, standin_worker):
    poison = created(5, poison=True)
    await record(sessions, [poison])
    standin_worker.start()
    async with OutboxRelay(sessions, topics.bootstrap, topic=topics.events):
        [letter] = await wait_for(lambda: list_dead_letters(sessions), timeout=120, what="the dead letter")
    standin_worker.stop()

    [outcome] = await replay_dead_letters(sessions, [letter.id], bootstrap=topics.bootstrap, topic=topics.events)
    assert outcome.ok
    records = await read_topic(topics.bootstrap, topics.events, until=2)
    assert [json.loads(r.value)["id"] for r in records] == [poison.id, poison.id]
    assert all(r.key == b"5" for r in records)
    assert await list_dead_letters(sessions) == []


async def _when(awaitable, accept):  # type: ignore[no-untyped-def]
    value = await awaitable
    return value if accept(value) else None
