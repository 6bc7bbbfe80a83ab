"""Fixtures for the tests that need the Kafka broker from ``deploy/kafka``.

``FRONTDESK_TEST_KAFKA`` names it (``deploy/kafka/start.sh`` prints the line).
Without it these tests skip on a laptop and fail in CI, where a missing
broker is a broken setup rather than a choice.  Every test gets topics and a
consumer group of its own, so tests can share one broker.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from frontdesk.automation.kafka_config import KafkaTopics
from frontdesk.settings import Settings

from _servers import server_address
from _kafka_support import REPO, WorkerProcess, worker_environment


@pytest.fixture
def kafka_bootstrap() -> str:
    return server_address("FRONTDESK_TEST_KAFKA", "deploy/kafka/start.sh")


@pytest.fixture
def topics(kafka_bootstrap: str) -> KafkaTopics:
    run = uuid.uuid4().hex[:10]
    return KafkaTopics(bootstrap=kafka_bootstrap, events=f"test.{run}.events", group=f"test-{run}")


@pytest.fixture
def standin_worker(settings: Settings, topics: KafkaTopics, tmp_path: Path) -> Iterator[WorkerProcess]:
    worker = WorkerProcess([sys.executable, str(REPO / "tests" / "kafka" / "_kafka_standin.py")],
                           worker_environment(settings, topics), tmp_path / "worker.log")
    yield worker
    worker.stop()
