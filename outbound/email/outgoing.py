"""Queue an email on a ticket: threaded onto the customer's conversation, recorded as a message.

Both the agent reply API and automation's "send email" action end here:
the message is composed once (signed Message-ID, In-Reply-To/References to
the customer's latest mail, ``[#<ticket>]`` in the subject), stored as a
blob, recorded as an outbound ``Message`` and queued as one ``Delivery``
under the caller's idempotency key, all in the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.model import Channel, Conversation, Delivery, Message, Ticket
from frontdesk.model.channels import EMAIL
from frontdesk.model.messages import INBOUND, OUTBOUND
from frontdesk.reply_tokens import make_message_id
from frontdesk.settings import Settings
from frontdesk.storage.blobs import BlobStore
from frontdesk.outbound.deliveries import queue_delivery, store_email
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
    query = (select(Message)
             .where(Message.ticket_id == ticket.id, Message.direction == INBOUND, Message.channel == EMAIL)
             .order_by(Message.id.desc()).limit(1))
    latest = None
    if ticket.origin_conversation_id is not None:
        latest = await session.scalar(query.where(Message.conversation_id == ticket.origin_conversation_id))
    if latest is None:
        latest = await session.scalar(query)
    if latest is None:
        conversation_id = ticket.origin_conversation_id
        if conversation_id is None:
            conversation_id = await session.scalar(
                select(Conversation.id).where(Conversation.ticket_id == ticket.id).order_by(Conversation.id).limit(1))
        return ThreadParent(conversation_id, None, (), None)
    references = tuple(str(r) for r in (latest.references or []))
    return ThreadParent(latest.conversation_id, latest.external_id, references, latest.subject)


async def sending_address(session: AsyncSession, settings: Settings, ticket: Ticket) -> str:
    """The support address the ticket came in on, so the customer's reply comes back to it."""
    if ticket.channel_id is not None:
        channel = await session.get(Channel, ticket.channel_id)
        if channel is not None and channel.kind == EMAIL:
            return channel.key
    return settings.from_address


def _domain(address: str) -> str:
    return address.rpartition("@")[2] or "localhost"


async def queue_ticket_email(
    session: AsyncSession, blobs: BlobStore, settings: Settings, *, ticket: Ticket, to: str, subject: str | None,
    text: str, html: str | None, idempotency_key: str, kind: str, author_kind: str,
    author_user_id: int | None = None, automated: bool = False, cc: tuple[str, ...] = (),
) -> tuple[Message, Delivery]:
    """Record and queue one email to a customer on ``ticket`` (see the module docstring).

    ``subject`` None answers the customer's subject ("Re: ...").
    """
    parent = await customer_thread(session, ticket)
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
    blob, payload = await store_email(blobs, mail)
    message = Message(
        conversation_id=parent.conversation_id, ticket_id=ticket.id, direction=OUTBOUND, channel=EMAIL,
        channel_id=ticket.channel_id, external_id=message_id, in_reply_to=parent.message_id,
        references=list(references), subject=mail.subject, from_address=sender, to_addresses=[to],
        cc_addresses=list(cc), text_body=text, html_body=html, raw_blob=blob, author_kind=author_kind,
        author_user_id=author_user_id, is_automated=automated, delivery_state="queued", source="outbound",
    )
    session.add(message)
    await session.flush()
    await refresh_ticket_index(session, ticket.id)
    delivery = queue_delivery(session, idempotency_key=idempotency_key, channel=EMAIL, recipient=to, kind=kind,
                              payload=payload, ticket_id=ticket.id, message_id=message.id)
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
