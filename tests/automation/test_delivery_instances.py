"""Two delivery loops on one PostgreSQL, each with its own engine as two daemons would have: every
queued mail reaches the smarthost once.

(One row and two loops on one engine: ``test_outbound.py``; two outbox relays:
``tests/kafka/test_kafka_relay.py``; two workers in one group: ``tests/kafka/test_kafka_worker.py``.)
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from sqlalchemy import select

from frontdesk.model import Delivery
from frontdesk.outbound.deliveries import DeliveryLoop, queue_delivery, store_email
from frontdesk.outbound.email.compose import OutboundEmail
from frontdesk.storage.database import create_engine, session_factory

MAILS = 24


async def queue_mails(sessions, blobs) -> None:  # type: ignore[no-untyped-def]
    async with sessions.begin() as session:
        for n in range(MAILS):
            to = f"customer{n}@example.com"
            _, payload = await store_email(blobs, OutboundEmail(
                from_address="support@acme.test", to=(to,), subject=f"Ticket received [#{n}]",
                text=f"We have your request {n}.", message_id=f"instances-{n}@acme.test"))
            queue_delivery(session, idempotency_key=f"instances:{n}", channel="email", recipient=to,
                           kind="template", payload=payload)


async def test_two_delivery_loops_send_each_mail_once(mail_settings, sessions, blobs, sink):  # type: ignore[no-untyped-def]
    if mail_settings.is_sqlite:
        pytest.skip("on SQLite one daemon runs the only delivery loop")
    handler, _ = sink
    await queue_mails(sessions, blobs)
    engines = [create_engine(mail_settings.reveal_database_url()) for _ in range(2)]
    loops = [DeliveryLoop(mail_settings, session_factory(engine), blobs) for engine in engines]
    try:
        # Both see the same due rows at once; each claims what the other has not.
        attempted = await asyncio.gather(*(loop.deliver_due() for loop in loops))
        assert sum(attempted) == MAILS
        assert await asyncio.gather(*(loop.deliver_due() for loop in loops)) == [0, 0]
    finally:
        for engine in engines:
            await engine.dispose()
    sent = Counter(message["Message-ID"] for message in handler.received)
    assert sent == Counter({f"<instances-{n}@acme.test>": 1 for n in range(MAILS)})
    async with sessions() as session:
        rows = (await session.execute(select(Delivery.state, Delivery.attempts))).all()
    assert sorted(rows) == [("sent", 1)] * MAILS
