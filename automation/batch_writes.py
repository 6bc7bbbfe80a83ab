"""What a batch of events writes, written when the batch ends, in a fixed number of statements.

The handler decides event by event, in order, as before; what each
decision writes is noted here and written by :meth:`BatchWrites.write`,
inside the batch's transaction, before it commits: the emails (blobs,
``messages``, ``deliveries``), each touched ticket's search index (once per
ticket, not once per email), the applied-effect keys, then the outbox
events, in the order the events were decided.  An event that needs a
message id (``message.sent`` for an email just queued) is built once the
messages are in.
"""

from __future__ import annotations

from typing import Callable

from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.automation.effects import EffectLedger
from frontdesk.events import DomainEvent
from frontdesk.outbound.email.batch import EmailBatch
from frontdesk.outbound.email.outgoing import PreparedEmail
from frontdesk.outbox import record_events
from frontdesk.storage.blobs import BlobStore
from frontdesk.tickets.search_index import refresh_ticket_indexes

# (the email's index in the batch, its message id -> the event)
_AboutEmail = tuple[int, Callable[[int], DomainEvent]]


class BatchWrites:
    def __init__(self) -> None:
        self.emails = EmailBatch()
        self._events: list[DomainEvent | _AboutEmail] = []
        self._touched: dict[int, None] = {}  # tickets whose search index is stale, once each

    def event(self, event: DomainEvent) -> None:
        self._events.append(event)

    def email(self, ticket_id: int, email: PreparedEmail, event: Callable[[int], DomainEvent]) -> None:
        """Queue ``email`` on ticket ``ticket_id``, and the event about it, built from its message id."""
        self._events.append((self.emails.add(email), event))
        self._touched[ticket_id] = None

    async def write(self, session: AsyncSession, blobs: BlobStore, ledger: EffectLedger) -> None:
        message_ids = await self.emails.write(session, blobs)
        await refresh_ticket_indexes(session, self._touched)
        await ledger.write(session)
        await record_events(session, *(
            item if isinstance(item, DomainEvent) else item[1](message_ids[item[0]]) for item in self._events))
