"""Persist one threaded inbound message: conversation, ticket, message, attachments, participants, events.

Everything here runs inside the pipeline runner's transaction, so the
rows and the outbox events they announce commit together or not at all.
A message on its own is flushed as it is stored; a batch of mail
(:class:`BatchStore`) stores its rows under reserved ids and writes them
together, one statement per table, when its :class:`TicketWrites` apply.
Attachment bytes go to the content-addressed blob store first; a rolled
back transaction leaves at most an unreferenced blob, never a row that
points at nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from sqlalchemy import func, insert, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.events import AGENT, CUSTOMER, Actor, DomainEvent, MessageReceived, MessageScreened
from frontdesk.model import (
    Attachment,
    Channel,
    Contact,
    Conversation,
    Message,
    Status,
    Ticket,
    TicketParticipant,
)
from frontdesk.model.channels import EMAIL
from frontdesk.model.messages import ACCEPTED, INBOUND
from frontdesk.storage.ids import ReservedIds, reserve_ids
from frontdesk.outbox import record_events
from frontdesk.storage.blobs import BlobStore
from frontdesk.ingest.contacts import normalize_address
from frontdesk.storage.upsert import dialect_insert
from frontdesk.ingest.message import InboundMessage, IngestOutcome, QuarantineMessage
from frontdesk.ingest.threading import ThreadMatch
from frontdesk.tickets.associations import COMPANIES, CONTACTS, link_pairs
from frontdesk.tickets.creation import create_ticket, new_ticket, ticket_created
from frontdesk.tickets.errors import DomainError
from frontdesk.tickets.header_fields import flatten
from frontdesk.tickets.inboxes import help_desk_id
from frontdesk.tickets.property_values import submitted_custom_values
from frontdesk.tickets.search_index import refresh_ticket_indexes

TICKET_NAME_LIMIT = 500
DESCRIPTION_LIMIT = 4000
NO_SUBJECT = "(no subject)"


def clean_text(value: Any, limit: int | None = None) -> str | None:
    """Text every backend stores: no NUL (PostgreSQL refuses it), no lone surrogates, within ``limit``."""
    if value is None:
        return None
    text = str(value)
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text[:limit] if limit is not None else text


def _clean_json(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, (list, tuple)):
        return [_clean_json(v) for v in value]
    if isinstance(value, dict):
        return {clean_text(k): _clean_json(v) for k, v in value.items()}
    return value


def ticket_name(message: InboundMessage) -> str:
    """The subject, or the first words of the text when there is none."""
    subject = flatten(message.subject)
    if subject:
        return clean_text(subject, TICKET_NAME_LIMIT) or NO_SUBJECT
    words = " ".join((message.reply_text or message.text_body or "").split()[:12])
    if words:
        return clean_text(words, 120) or NO_SUBJECT
    return NO_SUBJECT


def ticket_description(message: InboundMessage) -> str | None:
    text = (message.reply_text or message.text_body or "").strip()
    return clean_text(text, DESCRIPTION_LIMIT) or None


@dataclass
class Persisted:
    message: Message
    ticket: Ticket | None
    conversation: Conversation | None
    ticket_created: bool


@dataclass
class BatchStore:
    """What storing a batch of mail reads, read once for it, and the ids its new rows are written under.

    Filled by :meth:`read` in the batch's transaction (:mod:`ingest.email_batch`).
    With it, :func:`persist_message` runs no statement: its rows are added
    with reserved ids and written together, one statement per table, when
    the runner applies the batch's :class:`TicketWrites`.  Whatever it does
    not hold (a ticket no lookup named) is read as without it.
    """

    statuses: dict[int, Status] = field(default_factory=dict)  # first open status by pipeline
    help_desk: int | None = None
    tickets: dict[int, Ticket] = field(default_factory=dict)
    conversations: dict[int, Conversation] = field(default_factory=dict)
    latest_email: dict[int, Conversation | None] = field(default_factory=dict)  # by ticket: newest email thread
    ids: dict[str, ReservedIds] = field(default_factory=dict)

    @classmethod
    async def read(cls, session: AsyncSession, *, pipelines: Iterable[int], tickets: Iterable[int],
                   conversations: Iterable[int], reserve: dict[str, int]) -> BatchStore:
        store = cls(help_desk=await help_desk_id(session))
        pipeline_ids = sorted(set(pipelines))
        if pipeline_ids:
            for status in (await session.scalars(
                    select(Status).where(Status.pipeline_id.in_(pipeline_ids), Status.is_closed.is_(False))
                    .order_by(Status.pipeline_id, Status.position, Status.id))).all():
                store.statuses.setdefault(status.pipeline_id, status)
        ticket_ids = sorted(set(tickets))
        if ticket_ids:
            store.tickets = {t.id: t for t in (await session.scalars(
                select(Ticket).where(Ticket.id.in_(ticket_ids)))).all()}
            store.latest_email = dict.fromkeys(ticket_ids)
            newest = (select(func.max(Conversation.id)).where(Conversation.ticket_id.in_(ticket_ids),
                                                               Conversation.channel == EMAIL)
                      .group_by(Conversation.ticket_id))
            for conversation in (await session.scalars(select(Conversation).where(Conversation.id.in_(newest)))).all():
                store.latest_email[conversation.ticket_id] = conversation
                store.conversations[conversation.id] = conversation
        conversation_ids = sorted(set(conversations) - set(store.conversations))
        if conversation_ids:
            store.conversations.update({c.id: c for c in (await session.scalars(
                select(Conversation).where(Conversation.id.in_(conversation_ids)))).all()})
        store.ids = await reserve_ids(session, reserve)
        return store


async def _ticket(session: AsyncSession, ticket_id: int, store: BatchStore | None) -> Ticket | None:
    if store is not None and ticket_id in store.tickets:
        return store.tickets[ticket_id]
    return await session.get(Ticket, ticket_id)


async def _conversation(session: AsyncSession, conversation_id: int, store: BatchStore | None) -> Conversation | None:
    if store is not None and conversation_id in store.conversations:
        return store.conversations[conversation_id]
    return await session.get(Conversation, conversation_id)


async def first_open_status(session: AsyncSession, pipeline_id: int) -> Status:
    status = await session.scalar(
        select(Status)
        .where(Status.pipeline_id == pipeline_id, Status.is_closed.is_(False))
        .order_by(Status.position, Status.id)
        .limit(1)
    )
    if status is None:
        raise LookupError(f"pipeline {pipeline_id} has no open status for new tickets")
    return status


async def _latest_conversation(session: AsyncSession, ticket_id: int, channel: str) -> Conversation | None:
    return await session.scalar(
        select(Conversation)
        .where(Conversation.ticket_id == ticket_id, Conversation.channel == channel)
        .order_by(Conversation.id.desc())
        .limit(1)
    )


def participant_addresses(addresses: Iterable[str | None], exclude: set[str]) -> list[str]:
    """The distinct normalized addresses among ``addresses`` that are not ours."""
    wanted: list[str] = []
    for value in addresses:
        address = normalize_address(value)
        if address and address not in exclude and address not in wanted:
            wanted.append(address)
    return wanted


def message_participants(message: InboundMessage, contact: Contact | None, own_addresses: set[str]) -> list[str]:
    """Who takes part in a ticket by writing this message: sender, the contact's email, To and Cc."""
    # A form's or chat's contact email counts too: our replies go there.
    contact_email = contact.email if contact else None
    return participant_addresses([message.sender_address, contact_email, *message.to, *message.cc], own_addresses)


@dataclass
class TicketWrites:
    """What storing messages asks of their tickets, written at the end of the run, one statement each.

    Participants (who took part, so their later ``[#id]`` subject tokens
    are trusted), contact and company associations, the outbox events, and
    each touched ticket's search document (rebuilt once, however many of
    the run's messages it got).  The message pipeline has one per message;
    an email batch shares one (:mod:`ingest.batch_runner`).
    """

    participants: set[tuple[int, str]] = field(default_factory=set)
    contacts: set[tuple[int, int]] = field(default_factory=set)
    companies: set[tuple[int, int]] = field(default_factory=set)
    tickets: dict[int, None] = field(default_factory=dict)  # in order, once each
    events: list[DomainEvent] = field(default_factory=list)
    # A batch's new tickets, conversations, messages and attachments (BatchStore), in order.
    new_rows: list[Any] = field(default_factory=list)

    async def apply(self, session: AsyncSession) -> None:
        if self.new_rows:
            # One statement per table, parents first.  No autoflush: a
            # pending change to an existing row (a conversation joining a
            # new ticket) may point at a row inserted here, so it goes after.
            with session.no_autoflush:
                for model in (Ticket, Conversation, Message, Attachment):
                    rows = [_values(row) for row in self.new_rows if type(row) is model]
                    if rows:
                        await session.execute(insert(model), rows)
        await session.flush()
        if self.participants:
            # Sorted, so two concurrent writers lock the same rows in the
            # same order and cannot deadlock each other.
            await session.execute(
                dialect_insert(session, TicketParticipant)
                .values([{"ticket_id": t, "address": a} for t, a in sorted(self.participants)])
                .on_conflict_do_nothing(index_elements=["ticket_id", "address"])
            )
        await link_pairs(session, CONTACTS, self.contacts)
        await link_pairs(session, COMPANIES, self.companies)
        await refresh_ticket_indexes(session, self.tickets)
        await record_events(session, *self.events)


def _values(row: Any) -> dict[str, Any]:
    """The column values set on a new, unsaved row (the rest take their defaults)."""
    state = row.__dict__
    return {attr.key: state[attr.key] for attr in sa_inspect(type(row)).column_attrs if attr.key in state}


async def _store_attachments(session: AsyncSession, blobs: BlobStore, message_id: int,
                             message: InboundMessage, digests: list[str | None] | None,
                             add: Callable[[Attachment], None]) -> None:
    for index, part in enumerate(message.attachments):
        if digests is not None:
            digest = digests[index]
        else:
            digest = await blobs.put(part.data) if part.data is not None else None
        add(Attachment(
            message_id=message_id,
            filename=clean_text(part.filename, 500),
            content_type=clean_text(part.content_type or "application/octet-stream", 255) or "application/octet-stream",
            size=part.size,
            blob=digest,
            url=clean_text(part.url),
            content_id=clean_text(part.content_id, 998),
            is_inline=part.is_inline,
            from_tnef=part.from_tnef,
        ))


def _message_row(message: InboundMessage, channel: Channel, match: ThreadMatch, ticket: Ticket | None,
                 conversation: Conversation | None) -> Message:
    in_reply_to = " ".join(f"<{i.strip('<>')}>" for i in message.in_reply_to) or None
    return Message(
        conversation_id=conversation.id if conversation else None,
        ticket_id=ticket.id if ticket else None,
        direction=message.direction,
        channel=message.channel,
        channel_id=channel.id,
        external_id=clean_text(message.external_id, 998),
        in_reply_to=clean_text(in_reply_to, 998),
        references=_clean_json(list(message.references)),
        subject=clean_text(message.subject),
        from_address=normalize_address(message.sender_address) or clean_text(message.sender_address, 320),
        from_name=clean_text(message.sender_name, 300),
        to_addresses=_clean_json(list(message.to)),
        cc_addresses=_clean_json(list(message.cc)),
        headers=_clean_json([list(h) for h in message.headers]),
        text_body=clean_text(message.text_body),
        html_body=clean_text(message.html_body),
        reply_text=clean_text(message.reply_text),
        raw_blob=message.raw_blob,
        content_hash=message.content_hash,
        sent_at=message.sent_at if message.sent_at is None or message.sent_at.tzinfo else None,
        author_kind=message.author_kind,
        screening=message.screening,
        screening_reason=clean_text(message.screening_reason),
        match_rule=match.rule,
        match_detail=clean_text(match.detail),
        is_forwarded=message.is_forwarded,
        via_personal_mailbox=bool(message.extra.get("via_personal_mailbox", False)),
        bounced_message_id=match.bounced_message_id,
        defects=_clean_json(list(message.defects)),
        source=clean_text(message.source, 320),
        extra=_clean_json(dict(message.extra)),
    )


async def persist_message(
    session: AsyncSession,
    blobs: BlobStore,
    message: InboundMessage,
    *,
    channel: Channel,
    contact: Contact | None,
    match: ThreadMatch,
    own_addresses: set[str],
    attachment_blobs: list[str | None] | None = None,
    writes: TicketWrites,
    store: BatchStore | None = None,
) -> Persisted:
    """Write the message where ``match`` says, creating the ticket and conversation it needs.

    ``attachment_blobs`` are the digests of attachments already in the
    blob store, in order; without them the bytes are stored here.  What
    follows for the ticket (participants, associations, search document,
    events) is added to ``writes``, which the runner applies before it
    commits.  With a batch's ``store`` nothing is written here: the rows
    are added under reserved ids and written when ``writes`` is applied.
    """
    screened = message.screening != ACCEPTED
    ticket = await _ticket(session, match.ticket_id, store) if match.ticket_id is not None else None
    conversation = await _conversation(session, match.conversation_id, store) if match.conversation_id else None
    if ticket is None and conversation is not None and conversation.ticket_id is not None:
        ticket = await _ticket(session, conversation.ticket_id, store)
    created = False

    if not screened:
        if ticket is not None and (conversation is None or conversation.ticket_id != ticket.id):
            if store is not None and message.channel == EMAIL and ticket.id in store.latest_email:
                conversation = store.latest_email[ticket.id]
            else:
                conversation = await _latest_conversation(session, ticket.id, message.channel)
        if ticket is None and channel.create_tickets and message.direction == INBOUND:
            ticket = await _new_ticket(session, message, channel, contact, store, writes)
            created = True
        if conversation is None:
            conversation = Conversation(
                ticket_id=ticket.id if ticket else None,
                channel=message.channel,
                channel_id=channel.id,
                thread_key=clean_text(message.thread_key or message.external_id, 998),
                contact_id=contact.id if contact else None,
                is_forwarded=message.is_forwarded,
                inbox_id=store.help_desk if store is not None else await help_desk_id(session),
            )
            await _add(session, conversation, store, writes, "conversations")
            if store is not None:
                store.conversations[conversation.id] = conversation
                if ticket is not None and message.channel == EMAIL:
                    store.latest_email[ticket.id] = conversation
        elif conversation.ticket_id is None and ticket is not None:
            conversation.ticket_id = ticket.id
        if created:
            assert ticket is not None
            ticket.origin_conversation_id = conversation.id

    row = _message_row(message, channel, match, ticket, conversation)
    await _add(session, row, store, writes, "messages")
    await _store_attachments(session, blobs, row.id, message, attachment_blobs,
                             writes.new_rows.append if store is not None else session.add)
    if ticket is not None and not screened:
        writes.participants.update((ticket.id, a) for a in message_participants(message, contact, own_addresses))
        if contact is not None and not created:  # create_ticket associated the first one
            # Whoever writes on a ticket is associated with it, and their company too.
            writes.contacts.add((ticket.id, contact.id))
            if contact.company_id is not None:
                writes.companies.add((ticket.id, contact.company_id))
    if ticket is not None:
        writes.tickets[ticket.id] = None
    stored = Persisted(row, ticket, conversation, created)
    writes.events += ingest_events(message, stored)
    return stored


async def _add(session: AsyncSession, row: Any, store: BatchStore | None, writes: TicketWrites, table: str) -> None:
    """Add a new row: under a reserved id, written later with the batch's; alone, flushed now for its id."""
    if store is not None:
        row.id = await store.ids[table].take(session)
        writes.new_rows.append(row)
    else:
        session.add(row)
        await session.flush()


async def _new_ticket(session: AsyncSession, message: InboundMessage, channel: Channel, contact: Contact | None,
                      store: BatchStore | None, writes: TicketWrites) -> Ticket:
    values = dict(
        source=message.channel,
        channel_id=channel.id,
        contact_id=contact.id if contact else None,
        company_id=contact.company_id if contact else None,
        **await _ticket_values(session, message),
    )
    if store is None:
        return await create_ticket(
            session, actor=_actor(message), status=await first_open_status(session, channel.pipeline_id),
            # The event waits for the conversation (see ingest_events),
            # the search document for the end of the run (TicketWrites).
            record=False, index=False, **values)
    status = store.statuses.get(channel.pipeline_id) or await first_open_status(session, channel.pipeline_id)
    ticket = new_ticket(status=status, id=await store.ids["tickets"].take(session), **values)
    writes.new_rows.append(ticket)
    store.tickets[ticket.id] = ticket
    # What create_ticket associates, written with the batch's other associations.
    if ticket.contact_id is not None:
        writes.contacts.add((ticket.id, ticket.contact_id))
    if ticket.company_id is not None:
        writes.companies.add((ticket.id, ticket.company_id))
    return ticket


_TICKET_FIELD_COLUMNS = {"priority": 20, "category": 100}


async def _ticket_values(session: AsyncSession, message: InboundMessage) -> dict[str, Any]:
    """The new ticket's values: from the message, then its form fields.

    Known ticket columns go to their column, the rest to custom properties,
    typed and checked like an API write where a property is defined (a query
    only when there are such fields: forms, never plain email).  A value its
    property refuses quarantines the message, to be replayed once fixed.
    """
    values: dict[str, Any] = {"name": ticket_name(message), "description": ticket_description(message)}
    custom: dict[str, Any] = {}
    for name, value in message.ticket_fields.items():
        if name in _TICKET_FIELD_COLUMNS and value is not None:
            values[name] = clean_text(value, _TICKET_FIELD_COLUMNS[name])
        elif name in ("subject", "name") and value:
            values["name"] = clean_text(flatten(str(value)), TICKET_NAME_LIMIT) or values["name"]
        elif name == "description" and value:
            values["description"] = clean_text(value, DESCRIPTION_LIMIT)
        else:
            custom[name] = _clean_json(value)
    try:
        values["custom_properties"] = await submitted_custom_values(session, custom)
    except DomainError as error:
        raise QuarantineMessage(error.code, error.message) from None
    return values


def _actor(message: InboundMessage) -> Actor:
    # A Messenger echo is our own page speaking: an agent, not the customer.
    return Actor(CUSTOMER if message.direction == INBOUND else AGENT)


def ingest_events(message: InboundMessage, stored: Persisted) -> list[DomainEvent]:
    """The outbox events for what was just written: created, received, or screened."""
    actor = _actor(message)
    row, ticket, conversation = stored.message, stored.ticket, stored.conversation
    ticket_id = ticket.id if ticket else None
    if message.screening != ACCEPTED:
        return [MessageScreened(
            ticket_id=ticket_id, actor=actor, message_id=row.id, verdict=message.screening,
            reason=row.screening_reason, bounced_message_id=row.bounced_message_id,
        )]
    if ticket is None:
        # No ticket, nothing for automation to act on (see docs/ingest-threading.md).
        return []
    created = ticket_created(ticket, actor) if stored.ticket_created else None
    received = MessageReceived(
        ticket_id=ticket_id, actor=actor,
        # The message that created a ticket is part of the same customer action.
        correlation_id=created.correlation_id if created else None,
        message_id=row.id,
        conversation_id=conversation.id if conversation else None,
        channel=message.channel,
        channel_id=row.channel_id,
        direction=row.direction,
        author_kind=row.author_kind,
        sender=row.from_address,
        match_rule=row.match_rule,
        ticket_created=stored.ticket_created,
        on_origin_thread=conversation is not None and conversation.id == ticket.origin_conversation_id,
        ticket_reopened=ticket.reopened_at is not None,
        is_forwarded=bool(row.is_forwarded),
        is_automated=bool(row.is_automated),
        via_personal_mailbox=bool(row.via_personal_mailbox),
    )
    return [e for e in (created, received) if e is not None]


def outcome_for(stored: Persisted, match: ThreadMatch, message: InboundMessage) -> IngestOutcome:
    ticket_id = stored.ticket.id if stored.ticket else None
    message_id = stored.message.id
    if message.screening != ACCEPTED:
        return IngestOutcome("screened", ticket_id, message_id, reason=message.screening)
    if stored.ticket_created:
        return IngestOutcome("ticket_created", ticket_id, message_id, reason=match.rule)
    if ticket_id is None:
        return IngestOutcome("no_ticket", None, message_id, reason=match.rule)
    return IngestOutcome("threaded", ticket_id, message_id, reason=match.rule)

