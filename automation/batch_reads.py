"""What a batch of events reads, read once for the batch: the automation handler's set-based loads.

Read one event at a time, a backlog cost a dozen queries per event (the
pipeline's automation, the conversation, the contact, the channel, the
customer's thread, the loop guard's count).  :meth:`BatchReads.load` reads
them for every event of the batch in a fixed number of queries; the rows
land in the session's identity map, where the handler's ``session.get``
finds them without a query, and what is not a row (the customer's threads,
the loop guard's counts) is kept here.  The batch's tickets are already
locked, so what they point at does not move under it.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.automation.loop_guard import AUTOMATED_MAIL_WINDOW_SECONDS, automated_mail_allowed
from frontdesk.events import DomainEvent, MessageReceived, TicketCreated, TicketStatusChanged
from frontdesk.model import Channel, Contact, Conversation, Delivery, PipelineAutomation, Ticket, utcnow
from frontdesk.outbound.email.outgoing import ThreadParent, customer_threads


@dataclass
class BatchReads:
    threads: dict[int, ThreadParent] = field(default_factory=dict)  # ticket -> the customer's mail we answer
    # recipient -> automated mails in the loop guard's window, this batch's own included
    automated_mail: collections.Counter[str] = field(default_factory=collections.Counter)
    # The rows read for the batch: the identity map holds rows weakly, so they are held here.
    rows: list[object] = field(default_factory=list)

    @classmethod
    async def load(cls, session: AsyncSession, events: Sequence[DomainEvent], tickets: Sequence[Ticket]) -> BatchReads:
        if not tickets:
            return cls()
        # Status actions (Ticket received, ...) write to the contact, on the customer's thread.
        acting = {e.ticket_id for e in events if isinstance(e, (TicketCreated, TicketStatusChanged))}
        acted_on = [t for t in tickets if t.id in acting]
        contacts = await _rows(session, Contact, Contact.id, {t.contact_id for t in acted_on})
        reads = cls(threads=await customer_threads(session, acted_on), rows=[
            *await _rows(session, PipelineAutomation, PipelineAutomation.pipeline_id, {t.pipeline_id for t in tickets}),
            *await _rows(session, Conversation, Conversation.id,
                         {e.conversation_id for e in events if isinstance(e, MessageReceived)}),
            *await _rows(session, Channel, Channel.id, {t.channel_id for t in tickets}),
            *contacts,
        ])
        await reads._count_automated_mail(session, {c.email for c in contacts if c.email})
        return reads

    async def may_send_automated(self, session: AsyncSession, recipient: str) -> bool:
        """The loop guard's rate limit: whether ``recipient`` may get one more automated email now."""
        if recipient not in self.automated_mail:  # not the contact of a ticket the batch acts on
            await self._count_automated_mail(session, {recipient})
        return automated_mail_allowed(self.automated_mail[recipient])

    def sent_automated(self, recipient: str) -> None:
        self.automated_mail[recipient] += 1

    async def _count_automated_mail(self, session: AsyncSession, recipients: set[str]) -> None:
        if not recipients:
            return
        since = utcnow() - timedelta(seconds=AUTOMATED_MAIL_WINDOW_SECONDS)
        self.automated_mail.update({r: 0 for r in recipients})
        self.automated_mail.update(dict((await session.execute(
            select(Delivery.recipient, func.count()).where(
                Delivery.recipient.in_(recipients), Delivery.kind == "template", Delivery.created_at >= since)
            .group_by(Delivery.recipient))).all()))


async def _rows(session: AsyncSession, model: type, column, ids: set[int | None]) -> list:  # type: ignore[no-untyped-def]
    wanted = sorted(i for i in ids if i is not None)
    return list((await session.scalars(select(model).where(column.in_(wanted)))).all()) if wanted else []
