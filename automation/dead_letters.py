"""Dead letters: events automation gave up on, kept for an operator to list and replay.

The worker records one here (and on the dead-letter topic) after an event
failed its bounded retries, or could not be decoded at all.  Replaying either
re-runs the automation handler, which is idempotent so effects that already
happened are not repeated, or re-publishes the event to the main topic for
the workers to pick up.  ``frontdesk dead-letters list|replay`` calls
:func:`list_dead_letters` and :func:`replay_dead_letters`.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Iterable, Mapping

from aiokafka import AIOKafkaProducer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from frontdesk.automation.kafka_config import bootstrap_servers
from frontdesk.events import DomainEvent, EventSchemaError
from frontdesk.model import DeadLetter

# What the worker and replay call for one event: handle_event bound to its services.
EventHandler = Callable[[DomainEvent], Awaitable[None] | None]

UNDECODABLE = "undecodable"  # the body key holding a message that is not an event


@dataclass(frozen=True)
class DeadLetterView:
    id: int
    event_id: str
    event_type: str | None
    ticket_id: int | None
    error: str
    attempts: int
    created_at: datetime
    replayed_at: datetime | None
    body: Mapping[str, Any]


@dataclass(frozen=True)
class ReplayOutcome:
    id: int
    ok: bool
    detail: str


async def record_dead_letter(
    sessions: async_sessionmaker[AsyncSession],
    *,
    event_id: str,
    body: Mapping[str, Any],
    error: str,
    attempts: int,
) -> int:
    """Store a dead letter once: a redelivered poison event updates its open row instead."""
    async with sessions() as session, session.begin():
        existing = (
            await session.execute(
                select(DeadLetter)
                .where(DeadLetter.event_id == event_id, DeadLetter.replayed_at.is_(None))
                .order_by(DeadLetter.id)
                .limit(1)
            )
        ).scalar_one_or_none()
        if existing is not None:
            existing.error = error
            existing.attempts += attempts
            return existing.id
        row = DeadLetter(event_id=event_id, body=dict(body), error=error, attempts=attempts)
        session.add(row)
        await session.flush()
        return row.id


def _view(row: DeadLetter) -> DeadLetterView:
    body = row.body or {}
    return DeadLetterView(
        id=row.id,
        event_id=row.event_id,
        event_type=body.get("type"),
        ticket_id=body.get("ticket_id"),
        error=row.error,
        attempts=row.attempts,
        created_at=row.created_at,
        replayed_at=row.replayed_at,
        body=body,
    )


async def list_dead_letters(
    sessions: async_sessionmaker[AsyncSession],
    *,
    include_replayed: bool = False,
    limit: int = 100,
) -> list[DeadLetterView]:
    """Dead letters, oldest first; replayed ones only when asked for."""
    query = select(DeadLetter).order_by(DeadLetter.id).limit(limit)
    if not include_replayed:
        query = query.where(DeadLetter.replayed_at.is_(None))
    async with sessions() as session:
        return [_view(row) for row in (await session.execute(query)).scalars()]


async def replay_dead_letters(
    sessions: async_sessionmaker[AsyncSession],
    ids: Iterable[int],
    *,
    handler: EventHandler | None = None,
    bootstrap: str | None = None,
    topic: str | None = None,
) -> list[ReplayOutcome]:
    """Replay the chosen dead letters, each on its own.

    With ``handler`` the event is handled here and now; otherwise it is
    re-published to ``topic`` on ``bootstrap``.  A dead letter that succeeds
    is stamped ``replayed_at``; one that fails again stays open with the new
    error, so the operator can look and try later.
    """
    if handler is None and not (bootstrap and topic):
        raise ValueError("replay needs a handler, or bootstrap servers and a topic to re-publish to")
    producer: AIOKafkaProducer | None = None
    outcomes: list[ReplayOutcome] = []
    try:
        for dead_letter_id in ids:
            async with sessions() as session:
                row = await session.get(DeadLetter, dead_letter_id)
            if row is None:
                outcomes.append(ReplayOutcome(dead_letter_id, False, "no such dead letter"))
                continue
            if row.replayed_at is not None:
                outcomes.append(ReplayOutcome(dead_letter_id, False, "already replayed"))
                continue
            try:
                event = DomainEvent.from_dict(row.body)
            except (EventSchemaError, ValueError) as error:
                outcomes.append(ReplayOutcome(dead_letter_id, False, f"not an event, cannot replay: {error}"))
                continue
            try:
                if handler is not None:
                    result = handler(event)
                    if inspect.isawaitable(result):
                        await result
                    detail = "handled"
                else:
                    if producer is None:
                        producer = AIOKafkaProducer(
                            bootstrap_servers=bootstrap_servers(bootstrap or ""), acks="all", enable_idempotence=True
                        )
                        await producer.start()
                    await producer.send_and_wait(
                        topic or "",
                        value=json.dumps(event.to_dict(), separators=(",", ":")).encode(),
                        key=event.key,
                        headers=[("event_id", event.id.encode()), ("event_type", event.type.encode())],
                    )
                    detail = f"re-published to {topic}"
            except Exception as error:  # report it and keep the dead letter open
                await _note_failed_replay(sessions, dead_letter_id, error)
                outcomes.append(ReplayOutcome(dead_letter_id, False, f"failed again: {error!r}"))
                continue
            async with sessions() as session, session.begin():
                stored = await session.get(DeadLetter, dead_letter_id)
                if stored is not None:
                    stored.replayed_at = datetime.now(timezone.utc)
            outcomes.append(ReplayOutcome(dead_letter_id, True, detail))
    finally:
        if producer is not None:
            await producer.stop()
    return outcomes


async def _note_failed_replay(sessions: async_sessionmaker[AsyncSession], dead_letter_id: int, error: Exception) -> None:
    async with sessions() as session, session.begin():
        stored = await session.get(DeadLetter, dead_letter_id)
        if stored is not None:
            stored.error = f"replay failed: {error!r}"
            stored.attempts += 1
