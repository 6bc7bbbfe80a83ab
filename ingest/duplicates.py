"""The duplicate rules: a message already stored is acknowledged, not stored again.

Email (:func:`email_copy_key`): the same bytes under the same Message-ID,
looked up for a whole batch at once.

The one duplicate rule for messages that channels hand in already normalized:

A Messenger, chat or form message is a duplicate when a message with the
same provider message id is already stored on the same channel.  That id,
and not the digest of the webhook body, is the key because redeliveries do
not repeat bodies byte for byte: Meta may re-batch a retried event with
others and adds fields (``entry[].time``) on a retry, chat providers
re-serialize, and one Messenger body carries several messages.  (Forms have
no provider id: theirs is the body digest, see ``forms.to_inbound``.)

The webhook intake still recognises a byte-identical body before storing it
(``ingest.intake``), but that only answers "this exact body is
already durable" to a sender whose answer was lost; whether a message is
new is decided here, in the ingest transaction, for the message pipeline
and for echoes in the update pipeline alike.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

from sqlalchemy import Row, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.model import Message
from frontdesk.ingest.message import InboundMessage
from frontdesk.ingest.persist import clean_text


async def known_message(session: AsyncSession, channel_id: int, provider_message_id: str | None) -> Row | None:
    """``(id, ticket_id)`` of the first stored message with this provider id on this channel, if any."""
    if not provider_message_id:
        return None
    external_id = clean_text(provider_message_id, 998)
    if session.get_bind().dialect.name == "postgresql":
        # Two copies processed at once (a replay racing the worker) take
        # turns here, so the second sees the first's row.  SQLite writers
        # take turns anyway (frontdesk.storage.writer).
        digest = hashlib.sha256(f"{channel_id}:{external_id}".encode()).digest()
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                              {"key": int.from_bytes(digest[:8], "big", signed=True)})
    return (await session.execute(
        select(Message.id, Message.ticket_id)
        .where(Message.channel_id == channel_id, Message.external_id == external_id)
        .order_by(Message.id).limit(1))).first()


# Email: an exact redelivery (same Message-ID, same bytes; SMTP after a lost
# 250, an IMAP UIDVALIDITY resync) is the same (content hash, Message-ID).
EmailCopyKey = tuple[str, str | None]


def email_copy_key(message: InboundMessage) -> EmailCopyKey:
    """What makes two mails the same mail: their bytes' digest and their (stored form of) Message-ID."""
    return message.content_hash, clean_text(message.external_id, 998) if message.external_id else None


class StoredCopy(NamedTuple):
    id: int
    ticket_id: int | None


async def stored_email_copies(session: AsyncSession, messages: list[InboundMessage]) -> dict[EmailCopyKey, StoredCopy]:
    """``(id, ticket_id)`` of the first stored copy of each of ``messages``, by :func:`email_copy_key`, in one query."""
    hashes = sorted({message.content_hash for message in messages})
    if not hashes:
        return {}
    if session.get_bind().dialect.name == "postgresql":
        # Two copies arriving at the same moment (SMTP retry racing an IMAP
        # poll) take turns here, so the second one sees the first's row;
        # in one order for everyone, so two batches cannot deadlock.
        # SQLite writers take turns anyway (frontdesk.storage.writer).
        keys = sorted({int.from_bytes(bytes.fromhex(h[:16]), "big", signed=True) for h in hashes})
        await session.execute(text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k"),
                              {"keys": keys})
    rows = await session.execute(
        select(Message.id, Message.ticket_id, Message.content_hash, Message.external_id)
        .where(Message.content_hash.in_(hashes)).order_by(Message.id))
    first: dict[EmailCopyKey, StoredCopy] = {}
    for row in rows:
        first.setdefault((row.content_hash, row.external_id), StoredCopy(row.id, row.ticket_id))
    return first
