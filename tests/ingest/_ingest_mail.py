"""Test helpers for the ingest tests: real RFC 5322 bytes, an ingest context, and row counts."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import format_datetime
from datetime import datetime, timezone
from typing import Iterable

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from frontdesk.model import Message, OutboxEvent, QuarantinedItem, Ticket
from frontdesk.ingest.message import Envelope
from frontdesk.ingest.screening.rule import Ours
from frontdesk.settings import Settings

SUPPORT = "support@acme.test"


def mail(
    *,
    sender: str = "Ada Lovelace <ada@example.com>",
    to: str = SUPPORT,
    subject: str | None = "The printer is on fire",
    body: str = "Hello,\n\nthe printer in room 4 is on fire again.\n\nAda\n",
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: Iterable[str] = (),
    cc: str | None = None,
    extra_headers: Iterable[tuple[str, str]] = (),
    attachments: Iterable[tuple[str, str, bytes]] = (),
) -> bytes:
    """An email as a mail client would send it; ids are given without angle brackets."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    if subject is not None:
        msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime(2026, 11, 20, 9, 30, tzinfo=timezone.utc))
    if message_id:
        msg["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
    refs = list(references)
    if refs:
        msg["References"] = " ".join(f"<{r}>" for r in refs)
    for name, value in extra_headers:
        msg[name] = value
    msg.set_content(body)
    for filename, content_type, data in attachments:
        maintype, _, subtype = content_type.partition("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()


def smtp_envelope(rcpt: str = SUPPORT, mail_from: str = "ada@example.com") -> Envelope:
    return Envelope(channel="email", source="smtp", mail_from=mail_from, rcpt_tos=(rcpt,),
                    received_at=datetime.now(timezone.utc))


async def count(sessions: async_sessionmaker[AsyncSession], model: type, *where) -> int:
    async with sessions() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where)) or 0


async def counts(sessions: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    return {
        "tickets": await count(sessions, Ticket),
        "messages": await count(sessions, Message),
        "events": await count(sessions, OutboxEvent),
        "quarantine": await count(sessions, QuarantinedItem),
    }


async def event_types(sessions: async_sessionmaker[AsyncSession], ticket_id: int | None = None) -> list[str]:
    async with sessions() as session:
        query = select(OutboxEvent.type).order_by(OutboxEvent.id)
        if ticket_id is not None:
            query = query.where(OutboxEvent.ticket_id == ticket_id)
        return list((await session.scalars(query)).all())


def ours(settings: Settings) -> Ours:
    """What screening knows about us, as the channels table holds it once the settings' support addresses are seeded."""
    return Ours.of(settings.secret_key, [a.address for a in settings.support_addresses], settings.from_address)
