"""The faust app of ``frontdesk worker``: one agent over the events topic.

The agent is a thin runner: it takes messages in batches
(``stream.take_events``: up to ``batch_size``, or what came within
``batch_within`` seconds), decodes them and hands the batch to
:class:`automation.event_processor.EventProcessor` (the embedded runner
uses the same one), which applies it in one transaction, or one event at a
time with bounded retries when that fails, and dead-letters what keeps
failing; it never raises.  ``take_events`` acknowledges a batch's messages
only when the agent asks for the next batch, that is after the batch's
transaction committed, so faust commits no offset of a batch before its
effects are durable: a killed worker redelivers what it had not finished,
and the idempotent handler makes the repeat harmless.

Workers sharing the consumer group split the partitions; events are keyed
by ticket, so each ticket is handled by one worker, in order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Awaitable, Callable, Sequence

import faust
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from frontdesk.automation.dead_letters import EventHandler
from frontdesk.automation.event_processor import EventProcessor, decode_message
from frontdesk.automation.kafka_config import KafkaTopics, bootstrap_servers
from frontdesk.background import RetryPolicy

# Registered in the worker process only: this module is the worker's.
HANDLED = Counter("frontdesk_worker_events_handled_total", "Events the worker applied")
RETRIED = Counter("frontdesk_worker_event_retries_total", "Failed attempts at an event that were retried")
DEAD_LETTERED = Counter("frontdesk_worker_events_dead_lettered_total", "Events sent to the dead-letter topic")


def create_worker_app(
    topics: KafkaTopics,
    handler: EventHandler,
    sessions: async_sessionmaker[AsyncSession],
    *,
    datadir: Path,
    policy: RetryPolicy = RetryPolicy(),
    on_start: Sequence[Callable[[], Awaitable[None]]] = (),
    batch_size: int = 500,
    batch_within: float = 0.02,
) -> faust.App:
    """The worker app; ``on_start`` coroutines run once the worker is up (e.g. the mail sender)."""
    app = faust.App(
        topics.group,  # the app id is the consumer group
        broker=[f"kafka://{server}" for server in bootstrap_servers(topics.bootstrap)],
        # Must equal the broker's num.partitions: faust declares the topics
        # with this count, the relay lets the broker create them on first use.
        topic_partitions=topics.partitions,
        topic_disable_leader=True,  # no tables, so no leader topic to assign
        store="memory://",
        web_enabled=False,
        autodiscover=False,
        datadir=str(datadir),
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # A killed worker's partitions move to the others after this long
        # without heartbeats (faust's default is a minute).
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
        key_serializer="raw",
        value_serializer="raw",
    )
    events_topic = app.topic(topics.events, key_type=bytes, value_type=bytes, partitions=topics.partitions)
    dead_letter_topic = app.topic(topics.dead_letters, key_type=bytes, value_type=bytes,
                                  partitions=topics.partitions)

    async def publish_dead_letter(key: bytes, value: bytes) -> None:
        sent = await dead_letter_topic.send(key=key, value=value)
        await sent  # wait for the broker's acknowledgement

    processor = EventProcessor(handler, sessions, name="worker_event", policy=policy,
                               publish_dead_letter=publish_dead_letter, on_handled=HANDLED.inc,
                               on_retry=RETRIED.inc, on_dead_lettered=DEAD_LETTERED.inc)

    @app.agent(events_topic, name="apply_events")
    async def apply_events(stream: faust.StreamT) -> None:
        # A short ``within``: at a trickle, an event waits at most that long for company.
        async for events in stream.take_events(batch_size, within=batch_within):
            await processor.apply_batch([
                decode_message(event.key, event.value,
                               origin=f"{event.message.topic}/{event.message.partition}/{event.message.offset}")
                for event in events
            ])

    for starter in on_start:
        app.task(starter)

    return app
