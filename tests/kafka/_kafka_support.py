"""Helpers for the Kafka tests: read topics, restart the broker, run worker processes, wait."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import os
import subprocess
from pathlib import Path
from typing import AsyncIterator

import pytest
from aiosmtpd.smtp import SMTP
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from frontdesk.automation.kafka_config import KafkaTopics
from frontdesk.settings import Settings

REPO = Path(__file__).resolve().parents[2]
KAFKA_DEPLOY = REPO / "deploy" / "kafka"


def restart_broker(bootstrap: str) -> None:
    """Stop and start the broker on the same data (deploy/kafka/restart.sh)."""
    port = bootstrap.rsplit(":", 1)[1]
    subprocess.run([str(KAFKA_DEPLOY / "restart.sh")], check=True, capture_output=True,
                   env={**os.environ, "FRONTDESK_KAFKA_PORT": port}, timeout=180)


async def read_topic(bootstrap: str, topic: str, *, until: int, timeout: float = 60.0) -> list[ConsumerRecord]:
    """Every record of ``topic`` from the start, once at least ``until`` have arrived."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        partitions: set[int] | None = None
        while len(records) < until:
            if asyncio.get_running_loop().time() > deadline:
                break
            partitions = partitions or consumer.partitions_for_topic(topic)
            if not partitions:
                await consumer._client.force_metadata_update()  # the topic may not exist yet
                await asyncio.sleep(0.2)
                continue
            if not consumer.assignment():
                consumer.assign([TopicPartition(topic, p) for p in partitions])
                await consumer.seek_to_beginning()
            batch = await consumer.getmany(timeout_ms=500)
            for part in batch.values():
                records.extend(part)
    finally:
        await consumer.stop()
    return records


def event_ids(records: list[ConsumerRecord]) -> list[str]:
    return [json.loads(record.value)["id"] for record in records]


def worker_environment(settings: Settings, topics: KafkaTopics) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "FRONTDESK_DATABASE_URL": settings.reveal_database_url(),
        "FRONTDESK_DATA_DIR": str(settings.data_dir),
        "FRONTDESK_SECRET_KEY": settings.secret_key.reveal(),
        "FRONTDESK_KAFKA_BOOTSTRAP": topics.bootstrap,
        "FRONTDESK_KAFKA_TOPIC": topics.events,
        "FRONTDESK_KAFKA_GROUP": topics.group,
        "FRONTDESK_KAFKA_PARTITIONS": str(topics.partitions),
        "FRONTDESK_LOG_LEVEL": "WARNING",
    }


class WorkerProcess:
    """A worker as a real process, started, SIGKILLed and restarted by a test."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self._argv = argv
        self._env = env
        self._log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self._log_path, "ab")
        self.process = subprocess.Popen(self._argv, env=self._env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # SIGKILL: no shutdown, no offset commit
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)

    def log_tail(self) -> str:
        return self._log_path.read_text(errors="replace")[-4000:]


async def wait_for(predicate, *, timeout: float, what: str, interval: float = 0.2):  # type: ignore[no-untyped-def]
    """Poll an async predicate until it returns something truthy; fail with ``what`` if it never does."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await predicate()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what} (last: {result!r})")
        await asyncio.sleep(interval)


class MailSink:
    """The smarthost: an aiosmtpd handler keeping every message it accepted."""

    def __init__(self) -> None:
        self.received: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.received.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 2.0.0 queued"


@contextlib.asynccontextmanager
async def mail_sink() -> AsyncIterator[tuple[MailSink, int]]:
    sink = MailSink()
    server = await asyncio.get_running_loop().create_server(lambda: SMTP(sink, hostname="sink.test"), "127.0.0.1", 0)
    try:
        yield sink, server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()
