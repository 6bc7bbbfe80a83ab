"""@mention emails through the relay, the broker and the real worker process: a comment event that reaches
the worker three times (as after crashes before the offset was committed) makes exactly one email.

PostgreSQL only (the Kafka deployment's database) and one worker start, to keep the suite short (a worker
restart costs a consumer-group rebalance, about 20 s); the handler's replay on both databases, which is
what a restarted worker runs, is tests/automation/test_comments.py."""

from __future__ import annotations

import json
import sys

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select

from _kafka_support import WorkerProcess, wait_for, worker_environment
from frontdesk.automation.relay import OutboxRelay
from frontdesk.model import Delivery, OutboxEvent, Pipeline, Status, Ticket, User
from frontdesk.tickets.access import principal_for_user
from frontdesk.tickets.comments import add_comment

pytestmark = pytest.mark.kafka


async def _users_and_ticket(sessions) -> tuple[dict[str, int], int]:  # type: ignore[no-untyped-def]
    async with sessions.begin() as session:
        users = {name: User(name=name.title(), email=f"{name}@acme.test") for name in ("ann", "carl", "dan")}
        session.add_all(users.values())
        pipeline = await session.scalar(select(Pipeline).where(Pipeline.internal_name == "support"))
        status = await session.scalar(select(Status).where(Status.pipeline_id == pipeline.id))
        ticket = Ticket(name="Toner", pipeline_id=pipeline.id, status_id=status.id, source_channel="email")
        session.add(ticket)
        await session.flush()
        return {name: user.id for name, user in users.items()}, ticket.id


async def _comment(sessions, author: int, ticket_id: int, body: str) -> dict:  # type: ignore[no-untyped-def]
    """Comment as ``author``; returns the comment.created event body as the outbox holds it."""
    async with sessions.begin() as session:
        principal = await principal_for_user(session, await session.get(User, author))
        comment = await add_comment(session, principal, await session.get(Ticket, ticket_id), body)
        return (await session.scalars(select(OutboxEvent.body).where(OutboxEvent.type == "comment.created")
                                      .order_by(OutboxEvent.id.desc()))).first() | {"_comment": comment.id}


async def _mails_to(sessions, address: str) -> int:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        return await session.scalar(select(func.count()).select_from(Delivery).where(Delivery.recipient == address))


async def _redeliver(topics, body: dict) -> None:  # type: ignore[no-untyped-def]
    producer = AIOKafkaProducer(bootstrap_servers=topics.bootstrap)
    await producer.start()
    try:
        clean = {k: v for k, v in body.items() if not k.startswith("_")}
        await producer.send_and_wait(topics.events, json.dumps(clean).encode(), key=str(body["ticket_id"]).encode())
    finally:
        await producer.stop()


async def test_a_mention_event_delivered_three_times_sends_one_email(settings, sessions, topics,
                                                                                  tmp_path):
    if settings.is_sqlite:
        pytest.skip("runs on PostgreSQL only (suite time); the replay on SQLite is in tests/automation")
    users, ticket = await _users_and_ticket(sessions)
    worker = WorkerProcess([sys.executable, "-m", "frontdesk.runtime.worker"],
                           worker_environment(settings, topics), tmp_path / "worker.log")
    async with OutboxRelay(sessions, topics.bootstrap, topic=topics.events) as relay:
        try:
            first = await _comment(sessions, users["ann"], ticket, f"@[user:{users['carl']}] toner?")
            relay.wake()
            await _redeliver(topics, first)
            await _redeliver(topics, first)
            # A later event on the same ticket (same partition) is handled after the copies.
            await _comment(sessions, users["ann"], ticket, f"@[user:{users['dan']}] and you")
            relay.wake()
            worker.start()
            await wait_for(lambda: _mails_to(sessions, "dan@acme.test"), timeout=120, what="Dan's mention email")
        except BaseException:
            print(worker.log_tail())
            raise
        finally:
            worker.stop()
    assert (await _mails_to(sessions, "carl@acme.test"), await _mails_to(sessions, "dan@acme.test")) == (1, 1)
