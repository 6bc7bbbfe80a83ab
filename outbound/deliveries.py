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
        """Attempt every delivery due at ``now``; returns how many were attempted."""
        now = now or utcnow()
        async with self.sessions() as session:
            due = (await session.execute(
                select(Delivery.id, Delivery.attempts, Delivery.channel, Delivery.recipient)
                .where(Delivery.state.in_(PENDING_STATES),
                       or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now))
                .order_by(Delivery.id).limit(200)
            )).all()
        by_recipient: dict[tuple[str, str], list[tuple[int, int]]] = {}
        for delivery_id, attempts, channel, recipient in due:
            by_recipient.setdefault((channel, recipient), []).append((delivery_id, attempts))
        slots = asyncio.Semaphore(self.concurrency)
        attempted = 0

        async def send_in_order(rows: list[tuple[int, int]]) -> None:
            nonlocal attempted
            async with slots:
                for delivery_id, attempts in rows:
                    if self.stopping:  # the rest stay due for the next start
                        return
                    job = await self._claim(delivery_id, attempts, now)
                    if job is not None:
                        attempted += 1
                        await self._attempt(job, now)

        outcomes = await asyncio.gather(*(send_in_order(rows) for rows in by_recipient.values()),
                                        return_exceptions=True)
        for outcome in outcomes:  # every group ran to its end; now the first failure, if any
            if isinstance(outcome, BaseException):
                raise outcome
        return attempted

    async def _claim(self, delivery_id: int, attempts: int, now: datetime) -> DeliveryJob | None:
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
            return DeliveryJob(
                delivery_id=row.id, idempotency_key=row.idempotency_key, channel=row.channel,
                recipient=row.recipient, kind=row.kind, ticket_id=row.ticket_id, message_id=row.message_id,
                attempt=row.attempts, payload=dict(row.payload or {}), settings=self.settings, blobs=self.blobs,
                smarthost=self.smarthost,
            )

    async def _attempt(self, job: DeliveryJob, now: datetime) -> None:
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
        await self._record(job, state, error, provider_id, now)

    async def _record(self, job: DeliveryJob, state: str, error: str | None, provider_id: str | None,
                      now: datetime) -> None:
        async with write_transaction(self.sessions) as session:
            row = await session.get(Delivery, job.delivery_id)
            if row is None:
                return
            row.state = state
            row.last_error = error
            if state == SENT:
                row.sent_at = utcnow()
                row.next_attempt_at = None
                if provider_id:
                    row.payload = {**(row.payload or {}), "provider_id": provider_id}
            elif state == DEFERRED:
                row.next_attempt_at = now + self.retry_delay(job.attempt)
            else:
                row.next_attempt_at = None
            if row.message_id is not None:
                message = await session.get(Message, row.message_id)
                if message is not None:
                    message.delivery_state = state
                    if state == SENT and message.sent_at is None:
                        message.sent_at = row.sent_at
                await record_events(session, MessageDeliveryUpdated(
                    ticket_id=row.ticket_id, actor=Actor(SYSTEM), message_id=row.message_id, delivery_id=row.id,
                    channel=row.channel, state=state, attempts=row.attempts, error=error,
                ))
