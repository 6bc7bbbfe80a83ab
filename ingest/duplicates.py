"""The one duplicate rule for messages that channels hand in already normalized.

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

from sqlalchemy import Row, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.model import Message
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
