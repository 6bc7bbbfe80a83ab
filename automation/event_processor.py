"""Apply one event from the stream: decode, handle with bounded retries, dead-letter on failure.

faust acknowledges a message whose agent raised, which would silently lose
the event, so the agent never lets an error out: this processor returns only
once the event was handled or safely dead-lettered (dead-letter topic and
``dead_letters`` table).  A storage outage is not the event's fault, so it
is retried for as long as it lasts instead of dead-lettering every event
that happens to arrive meanwhile.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import random
import uuid
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping

import structlog
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from frontdesk.automation.dead_letters import UNDECODABLE, EventHandler, record_dead_letter
from frontdesk.events import DomainEvent, EventSchemaError
from frontdesk.storage.database import is_storage_outage

log = structlog.get_logger(__name__)

HANDLED = Counter("frontdesk_worker_events_handled_total", "Events the worker applied")
RETRIED = Counter("frontdesk_worker_event_retries_total", "Failed attempts at an event that were retried")
DEAD_LETTERED = Counter("frontdesk_worker_events_dead_lettered_total", "Events sent to the dead-letter topic")

# (key, value) -> the broker acknowledged it on the dead-letter topic.
DeadLetterPublisher = Callable[[bytes, bytes], Awaitable[None]]

HANDLED_OUTCOME = "handled"
DEAD_LETTERED_OUTCOME = "dead-lettered"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    first_delay: float = 0.1
    max_delay: float = 5.0

    def delay(self, attempt: int) -> float:
        base = min(self.max_delay, self.first_delay * 2 ** (attempt - 1))
        return base * (0.5 + random.random() / 2)


class EventProcessor:
    def __init__(
        self,
        handler: EventHandler,
        sessions: async_sessionmaker[AsyncSession],
        publish_dead_letter: DeadLetterPublisher,
        policy: RetryPolicy = RetryPolicy(),
    ) -> None:
        self._handler = handler
        self._sessions = sessions
        self._publish_dead_letter = publish_dead_letter
        self._policy = policy

    async def process(self, key: bytes | None, value: bytes | None, *, origin: str) -> str:
        """Handle one raw message; ``origin`` (topic/partition/offset) names it in dead letters."""
        raw = value or b""
        try:
            event = DomainEvent.from_dict(json.loads(raw))
        except (ValueError, TypeError, EventSchemaError) as error:  # JSONDecodeError is a ValueError
            # NUL cannot be stored in PostgreSQL's JSON; the rest is kept as it came.
            text = raw.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
            body = {UNDECODABLE: text, "origin": origin}
            # Stable across redeliveries, so the dead letter is stored once.
            event_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"frontdesk:{origin}"))
            await self._dead_letter(key, event_id, body, f"undecodable: {error}", attempts=1)
            return DEAD_LETTERED_OUTCOME

        failures = 0
        outages = 0
        while True:
            try:
                result = self._handler(event)
                if inspect.isawaitable(result):
                    await result
                HANDLED.inc()
                return HANDLED_OUTCOME
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if is_storage_outage(error):
                    outages += 1
                    log.warning("worker_storage_outage", event_id=event.id, error=repr(error))
                    await asyncio.sleep(self._policy.delay(min(outages, 8)))
                    continue
                failures += 1
                if failures >= self._policy.max_attempts:
                    log.error("worker_event_dead_lettered", event_id=event.id, type=event.type,
                              ticket_id=event.ticket_id, attempts=failures, error=repr(error))
                    await self._dead_letter(key, event.id, event.to_dict(), _describe(error), attempts=failures)
                    return DEAD_LETTERED_OUTCOME
                RETRIED.inc()
                log.warning("worker_event_retry", event_id=event.id, attempt=failures, error=repr(error))
                await asyncio.sleep(self._policy.delay(failures))

    async def _dead_letter(self, key: bytes | None, event_id: str, body: Mapping[str, Any], error: str,
                           *, attempts: int) -> None:
        """Record in the table, then on the topic; both retried until they succeed.

        The message is not acknowledged before both are done, so a crash in
        between redelivers it and the table row is found again, not doubled.
        """
        letter = json.dumps({"event_id": event_id, "error": error, "attempts": attempts, "event": body},
                            separators=(",", ":"), default=str).encode()
        tries = 0
        while True:
            try:
                await record_dead_letter(self._sessions, event_id=event_id, body=body, error=error, attempts=attempts)
                await self._publish_dead_letter(key or event_id.encode(), letter)
                DEAD_LETTERED.inc()
                return
            except asyncio.CancelledError:
                raise
            except Exception as failure:
                tries += 1
                log.warning("worker_dead_letter_retry", event_id=event_id, error=repr(failure))
                await asyncio.sleep(self._policy.delay(min(tries, 8)))


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:4000]
