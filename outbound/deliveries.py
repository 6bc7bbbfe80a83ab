"""Outbound deliveries: one row per send under an idempotency key, and the loop that sends due ones.

Queuing happens inside the caller's transaction (the one that records the
outbound message or applies an automation effect); sending happens only
after that commit, from :class:`DeliveryLoop`.  The row is claimed before
each attempt by bumping ``attempts`` under a lease, so two loops never send
the same row at once; a crash between sending and recording the result
makes the lease expire and the same stored bytes (same Message-ID) go out
again, never a second row.

The loop sends up to ``concurrency`` deliveries at once, one recipient's in
order (a contact's Messenger replies must not overtake each other), with
email over the loop's pooled smarthost sessions
(:class:`outbound.email.smarthost.SmarthostConnections`).

States: ``queued`` -> ``sent`` | ``deferred`` (retry at ``next_attempt_at``)
| ``failed`` (permanent error, or too many attempts).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Mapping

import structlog
from prometheus_client import Counter
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from frontdesk.background import Backoff, PollingLoop
from frontdesk.events import SYSTEM, Actor, MessageDeliveryUpdated
from frontdesk.model import Delivery, Message, utcnow
from frontdesk.outbox import record_events
from frontdesk.settings import Settings
from frontdesk.storage.blobs import BlobStore, sha256_hex
from frontdesk.storage.writer import write_transaction
from frontdesk.outbound.dispatch import Deliverers, DeliveryJob, PermanentDeliveryError
from frontdesk.outbound.email.deliver import EMAIL, deliver_email
from frontdesk.outbound.email.compose import OutboundEmail, compose_bytes, envelope_recipients
from frontdesk.outbound.email.smarthost import SmarthostConnections

log = structlog.get_logger(__name__)

QUEUED = "queued"
SENT = "sent"
DEFERRED = "deferred"
FAILED = "failed"
PENDING_STATES = (QUEUED, DEFERRED)

# What a loop sends when it is given no table: email only.  The daemon and
# the worker pass every channel's deliverer (runtime.registries).
EMAIL_ONLY: Deliverers = MappingProxyType({EMAIL: deliver_email})

OUTCOMES = Counter("frontdesk_outbound_deliveries_total", "Delivery attempts by channel and outcome",
                   ["channel", "outcome"])


async def find_delivery(session: AsyncSession, idempotency_key: str) -> Delivery | None:
    return await session.scalar(select(Delivery).where(Delivery.idempotency_key == idempotency_key))


def composed_email(mail: OutboundEmail) -> tuple[bytes, dict[str, Any]]:
    """Compose ``mail`` once: its bytes, and the delivery payload naming them by their blob digest."""
    raw = compose_bytes(mail)
    payload = {
        "raw_blob": sha256_hex(raw),
        "recipients": envelope_recipients(mail),
        "envelope_from": mail.from_address,
        "message_id_header": mail.message_id,
        "subject": mail.subject,
    }
    return raw, payload


async def store_email(blobs: BlobStore, mail: OutboundEmail) -> tuple[str, dict[str, Any]]:
    """Compose ``mail`` once and store its bytes; returns (blob, delivery payload)."""
    raw, payload = composed_email(mail)
    await blobs.put(raw)
    return payload["raw_blob"], payload


def delivery_row(*, idempotency_key: str, channel: str, recipient: str, kind: str, payload: Mapping[str, Any],
                 ticket_id: int | None = None, message_id: int | None = None) -> dict[str, Any]:
    """A queued delivery's column values: sent after the transaction that writes it commits."""
    return {
        "idempotency_key": idempotency_key,
        "channel": channel,
        "recipient": recipient[:320],
        "kind": kind,
        "payload": dict(payload),
        "ticket_id": ticket_id,
        "message_id": message_id,
        "state": QUEUED,
        "next_attempt_at": utcnow(),
    }


def queue_delivery(session: AsyncSession, *, idempotency_key: str, channel: str, recipient: str, kind: str,
                   payload: Mapping[str, Any], ticket_id: int | None = None,
                   message_id: int | None = None) -> Delivery:
    """Add a queued delivery to the caller's transaction; it is sent after that commits."""
    row = Delivery(**delivery_row(idempotency_key=idempotency_key, channel=channel, recipient=recipient, kind=kind,
                                  payload=payload, ticket_id=ticket_id, message_id=message_id))
    session.add(row)
    return row


class DeliveryLoop(PollingLoop):
    """Sends due deliveries: woken after commits that queued some, and on a short poll."""

    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession], blobs: BlobStore, *,
                 poll_interval: float = 5.0, max_attempts: int = 8, first_delay: float = 30.0,
                 max_delay: float = 3600.0, lease: float = 300.0, deliverers: Deliverers = EMAIL_ONLY,
                 concurrency: int = 8) -> None:
        super().__init__()
        self.name = "delivery-loop"
        self.settings = settings
        self.sessions = sessions
        self.blobs = blobs
        self.poll_interval = poll_interval
        self.max_attempts = max_attempts
        self.backoff = Backoff(base=first_delay, cap=max_delay, jitter=0.25)
        self.lease = lease
        self.deliverers = deliverers
        self.concurrency = concurrency
        self.smarthost = SmarthostConnections(size=concurrency)

    async def stop(self, grace: float = 10.0) -> None:
        await super().stop(grace)
        await self.smarthost.close()

    def retry_delay(self, attempt: int) -> timedelta:
        return timedelta(seconds=self.backoff.delay(attempt))

    async def step(self) -> None:
        await self.deliver_due()

    async def deliver_due(self, now: datetime | None = None) -> int:
        """Attempt every delivery due at ``now``, round after round; returns how many were attempted."""
        now = now or utcnow()
        total = 0
        while not self.stopping:
            attempted, claimed = await self._deliver_round(now)
            total += attempted
            if claimed < self.concurrency:  # nothing more was due
                break
        return total

    async def _deliver_round(self, now: datetime) -> tuple[int, int]:
        """One round: (deliveries attempted, rows claimed).

        At most ``concurrency`` due rows are claimed, in one statement (a
        claimed row waits out its lease if this loop dies, so no more are
        taken than are sent at once), and sent; outcomes are
        recorded as they come, the ones that finish together in one
        transaction (a group commit), and a slot sends its next mail only
        once its last outcome is recorded.  So a crash leaves at most
        ``concurrency`` sent but unrecorded; those rows keep their lease and
        the same stored bytes go out again after it, as for one row.
        """
        async with self.sessions() as session:
            due = (await session.scalars(
                select(Delivery.id)
                .where(Delivery.state.in_(PENDING_STATES),
                       or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now))
                .order_by(Delivery.id).limit(self.concurrency)
            )).all()
        jobs = await self._claim_due(list(due), now) if due else []
        by_recipient: dict[tuple[str, str], list[DeliveryJob]] = {}
        for job in jobs:
            by_recipient.setdefault((job.channel, job.recipient), []).append(job)
        slots = asyncio.Semaphore(self.concurrency)
        outcomes: list[_Outcome] = []
        unrecorded: list[_Outcome] = []
        recording = asyncio.Lock()

        async def record_finished() -> None:
            async with recording:  # whoever holds it records every outcome finished meanwhile
                if unrecorded:
                    batch = unrecorded[:]
                    del unrecorded[:]
                    await self._record(batch, [], now)

        async def send_in_order(group: list[DeliveryJob]) -> None:
            async with slots:
                for job in group:
                    if self.stopping:  # the rest are handed back, due for the next start
                        return
                    outcome = await self._attempt(job)
                    outcomes.append(outcome)
                    unrecorded.append(outcome)
                    await record_finished()

        results = await asyncio.gather(*(send_in_order(group) for group in by_recipient.values()),
                                       return_exceptions=True)
        attempted = {outcome.job.delivery_id for outcome in outcomes}
        unattempted = [j.delivery_id for j in jobs if j.delivery_id not in attempted]
        if unattempted:
            await self._record([], unattempted, now)
        for result in results:  # every group ran to its end; now the first failure, if any
            if isinstance(result, BaseException):
                raise result
        return len(outcomes), len(jobs)

    def _job(self, row: Any) -> DeliveryJob:
        return DeliveryJob(
            delivery_id=row.id, idempotency_key=row.idempotency_key, channel=row.channel,
            recipient=row.recipient, kind=row.kind, ticket_id=row.ticket_id, message_id=row.message_id,
            attempt=row.attempts, payload=dict(row.payload or {}), settings=self.settings, blobs=self.blobs,
            smarthost=self.smarthost,
        )

    async def _claim_due(self, delivery_ids: list[int], now: datetime) -> list[DeliveryJob]:
        """Claim the rows of ``delivery_ids`` still due at ``now`` (another loop's claim made its rows not due)."""
        table = Delivery.__table__
        async with write_transaction(self.sessions) as session:
            rows = (await session.execute(
                update(table)
                .where(table.c.id.in_(delivery_ids), table.c.state.in_(PENDING_STATES),
                       or_(table.c.next_attempt_at.is_(None), table.c.next_attempt_at <= now))
                .values(attempts=table.c.attempts + 1, next_attempt_at=now + timedelta(seconds=self.lease))
                .returning(*table.c)
            )).all()
        return [self._job(row) for row in sorted(rows, key=lambda r: r.id)]

    async def _claim(self, delivery_id: int, attempts: int, now: datetime) -> DeliveryJob | None:
        """Claim one row, if it still has ``attempts`` (as read) and is pending."""
        # Concurrent claims and records take turns on SQLite (a no-op on PostgreSQL).
        async with write_transaction(self.sessions) as session:
            claimed = await session.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id, Delivery.attempts == attempts,
                       Delivery.state.in_(PENDING_STATES))
                .values(attempts=attempts + 1, next_attempt_at=now + timedelta(seconds=self.lease))
            )
            if claimed.rowcount != 1:
                return None  # another loop took it
            row = await session.get(Delivery, delivery_id)
            assert row is not None
            return self._job(row)

    async def _attempt(self, job: DeliveryJob) -> _Outcome:
        deliver = self.deliverers.get(job.channel)
        provider_id: str | None = None
        error: str | None = None
        try:
            if deliver is None:
                raise PermanentDeliveryError(f"no deliverer registered for channel {job.channel!r}")
            provider_id = await deliver(job)
            state = SENT
        except asyncio.CancelledError:
            raise
        except PermanentDeliveryError as failure:
            state, error = FAILED, str(failure)
        except Exception as failure:  # TemporaryDeliveryError and anything unexpected
            error = str(failure) or repr(failure)
            state = FAILED if job.attempt >= self.max_attempts else DEFERRED
        OUTCOMES.labels(job.channel, state).inc()
        log.info("delivery_attempt", delivery_id=job.delivery_id, channel=job.channel, attempt=job.attempt,
                 state=state, error=error)
        return _Outcome(job, state, error, provider_id)

    async def _record(self, outcomes: list[_Outcome], unattempted: list[int], now: datetime) -> None:
        """Every outcome and its ``message.delivery_updated`` in one transaction; hand back what was not attempted."""
        async with write_transaction(self.sessions) as session:
            if unattempted:
                table = Delivery.__table__
                await session.execute(update(table).where(table.c.id.in_(unattempted))
                                      .values(attempts=table.c.attempts - 1, next_attempt_at=now))
            if not outcomes:
                return
            rows = {r.id: r for r in (await session.scalars(
                select(Delivery).where(Delivery.id.in_([o.job.delivery_id for o in outcomes])))).all()}
            message_ids = [r.message_id for r in rows.values() if r.message_id is not None]
            messages = {m.id: m for m in (await session.scalars(
                select(Message).where(Message.id.in_(message_ids))))} if message_ids else {}
            events = []
            for outcome in outcomes:
                row = rows.get(outcome.job.delivery_id)
                if row is not None:
                    event = self._record_one(row, messages.get(row.message_id or 0), outcome, now)
                    if event is not None:
                        events.append(event)
            await record_events(session, *events)

    def _record_one(self, row: Delivery, message: Message | None, outcome: _Outcome,
                    now: datetime) -> MessageDeliveryUpdated | None:
        state, error = outcome.state, outcome.error
        row.state = state
        row.last_error = error
        if state == SENT:
            row.sent_at = utcnow()
            row.next_attempt_at = None
            if outcome.provider_id:
                row.payload = {**(row.payload or {}), "provider_id": outcome.provider_id}
        elif state == DEFERRED:
            row.next_attempt_at = now + self.retry_delay(outcome.job.attempt)
        else:
            row.next_attempt_at = None
        if row.message_id is None:
            return None
        if message is not None:
            message.delivery_state = state
            if state == SENT and message.sent_at is None:
                message.sent_at = row.sent_at
        return MessageDeliveryUpdated(
            ticket_id=row.ticket_id, actor=Actor(SYSTEM), message_id=row.message_id, delivery_id=row.id,
            channel=row.channel, state=state, attempts=row.attempts, error=error,
        )


@dataclass(frozen=True)
class _Outcome:
    job: DeliveryJob
    state: str
    error: str | None
    provider_id: str | None
