"""The channels table is the one list of our addresses: a channel made through the API receives mail at once.

A real API server and a real aiosmtpd server (``SmtpChannel`` on port 0)
share one database, as in ``frontdesk run``; mail is sent with a real SMTP
client, with no restart in between.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from email.message import EmailMessage
from typing import AsyncIterator

import aiosmtplib
import pytest
from sqlalchemy import delete, select

from admin_client import Api, support_pipeline
from frontdesk.channels.smtp import SmtpChannel
from frontdesk.ingest.context import IngestContext
from frontdesk.model import Channel, Message, Ticket


@pytest.fixture
async def smtp(settings, sessions, blobs) -> AsyncIterator[SmtpChannel]:  # type: ignore[no-untyped-def]
    ctx = IngestContext(settings=settings, sessions=sessions, blobs=blobs)
    channel = SmtpChannel(ctx, replace(settings.smtp, host="127.0.0.1", port=0))
    await channel.start()
    yield channel
    await channel.stop(grace=5)


def email_to(address: str) -> tuple[bytes, str]:
    message_id = f"{uuid.uuid4().hex}@customer.test"
    message = EmailMessage()
    message["From"] = "Carol Customer <carol@customer.test>"
    message["To"] = address
    message["Subject"] = f"Question for {address}"
    message["Message-ID"] = f"<{message_id}>"
    message.set_content("Hello, can you help?")
    return message.as_bytes().replace(b"\n", b"\r\n"), message_id


async def send(smtp: SmtpChannel, address: str) -> tuple[int, str]:
    """(reply code, message id): the code of DATA when RCPT was accepted, else RCPT's."""
    raw, message_id = email_to(address)
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp.port) as client:
        try:
            await client.sendmail("carol@customer.test", [address], raw)
        except aiosmtplib.SMTPRecipientsRefused as refused:
            return refused.recipients[0].code, message_id
    await asyncio.wait_for(smtp.intake.drained(), 60)  # processed behind the 250
    return 250, message_id


async def rcpt(smtp: SmtpChannel, address: str) -> int:
    """The reply code to ``RCPT TO`` alone; the transaction is reset, nothing is sent."""
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp.port) as client:
        await client.mail("carol@customer.test")
        try:
            code = (await client.rcpt(address)).code
        except aiosmtplib.SMTPRecipientRefused as refused:
            code = refused.code
        await client.rset()
    return code


async def ticket_for(sessions, message_id: str) -> Ticket | None:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        message = await session.scalar(select(Message).where(Message.external_id == message_id))
        return await session.get(Ticket, message.ticket_id) if message and message.ticket_id else None


async def test_an_email_channel_created_through_the_api_receives_mail_at_once(api: Api, smtp, sessions) -> None:
    # The seeded address works, and the channels are now cached in this process.
    code, message_id = await send(smtp, "support@acme.test")
    assert code == 250 and await ticket_for(sessions, message_id) is not None
    assert await rcpt(smtp, "sales@acme.test") == 550

    support = await support_pipeline(api)
    sales = await api.ok("POST", "/api/v1/channels",
                         {"kind": "email", "key": "Sales@Acme.test", "pipeline_id": support["id"]}, expect=201)
    assert sales["enabled"] is True

    code, message_id = await send(smtp, "sales@acme.test")
    assert code == 250
    ticket = await ticket_for(sessions, message_id)
    assert ticket is not None and ticket.name == "Question for sales@acme.test"
    assert ticket.pipeline_id == support["id"]
    assert await rcpt(smtp, "nobody@acme.test") == 550


async def test_a_disabled_or_deleted_channel_stops_receiving(api: Api, smtp, sessions) -> None:
    channels = (await api.ok("GET", f"/api/v1/pipelines/{(await support_pipeline(api))['id']}/channels"))["channels"]
    billing = next(c for c in channels if c["key"] == "billing@acme.test")
    assert (await send(smtp, "billing@acme.test"))[0] == 250

    disabled = await api.ok("PATCH", f"/api/v1/channels/{billing['id']}", {"enabled": False})
    assert disabled["enabled"] is False
    assert await rcpt(smtp, "billing@acme.test") == 550
    await api.ok("PATCH", f"/api/v1/channels/{billing['id']}", {"enabled": True})
    assert (await send(smtp, "billing@acme.test"))[0] == 250

    support = await support_pipeline(api)
    await api.ok("POST", "/api/v1/channels",
                 {"kind": "email", "key": "temp@acme.test", "pipeline_id": support["id"]}, expect=201)
    assert await rcpt(smtp, "temp@acme.test") == 250
    async with sessions.begin() as session:
        # The API has no delete for channels; a plain ORM delete (as config tooling would) stands in.
        await session.execute(delete(Channel).where(Channel.key == "temp@acme.test"))
    assert await rcpt(smtp, "temp@acme.test") == 550
