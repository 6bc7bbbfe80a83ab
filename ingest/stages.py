"""The ingest stages: small async functions of the shared :class:`Ingest` state, one step each.

A stage reads and fills in :class:`Ingest`; it ends a run early by raising
:class:`FinalOutcome` (the message is settled, e.g. a duplicate) or
:class:`~ingest.message.QuarantineMessage` (it cannot be processed).  Which
stages run, in which order, is :mod:`ingest.pipeline`; the transaction and
every outcome are :mod:`ingest.runner`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Awaitable, Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.model import Channel, Contact
from frontdesk.model.messages import ACCEPTED
from frontdesk.ingest import contacts, persist, threading
from frontdesk.ingest.duplicates import email_copy_key, known_message
from frontdesk.ingest.email_batch import EmailBatch
from frontdesk.ingest.context import IngestContext
from frontdesk.ingest.email_channels import email_channels
from frontdesk.ingest.message import Envelope, InboundMessage, IngestOutcome, QuarantineMessage
from frontdesk.ingest.parse_pool import parse_off_loop
from frontdesk.ingest.screening import screen as screen_message


class FinalOutcome(Exception):
    """A stage has decided what becomes of the message; no later stage runs."""

    def __init__(self, outcome: IngestOutcome) -> None:
        super().__init__(outcome.kind)
        self.outcome = outcome


@dataclass
class Ingest:
    """What the stages of one run share (Mailman's ``msgdata``)."""

    ctx: IngestContext
    session: AsyncSession | None
    envelope: Envelope
    raw: bytes | None
    raw_blob: str
    message: InboundMessage | None = None
    channel: Channel | None = None
    contact: Contact | None = None
    match: threading.ThreadMatch | None = None
    attachment_blobs: list[str | None] | None = None
    email_channels: list[Channel] = field(default_factory=list)
    stored: persist.Persisted | None = None
    writes: persist.TicketWrites = field(default_factory=persist.TicketWrites)
    outcome: IngestOutcome | None = None
    email_batch: EmailBatch | None = None  # the batch an email belongs to (ingest.batch_runner)

    @property
    def batch(self) -> EmailBatch:
        assert self.email_batch is not None, "an email stage ran outside a batch"
        return self.email_batch

    @property
    def db(self) -> AsyncSession:
        assert self.session is not None, "a database stage ran outside the transaction"
        return self.session

    @property
    def inbound(self) -> InboundMessage:
        assert self.message is not None, "the parse stage did not run"
        return self.message


Stage = Callable[[Ingest], Awaitable[None]]


async def parse(state: Ingest) -> None:
    """Raw RFC 5322 bytes to an :class:`InboundMessage` (in the process pool, :mod:`ingest.parse_pool`)."""
    assert state.raw is not None
    state.message = await parse_off_loop(state.raw, envelope=state.envelope, raw_blob=state.raw_blob,
                                         pooled=state.batch.pooled)


async def screen(state: Ingest) -> None:
    """Flag auto-replies, bounces and loops; they are stored but never start a ticket."""
    state.message = screen_message(state.inbound, await state.batch.ours())


async def store_attachments(state: Ingest) -> None:
    """Attachment bytes to the blob store, before the transaction, so it holds no lock while fsyncing."""
    state.attachment_blobs = [
        await state.ctx.blobs.put(part.data) if part.data is not None else None
        for part in state.inbound.attachments
    ]


async def resolve_email_channel(state: Ingest) -> None:
    """The support address the mail was sent to picks the channel, its pipeline and its switches.

    IMAP pollers name it (``envelope.channel_key``); over SMTP it is the
    envelope recipient; the To / Cc headers are the last resort.
    """
    message = state.inbound
    state.email_channels = state.batch.channels
    # A disabled channel receives nothing: its mail waits in the quarantine.
    channels = {c.key.lower(): c for c in state.email_channels if c.enabled}
    tried = [state.envelope.channel_key, message.channel_key, *state.envelope.rcpt_tos, *message.to, *message.cc]
    for value in tried:
        address = contacts.normalize_address(value)
        if address in channels:
            state.channel = channels[address]
            message.channel_key = state.channel.key
            return
    raise QuarantineMessage("unknown_channel", f"no support address among {[t for t in tried if t][:10]}")


async def resolve_message_channel(state: Ingest) -> None:
    """Webhook channels name themselves: (kind, key) such as (messenger, page id).

    A caller that already looked the channel up (the webhook processor,
    once per payload) hands it in, and it is not read again.
    """
    if state.channel is not None:
        return
    message = state.inbound
    state.channel = await state.db.scalar(
        select(Channel).where(Channel.kind == message.channel, Channel.key == (message.channel_key or ""),
                              Channel.enabled))
    if state.channel is None:
        raise QuarantineMessage("unknown_channel", f"no {message.channel} channel {message.channel_key!r}")


async def reject_duplicate(state: Ingest) -> None:
    """An exact redelivery (same Message-ID, same bytes) is acknowledged and not stored again.

    SMTP redelivery after a lost 250 and an IMAP UIDVALIDITY resync both
    bring back byte-identical mail.  Nothing is written: the first copy
    already holds the same raw bytes, and the outcome names it.
    """
    first = state.batch.copies.get(email_copy_key(state.inbound))
    if first is not None:
        raise FinalOutcome(IngestOutcome("duplicate", first.ticket_id, first.id, reason="same Message-ID and content"))


async def reject_known_message(state: Ingest) -> None:
    """Webhook channels: the one duplicate rule, (channel, provider message id) (:mod:`ingest.duplicates`)."""
    assert state.channel is not None
    first = await known_message(state.db, state.channel.id, state.inbound.external_id)
    if first is not None:
        raise FinalOutcome(IngestOutcome("duplicate", first.ticket_id, first.id,
                                         reason=f"{state.inbound.channel} message id already stored"))


async def identify_email_contact(state: Ingest) -> None:
    """Find or create the sender as a contact; screened mail (MAILER-DAEMON, vacation) creates none."""
    if state.inbound.screening == ACCEPTED:
        # Found or created with the whole batch's senders (EmailBatch.look_up).
        state.contact = state.batch.contact(state.inbound) or await contacts.identify_email_sender(
            state.db, state.inbound)


async def identify_channel_contact(state: Ingest) -> None:
    assert state.channel is not None
    if state.inbound.screening == ACCEPTED:
        state.contact = await contacts.identify_channel_sender(state.db, state.inbound, state.channel.id)


async def thread_email(state: Ingest) -> None:
    """Where the mail goes, decided from the batch's facts (:mod:`ingest.threading`)."""
    facts = state.batch.threads
    if state.inbound.screening != ACCEPTED:
        state.match = threading.link_screened(state.inbound, facts, state.ctx.secret_key)
    else:
        state.match = threading.thread_email(state.inbound, facts, state.ctx.secret_key)


async def thread_conversation(state: Ingest) -> None:
    assert state.channel is not None
    state.match = await threading.thread_by_key(state.db, state.inbound, state.channel.id)


async def store(state: Ingest) -> None:
    """Conversation, ticket, message and attachments; the rest for the ticket goes to ``state.writes``.

    The runner applies ``state.writes`` (participants, associations,
    search document, events) before it commits, for the whole batch at once.
    """
    assert state.channel is not None and state.match is not None
    if not state.email_channels:
        state.email_channels = await email_channels(state.db, state.ctx.sessions)
    own = {c.key.lower() for c in state.email_channels}
    stored = await persist.persist_message(
        state.db, state.ctx.blobs, state.inbound,
        channel=state.channel, contact=state.contact, match=state.match, own_addresses=own,
        attachment_blobs=state.attachment_blobs, writes=state.writes,
        store=state.email_batch.store if state.email_batch is not None else None,  # None: one by one
    )
    state.stored = stored
    state.outcome = persist.outcome_for(stored, state.match, state.inbound)

