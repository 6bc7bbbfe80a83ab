"""Where the event stream lives in Kafka: topic names, partition count, consumer group.

Read once at start-up from the environment (operators running containers set
``FRONTDESK_KAFKA_*``); the bootstrap servers themselves come from
:class:`frontdesk.settings.Settings`.  The partition count must match the
broker's ``num.partitions`` (``deploy/kafka/start.sh`` uses the same default),
because the relay lets the broker create the topic on first use while faust
declares it with ``topic_partitions``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

EVENTS_TOPIC = "frontdesk.events"
DEAD_LETTER_SUFFIX = ".dlq"
WORKER_GROUP = "frontdesk-worker"
PARTITIONS = 8


@dataclass(frozen=True)
class KafkaTopics:
    bootstrap: str
    events: str = EVENTS_TOPIC
    group: str = WORKER_GROUP
    partitions: int = PARTITIONS
    replication_factor: int = 1  # a single development broker; 3 on a production cluster

    @property
    def dead_letters(self) -> str:
        return self.events + DEAD_LETTER_SUFFIX

    @classmethod
    def from_environ(cls, bootstrap: str, environ: Mapping[str, str] | None = None) -> KafkaTopics:
        env = os.environ if environ is None else environ
        return cls(
            bootstrap=bootstrap,
            events=env.get("FRONTDESK_KAFKA_TOPIC") or EVENTS_TOPIC,
            group=env.get("FRONTDESK_KAFKA_GROUP") or WORKER_GROUP,
            partitions=int(env.get("FRONTDESK_KAFKA_PARTITIONS") or PARTITIONS),
            replication_factor=int(env.get("FRONTDESK_KAFKA_REPLICATION_FACTOR") or 1),
        )


def bootstrap_servers(bootstrap: str) -> list[str]:
    """``host:port[,host:port]`` (an optional ``kafka://`` prefix allowed) as aiokafka wants it."""
    return [part.strip().removeprefix("kafka://") for part in bootstrap.split(",") if part.strip()]


async def ensure_topics(topics: KafkaTopics) -> None:
    """Create the events and dead-letter topics with our partition count, if they are missing.

    Done by the relay and the worker before they use them: a worker that
    subscribes to a topic that does not exist yet would not see it appear
    until its next metadata refresh, and brokers in production often have
    automatic topic creation turned off.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(topics.bootstrap))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in (topics.events, topics.dead_letters) if name not in existing]
        if missing:
            response = await admin.create_topics(
                [NewTopic(name, topics.partitions, topics.replication_factor) for name in missing])
            for name, code, *detail in response.topic_errors:
                # "Already exists": another relay or worker was first, which is fine.
                if code not in (0, TopicAlreadyExistsError.errno):
                    raise for_code(code)(f"cannot create Kafka topic {name}: {detail}")
    finally:
        await admin.close()
