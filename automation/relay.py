"""The outbox relay: publish committed outbox rows to Kafka, in order, at least once.

Each pass takes the oldest unpublished rows (by id, the commit order the
outbox keeps), sends them keyed by ticket so a ticket's events land on one
partition in order, waits for the broker's acknowledgement of every one
(``acks=all``, idempotent producer) and only then stamps ``published_at``.
A crash or a broker outage between send and stamp means the rows go out
again: consumers are idempotent, so at-least-once is what we promise.

Several relays may run against PostgreSQL: a pass holds a transaction-scoped
advisory lock, so one relay publishes at a time.  (``FOR UPDATE SKIP LOCKED``
alone would let two relays publish one ticket's events out of order.)  On
SQLite there is one relay, the daemon's.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime, timezone

import structlog
from aiokafka import AIOKafkaProducer
from prometheus_client import Counter, Gauge
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from frontdesk.automation.kafka_config import PARTITIONS, KafkaTopics, bootstrap_servers, ensure_topics
from frontdesk.background import Backoff, finish_or_cancel
from frontdesk.events import DomainEvent, EventSchemaError
from frontdesk.model import OutboxEvent

log = structlog.get_logger(__name__)

UNPUBLISHED = Gauge("frontdesk_outbox_unpublished", "Outbox events not yet acknowledged by Kafka")
OLDEST_AGE = Gauge(
    "frontdesk_outbox_oldest_unpublished_age_seconds",
    "Age of the oldest outbox event not yet acknowledged by Kafka (0 when none)",
)
PUBLISHED = Counter("frontdesk_outbox_published_total", "Outbox events acknowledged by Kafka")
PUBLISH_FAILURES = Counter("frontdesk_outbox_publish_failures_total", "Relay passes that failed and will be retried")

# Any number fits, as long as every relay uses the same one.
_RELAY_LOCK = 0x6664_6F75_7462_6F78 & 0x7FFF_FFFF_FFFF_FFFF  # "fdoutbox"


@dataclass(frozen=True)
class OutboxLag:
    unpublished: int
    oldest_age_seconds: float


async def outbox_lag(sessions: async_sessionmaker[AsyncSession]) -> OutboxLag:
    """How far the relay is behind: unpublished rows and the age of the oldest."""
    async with sessions() as session:
        count, oldest = (
            await session.execute(
                select(func.count(OutboxEvent.id), func.min(OutboxEvent.created_at)).where(
                    OutboxEvent.published_at.is_(None)
                )
            )
        ).one()
    age = 0.0
    if oldest is not None:
        if oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=timezone.utc)
        age = max(0.0, (datetime.now(timezone.utc) - oldest).total_seconds())
    return OutboxLag(unpublished=int(count), oldest_age_seconds=age)


def partition_key(row: OutboxEvent) -> bytes:
    """The event's own key (its ticket); a row that no longer parses keeps the same rule."""
    try:
        return DomainEvent.from_dict(row.body).key
    except (EventSchemaError, ValueError):
        return str(row.ticket_id if row.ticket_id is not None else row.event_id).encode()


@dataclass(frozen=True)
class PendingEvent:
    """An outbox row as it goes on the wire, detached from its session."""

    id: int
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]

    @classmethod
    def from_row(cls, row: OutboxEvent) -> PendingEvent:
        return cls(
            id=row.id,
            key=partition_key(row),
            value=json.dumps(row.body, separators=(",", ":")).encode(),
            headers=[("event_id", row.event_id.encode()), ("event_type", row.type.encode())],
        )


class OutboxRelay:
    """Runs as a background task of the daemon: ``async with OutboxRelay(...)``, or start()/stop()."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        bootstrap: str,
        *,
        topic: str,
        partitions: int = PARTITIONS,
        replication_factor: int = 1,
        batch_size: int = 200,
        poll_interval: float = 0.05,
        send_timeout: float = 30.0,
        max_backoff: float = 5.0,
    ) -> None:
        self._sessions = sessions
        self._bootstrap = bootstrap
        self.topic = topic
        self._topics = KafkaTopics(bootstrap, events=topic, partitions=partitions,
                                   replication_factor=replication_factor)
        self._topics_ensured = False
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._send_timeout = send_timeout
        # 0.2 s after the first failure, doubling up to max_backoff.
        self._backoff = Backoff(base=0.2, cap=max_backoff)
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()
        self._postgres: bool | None = None
        self._lag_measured_at = float("-inf")
        self._stopping = False
        self._stop_requested = asyncio.Event()

    async def __aenter__(self) -> OutboxRelay:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="outbox-relay")

    async def stop(self, grace: float = 10.0) -> None:
        """Let the pass in progress finish (up to ``grace`` seconds), then end.

        A pass cut between the broker's acknowledgement and the stamp would
        publish its rows again at the next start: harmless, but avoidable.
        """
        task, self._task = self._task, None
        if task is not None:
            self._stopping = True
            self._stop_requested.set()
            self._wakeup.set()
            try:
                await finish_or_cancel(task, grace, name="outbox-relay")
            finally:
                self._stopping = False
                self._stop_requested.clear()
        await self._close_producer()

    def wake(self) -> None:
        """Publish now rather than at the next poll (call after committing outbox rows)."""
        self._wakeup.set()

    async def run(self) -> None:
        """Publish forever; a failure is logged, backed off and retried, never skipped."""
        failures = 0
        while not self._stopping:
            try:
                published = await self.publish_pending()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the broker or the database: retry the same rows
                failures += 1
                PUBLISH_FAILURES.inc()
                await self._update_lag()  # the lag matters most while the broker is away
                await self._close_producer()  # a fresh producer after a failed batch: no stale sequence state
                delay = self._backoff.delay(failures)
                log.warning("outbox_relay_retry", error=repr(error), attempt=failures, retry_in=round(delay, 2))
                # Only stop cuts a backoff short: commits waking us would hammer a dead broker.
                try:
                    await asyncio.wait_for(self._stop_requested.wait(), delay)
                except asyncio.TimeoutError:
                    pass
                continue
            await self._update_lag()
            if published < self._batch_size:
                await self._pause(self._poll_interval)

    async def _pause(self, seconds: float) -> None:
        """Sleep until ``seconds`` pass or someone wakes us (a commit, or stop)."""
        try:
            await asyncio.wait_for(self._wakeup.wait(), seconds)
        except asyncio.TimeoutError:
            pass
        self._wakeup.clear()

    async def publish_pending(self) -> int:
        """One pass: publish up to a batch of the oldest unpublished rows; returns how many."""
        async with self._sessions() as session:
            if await self._is_postgres(session):
                async with session.begin():
                    locked = (await session.execute(text("SELECT pg_try_advisory_xact_lock(:key)"),
                                                    {"key": _RELAY_LOCK})).scalar()
                    if not locked:
                        return 0  # another relay is publishing; it keeps the order
                    rows = await self._pending(session)
                    await self._publish(rows)
                    await self._mark_published(session, rows)
                return len(rows)
            # SQLite: read, publish, then stamp in a transaction of its own, so
            # the write lock is not held across the network round trip.
            rows = await self._pending(session)
            await session.rollback()
            await self._publish(rows)
            async with session.begin():
                await self._mark_published(session, rows)
            return len(rows)

    async def _pending(self, session: AsyncSession) -> list[PendingEvent]:
        query = (
            select(OutboxEvent)
            .where(OutboxEvent.published_at.is_(None))
            .order_by(OutboxEvent.id)
            .limit(self._batch_size)
        )
        return [PendingEvent.from_row(row) for row in (await session.execute(query)).scalars()]

    async def _publish(self, rows: list[PendingEvent]) -> None:
        if not rows:
            return
        producer = await self._ensure_producer()
        acks = []
        for row in rows:
            # send() queues in order; the idempotent producer keeps that order per partition.
            acks.append(
                await producer.send(self.topic, value=row.value, key=row.key, headers=row.headers)
            )
        await asyncio.wait_for(asyncio.gather(*acks), self._send_timeout)
        PUBLISHED.inc(len(rows))

    async def _mark_published(self, session: AsyncSession, rows: list[PendingEvent]) -> None:
        if rows:
            await session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.id.in_([row.id for row in rows]))
                .values(published_at=datetime.now(timezone.utc))
            )

    async def _is_postgres(self, session: AsyncSession) -> bool:
        if self._postgres is None:
            self._postgres = session.get_bind().dialect.name == "postgresql"
        return self._postgres

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if not self._topics_ensured:
            await asyncio.wait_for(ensure_topics(self._topics), self._send_timeout)
            self._topics_ensured = True
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=bootstrap_servers(self._bootstrap),
                acks="all",
                enable_idempotence=True,
                linger_ms=2,
                request_timeout_ms=int(self._send_timeout * 1000),
            )
            try:
                await asyncio.wait_for(producer.start(), self._send_timeout)
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), 5)
            except Exception as error:  # a dead broker: nothing left to flush that we marked published
                log.info("outbox_relay_producer_close_failed", error=repr(error))

    async def _update_lag(self) -> None:
        # Once a second is plenty for a scrape, and spares the database a query per poll.
        now = asyncio.get_running_loop().time()
        if now - self._lag_measured_at < 1.0:
            return
        self._lag_measured_at = now
        try:
            lag = await outbox_lag(self._sessions)
        except Exception as error:  # the database is away too: keep the last figures
            log.info("outbox_lag_unavailable", error=repr(error))
            return
        UNPUBLISHED.set(lag.unpublished)
        OLDEST_AGE.set(lag.oldest_age_seconds)
