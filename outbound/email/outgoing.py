"""Queue an email on a ticket: threaded onto the customer's conversation, recorded as a message.

Both the agent reply API and automation's "send email" action end here:
the message is composed once (signed Message-ID, In-Reply-To/References to
the customer's latest mail, ``[#<ticket>]`` in the subject), stored as a
blob, recorded as an outbound ``Message`` and queued as one ``Delivery``
under the caller's idempotency key, all in the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.model import Channel, Conversation, Delivery, Message, Ticket
from frontdesk.model.channels import EMAIL
from frontdesk.model.messages import INBOUND, OUTBOUND
from frontdesk.reply_tokens import make_message_id
from frontdesk.settings import Settings
from frontdesk.storage.blobs import BlobStore
from frontdesk.outbound.deliveries import composed_email, delivery_row, queue_delivery, store_email
from frontdesk.tickets.header_fields import flatten
from frontdesk.tickets.search_index import refresh_ticket_index
from frontdesk.outbound.email.compose import AUTO_GENERATED, AUTO_REPLIED, OutboundEmail, reply_subject, subject_with_token


@dataclass(frozen=True)
class ThreadParent:
    """The customer's mail we answer: where our reply threads."""

    conversation_id: int | None
    message_id: str | None  # its Message-ID, without angle brackets
    references: tuple[str, ...]
    subject: str | None


async def customer_thread(session: AsyncSession, ticket: Ticket) -> ThreadParent:
    """The latest inbound email on the ticket, preferring its origin conversation."""
    return (await customer_threads(session, [ticket]))[ticket.id]


async def customer_threads(session: AsyncSession, tickets: Iterable[Ticket]) -> dict[int, ThreadParent]:
    """:func:`customer_thread` of many tickets in at most three queries (the automation handler's batch)."""
    by_id = {t.id: t for t in tickets}
    if not by_id:
        return {}
    origin: dict[int, int] = {}  # ticket -> its latest inbound email on its origin conversation
    anywhere: dict[int, int] = {}  # ticket -> its latest inbound email
    for ticket_id, conversation_id, message_id in (await session.execute(
            select(Message.ticket_id, Message.conversation_id, func.max(Message.id))
            .where(Message.ticket_id.in_(by_id), Message.direction == INBOUND, Message.channel == EMAIL)
            .group_by(Message.ticket_id, Message.conversation_id))).all():
        anywhere[ticket_id] = max(anywhere.get(ticket_id, 0), message_id)
        if conversation_id is not None and conversation_id == by_id[ticket_id].origin_conversation_id:
            origin[ticket_id] = message_id
    chosen = {t: origin.get(t, anywhere.get(t)) for t in by_id}
    ids = [m for m in chosen.values() if m is not None]
    latest = {row.id: row for row in (await session.execute(
        select(Message.id, Message.conversation_id, Message.external_id, Message.references, Message.subject)
        .where(Message.id.in_(ids)))).all()} if ids else {}
    unthreaded = [t for t, m in chosen.items() if m is None and by_id[t].origin_conversation_id is None]
    first_conversation = dict((await session.execute(
        select(Conversation.ticket_id, func.min(Conversation.id)).where(Conversation.ticket_id.in_(unthreaded))
        .group_by(Conversation.ticket_id))).all()) if unthreaded else {}
    threads = {}
    for ticket_id, message_id in chosen.items():
        if message_id is None:
            conversation_id = by_id[ticket_id].origin_conversation_id or first_conversation.get(ticket_id)
            threads[ticket_id] = ThreadParent(conversation_id, None, (), None)
        else:
            row = latest[message_id]
            references = tuple(str(r) for r in (row.references or []))
            threads[ticket_id] = ThreadParent(row.conversation_id, row.external_id, references, row.subject)
    return threads


async def sending_address(session: AsyncSession, settings: Settings, ticket: Ticket) -> str:
    """The support address the ticket came in on, so the customer's reply comes back to it."""
    if ticket.channel_id is not None:
        channel = await session.get(Channel, ticket.channel_id)
        if channel is not None and channel.kind == EMAIL:
            return channel.key
    return settings.from_address


def _domain(address: str) -> str:
    return address.rpartition("@")[2] or "localhost"


@dataclass(frozen=True)
class PreparedEmail:
    """One email to a customer, composed: its bytes, its ``messages`` row and its ``deliveries`` row."""

    raw: bytes  # stored as the blob ``message["raw_blob"]``
    message: dict[str, Any]
    delivery: dict[str, Any]  # its ``message_id`` is the message row's id, once written


async def prepare_ticket_email(
    session: AsyncSession, settings: Settings, *, ticket: Ticket, to: str, subject: str | None,
    text: str, html: str | None, idempotency_key: str, kind: str, author_kind: str,
    author_user_id: int | None = None, automated: bool = False, cc: tuple[str, ...] = (),
    thread: ThreadParent | None = None,
) -> PreparedEmail:
    """Compose one email to a customer on ``ticket``, threaded; writing it is the caller's (see :func:`queue_ticket_email`).

    ``subject`` None answers the customer's subject ("Re: ...").  A caller
    that read ``thread`` already (:func:`customer_threads`) passes it.
    """
    parent = thread or await customer_thread(session, ticket)
    if subject is None:
        # Stored as they came (a customer's Subject may decode to a line break): flattened for the header.
        subject = reply_subject(flatten(parent.subject), flatten(ticket.name))
    sender = await sending_address(session, settings, ticket)
    message_id = make_message_id(settings.secret_key.reveal().encode(), ticket.id, _domain(sender))
    references = tuple(r for r in (*parent.references, parent.message_id) if r)
    mail = OutboundEmail(
        from_address=sender, to=(to,), cc=cc, subject=subject_with_token(subject, ticket.id), text=text, html=html,
        message_id=message_id, in_reply_to=parent.message_id, references=references,
        auto_submitted=AUTO_REPLIED if automated else None,
    )
    raw, payload = composed_email(mail)
    message = dict(
        conversation_id=parent.conversation_id, ticket_id=ticket.id, direction=OUTBOUND, channel=EMAIL,
        channel_id=ticket.channel_id, external_id=message_id, in_reply_to=parent.message_id,
        references=list(references), subject=mail.subject, from_address=sender, to_addresses=[to],
        cc_addresses=list(cc), text_body=text, html_body=html, raw_blob=payload["raw_blob"], author_kind=author_kind,
        author_user_id=author_user_id, is_automated=automated, delivery_state="queued", source="outbound",
    )
    delivery = delivery_row(idempotency_key=idempotency_key, channel=EMAIL, recipient=to, kind=kind,
                            payload=payload, ticket_id=ticket.id)
    return PreparedEmail(raw, message, delivery)


async def queue_ticket_email(
    session: AsyncSession, blobs: BlobStore, settings: Settings, *, ticket: Ticket, to: str, subject: str | None,
    text: str, html: str | None, idempotency_key: str, kind: str, author_kind: str,
    author_user_id: int | None = None, automated: bool = False, cc: tuple[str, ...] = (),
) -> tuple[Message, Delivery]:
    """Record and queue one email to a customer on ``ticket`` (see the module docstring).

    ``subject`` None answers the customer's subject ("Re: ...").
    """
    prepared = await prepare_ticket_email(
        session, settings, ticket=ticket, to=to, subject=subject, text=text, html=html,
        idempotency_key=idempotency_key, kind=kind, author_kind=author_kind, author_user_id=author_user_id,
        automated=automated, cc=cc)
    await blobs.put(prepared.raw)
    message = Message(**prepared.message)
    session.add(message)
    await session.flush()
    await refresh_ticket_index(session, ticket.id)
    delivery = Delivery(**{**prepared.delivery, "message_id": message.id})
    session.add(delivery)
    await session.flush()
    return message, delivery


async def queue_internal_email(
    session: AsyncSession, blobs: BlobStore, settings: Settings, *, ticket: Ticket, to: str, subject: str,
    text: str, idempotency_key: str,
) -> Delivery:
    """Queue an internal notification to a user: not part of the customer's conversation."""
    message_id = make_message_id(settings.secret_key.reveal().encode(), ticket.id, _domain(settings.from_address))
    mail = OutboundEmail(
        from_address=settings.from_address, to=(to,), subject=subject_with_token(flatten(subject), ticket.id),
        text=text, message_id=message_id, auto_submitted=AUTO_GENERATED,
    )
    _, payload = await store_email(blobs, mail)
    delivery = queue_delivery(session, idempotency_key=idempotency_key, channel=EMAIL, recipient=to,
                              kind="notification", payload=payload, ticket_id=ticket.id)
    await session.flush()
    return delivery
