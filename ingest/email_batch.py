"""What the stages of one batch of mail share: the facts looked up once for the batch, and what it has stored.

:meth:`EmailBatch.look_up` reads, in a handful of queries for the whole
batch, everything the per-message decisions need: the email channels,
the stored copies of these mails (the duplicate rule,
:mod:`ingest.duplicates`) and the threading facts (:mod:`ingest.threading`).
The decisions are then pure functions of those facts.  As the runner
stores each message, in arrival order, :meth:`EmailBatch.remember` adds
it to the facts, so a reply threads onto a parent stored earlier in the
same batch, and a second copy of a mail in one batch is a duplicate of
the first, exactly as if they had come in separate batches.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.model import Channel, Contact
from frontdesk.model.messages import ACCEPTED
from frontdesk.ingest.context import IngestContext
from frontdesk.ingest.duplicates import EmailCopyKey, StoredCopy, email_copy_key, stored_email_copies
from frontdesk.ingest.email_channels import email_channels, own_addresses
from frontdesk.ingest.message import InboundMessage
from frontdesk.ingest.persist import Persisted, message_participants
from frontdesk.ingest.screening.rule import Ours
from frontdesk.ingest.threading import KnownMessage, ThreadFacts, gather_thread_facts


@dataclass
class EmailBatch:
    ctx: IngestContext
    pooled: bool = False  # parse in the process pool (ingest.parse_pool)
    channels: list[Channel] = field(default_factory=list)
    copies: dict[EmailCopyKey, StoredCopy] = field(default_factory=dict)
    threads: ThreadFacts = field(default_factory=ThreadFacts)
    _ours: asyncio.Future[Ours] | None = None

    async def ours(self) -> Ours:
        """Our key and addresses for screening, read once for the batch."""
        if self._ours is None:
            self._ours = asyncio.ensure_future(self._read_ours())
        return await asyncio.shield(self._ours)

    async def _read_ours(self) -> Ours:
        settings = self.ctx.settings
        return Ours.of(settings.secret_key, await own_addresses(self.ctx.sessions), settings.from_address)

    async def look_up(self, session: AsyncSession, messages: list[InboundMessage]) -> None:
        """Read the batch's facts in the runner's transaction (again on a retried transaction)."""
        self.channels = await email_channels(session, self.ctx.sessions)
        self.copies = await stored_email_copies(session, messages)
        self.threads = await gather_thread_facts(session, messages, self.ctx.secret_key)

    def remember(self, message: InboundMessage, stored: Persisted, contact: Contact | None) -> None:
        """A message of this batch is stored: later ones in the batch see it as if it had been stored before."""
        row = stored.message
        self.copies.setdefault(email_copy_key(message), StoredCopy(row.id, row.ticket_id))
        participants: list[str] = []
        if row.ticket_id is not None and message.screening == ACCEPTED:
            own = {c.key.lower() for c in self.channels}
            participants = message_participants(message, contact, own)
        self.threads.learn(row.external_id, KnownMessage(row.id, row.ticket_id, row.conversation_id,
                                                         row.from_address), participants)
