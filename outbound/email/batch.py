"""Emails to customers queued by a batch of automation, written together when the batch ends.

:func:`outbound.email.outgoing.queue_ticket_email` records one email with
the ORM: its blob in a thread, a flush for its message's id, another for
its delivery.  Right for one agent reply; in a backlog of events that was a
handful of round trips per email.  An :class:`EmailBatch` takes emails
composed by the same :func:`outbound.email.outgoing.prepare_ticket_email`
(the same bytes, headers, Message-ID and rows) and :meth:`EmailBatch.write`
stores their bytes in one blob-store call, then inserts their ``messages``
rows in one statement (returning their ids, in order) and their
``deliveries`` in another, inside the caller's transaction.
"""

from __future__ import annotations

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.model import Delivery, Message
from frontdesk.outbound.email.outgoing import PreparedEmail
from frontdesk.storage.blobs import BlobStore

_MESSAGES = insert(Message.__table__).returning(Message.__table__.c.id, sort_by_parameter_order=True)
_DELIVERIES = insert(Delivery.__table__)


class EmailBatch:
    def __init__(self) -> None:
        self.emails: list[PreparedEmail] = []

    def add(self, email: PreparedEmail) -> int:
        """Queue ``email``; its index is where :meth:`write` returns its message id."""
        self.emails.append(email)
        return len(self.emails) - 1

    async def write(self, session: AsyncSession, blobs: BlobStore) -> list[int]:
        """Store and insert every queued email; the message ids, in the order they were added."""
        if not self.emails:
            return []
        # The bytes first: a committed delivery always finds its blob.
        await blobs.put_many([e.raw for e in self.emails])
        await session.flush()  # Core statements do not autoflush the ORM's pending rows
        ids = list((await session.execute(_MESSAGES, [e.message for e in self.emails])).scalars())
        await session.execute(_DELIVERIES, [{**e.delivery, "message_id": message_id}
                                            for e, message_id in zip(self.emails, ids)])
        return ids
