"""What the stages of one batch of mail share: the facts looked up once for the batch, and what it has stored.

:meth:`EmailBatch.look_up` reads, in a handful of queries for the whole
batch, everything the per-message decisions need: the email channels,
the stored copies of these mails (the duplicate rule,
:mod:`ingest.duplicates`) and the threading facts (:mod:`ingest.threading`).
It also finds or creates the senders in one go, reads what storing the
mail needs and reserves the new rows' ids (:class:`ingest.persist.BatchStore`),
so storing each mail runs no statement and the batch's rows are written
together at the end, one statement per table.
The decisions are then pure functions of those facts.  As the runner
stores each message, in arrival order, :meth:`EmailBatch.remember` adds
it to the facts, so a reply threads onto a parent stored earlier in the
same batch, and a second copy of a mail in one batch is a duplicate of
the first, exactly as if they had come in separate batches.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Iterable

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.model import Channel, Contact
from frontdesk.model.messages import ACCEPTED
from frontdesk.ingest.context import IngestContext
from frontdesk.ingest.duplicates import EmailCopyKey, StoredCopy, email_copy_key, stored_email_copies
from frontdesk.ingest.email_channels import email_channels, own_addresses
from frontdesk.ingest.message import InboundMessage
from frontdesk.ingest.contacts import identify_email_senders, normalize_address
from frontdesk.ingest.persist import BatchStore, Persisted, message_participants
from frontdesk.ingest.screening.rule import Ours
from frontdesk.ingest.threading import KnownMessage, ThreadFacts, gather_thread_facts, thread_email


# From this many mails a batch reads and writes set-based (BatchStore);
# a single mail is stored with its own few statements, as that is cheaper.
SET_BASED_FROM = 2


@dataclass
class EmailBatch:
    ctx: IngestContext
    pooled: bool = False  # parse in the process pool (ingest.parse_pool)
    channels: list[Channel] = field(default_factory=list)
    copies: dict[EmailCopyKey, StoredCopy] = field(default_factory=dict)
    threads: ThreadFacts = field(default_factory=ThreadFacts)
    contacts: dict[str, Contact] = field(default_factory=dict)  # senders, by normalized address
    new_contacts: set[int] = field(default_factory=set)  # created by look_up
    store: BatchStore | None = None  # set-based writes (batches of SET_BASED_FROM mails or more)
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
        """Read the batch's facts in the runner's transaction (again on a retried transaction).

        Also finds or creates the senders of the mail that will be stored
        (accepted, not a copy of a stored mail), reads what storing needs
        and reserves the ids of the rows it may add (:class:`BatchStore`).
        """
        self.channels = await email_channels(session, self.ctx.sessions)
        self.copies = await stored_email_copies(session, messages)
        self.threads = threads = await gather_thread_facts(session, messages, self.ctx.secret_key)
        storing = [m for m in messages if m.screening == ACCEPTED and email_copy_key(m) not in self.copies]
        if len(messages) < SET_BASED_FROM:
            # One mail: its few statements cost less than the batch's reads.
            self.contacts, self.new_contacts, self.store = {}, set(), None
            return
        self.contacts, self.new_contacts = await identify_email_senders(session, storing)
        # At most this many new tickets: a mail the stored facts thread stays threaded.
        starting = sum(1 for m in storing if thread_email(m, threads, self.ctx.secret_key).starts_ticket)
        self.store = await BatchStore.read(
            session, pipelines=[c.pipeline_id for c in self.channels],
            tickets=[k.ticket_id for k in threads.known.values() if k.ticket_id is not None]
            + [*threads.tickets, *(t for t, _ in threads.participants)],
            conversations=[k.conversation_id for k in threads.known.values() if k.conversation_id is not None],
            reserve={"tickets": starting, "conversations": len(storing), "messages": len(messages)})

    async def drop_unused_contacts(self, session: AsyncSession, used: Iterable[Contact | None]) -> None:
        """Delete the contacts :meth:`look_up` created for mail that was then not stored (quarantined, say).

        As one mail at a time, a mail that is not stored leaves no contact behind.
        """
        unused = self.new_contacts - {c.id for c in used if c is not None}
        if unused:
            await session.execute(delete(Contact).where(Contact.id.in_(sorted(unused))))
            for contact in [c for c in self.contacts.values() if c.id in unused]:
                session.expunge(contact)

    def contact(self, message: InboundMessage) -> Contact | None:
        """The sender's contact, found or created by :meth:`look_up`."""
        address = normalize_address(message.sender_address)
        return self.contacts.get(address) if address is not None else None

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
