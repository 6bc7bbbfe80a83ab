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
        )


def bootstrap_servers(bootstrap: str) -> list[str]:
    """``host:port[,host:port]`` (an optional ``kafka://`` prefix allowed) as aiokafka wants it."""
    return [part.strip().removeprefix("kafka://") for part in bootstrap.split(",") if part.strip()]
