"""Apply events with bounded retries and dead-letter what keeps failing: both runners use this.

The embedded runner hands in outbox rows, the faust agent raw Kafka
messages; each decodes its input into a :class:`ReceivedEvent`
(:func:`decode_message`, :func:`decode_row`) and calls
:meth:`EventProcessor.apply_batch`.  A batch goes to the handler's
``apply_batch`` (one transaction) when it has one; if that raises, or for a
handler without it, each event goes through :meth:`EventProcessor.apply`,
which returns only once the event was handled or safely dead-lettered (the
``dead_letters`` table, and the dead-letter topic when the runner has one).
So one poison event in a batch costs the batch a second pass, one event at
a time, and only that event is dead-lettered.  The retrying itself is the
toolkit's :class:`frontdesk.background.RetryingProcessor`.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import uuid
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping, Sequence

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from frontdesk.automation.dead_letters import UNDECODABLE, EventHandler, record_dead_letter
from frontdesk.background import DEAD_LETTERED, HANDLED, RetryingProcessor, RetryPolicy
from frontdesk.events import DomainEvent, EventSchemaError

log = structlog.get_logger(__name__)

# (key, value) -> the broker acknowledged it on the dead-letter topic.
DeadLetterPublisher = Callable[[bytes, bytes], Awaitable[None]]
# A handler's batch form: applies all the events in one transaction, or raises having applied none.
BatchHandler = Callable[[Sequence[DomainEvent]], Awaitable[None]]

HANDLED_OUTCOME = HANDLED
DEAD_LETTERED_OUTCOME = DEAD_LETTERED


@dataclass(frozen=True)
class ReceivedEvent:
    """One event as a runner received it; ``event`` is None when the input was not an event (``undecodable`` says why)."""

    event_id: str
    body: Mapping[str, Any]  # what a dead letter keeps
    event: DomainEvent | None = None
    key: bytes | None = None  # the Kafka key, reused on the dead-letter topic
    undecodable: str | None = None


def decode_message(key: bytes | None, value: bytes | None, *, origin: str) -> ReceivedEvent:
    """A raw Kafka message; ``origin`` (topic/partition/offset) names it in dead letters."""
    raw = value or b""
    try:
        event = DomainEvent.from_dict(json.loads(raw))
    except (ValueError, TypeError, EventSchemaError) as error:  # JSONDecodeError is a ValueError
        # NUL cannot be stored in PostgreSQL's JSON; the rest is kept as it came.
        text = raw.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
        # Stable across redeliveries, so the dead letter is stored once.
        event_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"frontdesk:{origin}"))
        return ReceivedEvent(event_id, {UNDECODABLE: text, "origin": origin}, key=key, undecodable=str(error))
    return ReceivedEvent(event.id, event.to_dict(), event, key)


def decode_row(event_id: str, body: Mapping[str, Any]) -> ReceivedEvent:
    """An outbox row's event."""
    try:
        return ReceivedEvent(event_id, body, DomainEvent.from_dict(dict(body)))
    except (EventSchemaError, ValueError, TypeError) as error:
        return ReceivedEvent(event_id, body, undecodable=str(error))


def _identity(received: ReceivedEvent) -> dict[str, Any]:
    event = received.event
    if event is None:
        return {"event_id": received.event_id}
    return {"event_id": event.id, "type": event.type, "ticket_id": event.ticket_id}


class EventProcessor:
    """The automation handler behind batches, retries and dead letters, for one runner."""

    def __init__(
        self,
        handler: EventHandler,
        sessions: async_sessionmaker[AsyncSession],
        *,
        name: str,
        policy: RetryPolicy = RetryPolicy(),
        publish_dead_letter: DeadLetterPublisher | None = None,
        on_handled: Callable[[], None] = lambda: None,
        on_retry: Callable[[], None] = lambda: None,
        on_dead_lettered: Callable[[], None] = lambda: None,
    ) -> None:
        self._handler = handler
        self._batch_handler: BatchHandler | None = getattr(handler, "apply_batch", None)
        self._sessions = sessions
        self._publish_dead_letter = publish_dead_letter
        self._name = name
        self._on_handled = on_handled
        self.retrying = RetryingProcessor(
            self._handle, self._dead_letter, name=name, policy=policy, describe=_identity,
            on_handled=on_handled, on_retry=on_retry, on_dead_lettered=on_dead_lettered,
        )

    async def apply_batch(self, batch: Sequence[ReceivedEvent]) -> None:
        """Handle every event of ``batch`` (in one transaction when possible) or dead-letter it; never raises."""
        events = [received.event for received in batch if received.event is not None]
        if self._batch_handler is not None and len(events) > 1:
            try:
                await self._batch_handler(events)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # Nothing of the batch was applied: find the culprit one event at a time.
                log.warning(f"{self._name}_batch_fallback", size=len(events), error=repr(error))
            else:
                for _ in events:
                    self._on_handled()
                batch = [received for received in batch if received.event is None]
        for received in batch:
            await self.apply(received)

    async def apply(self, received: ReceivedEvent) -> str:
        """Handle one decoded event, or dead-letter at once one that is not."""
        if received.event is None:
            await self.retrying.dead_letter(received, f"undecodable: {received.undecodable}", attempts=1)
            return DEAD_LETTERED
        return await self.retrying.process(received)

    async def process(self, key: bytes | None, value: bytes | None, *, origin: str) -> str:
        """Handle one raw Kafka message; ``origin`` (topic/partition/offset) names it in dead letters."""
        return await self.apply(decode_message(key, value, origin=origin))

    async def _handle(self, received: ReceivedEvent) -> None:
        assert received.event is not None
        result = self._handler(received.event)
        if inspect.isawaitable(result):
            await result

    async def _dead_letter(self, received: ReceivedEvent, error: str, attempts: int) -> None:
        """Record in the table, then on the topic (when there is one).

        The input is not acknowledged before both are done, so a crash in
        between redelivers it and the table row is found again, not doubled.
        """
        await record_dead_letter(self._sessions, event_id=received.event_id, body=received.body, error=error,
                                 attempts=attempts)
        if self._publish_dead_letter is not None:
            letter = json.dumps({"event_id": received.event_id, "error": error, "attempts": attempts,
                                 "event": received.body}, separators=(",", ":"), default=str).encode()
            await self._publish_dead_letter(received.key or received.event_id.encode(), letter)
