"""Real mail that breaks the rules must not bounce: long DATA lines and internationalized addresses.

Each test runs :class:`channels.smtp.SmtpChannel` on loopback over the real
ingest pipeline and database (SQLite and PostgreSQL) and talks to it with the
standard library's ``smtplib``, as another mail server would.
"""

from __future__ import annotations

import asyncio
import base64
import re
import smtplib
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from frontdesk.channels.smtp import SmtpChannel
from frontdesk.ingest.context import IngestContext
from frontdesk.model.contacts import Contact
from frontdesk.model.intake import QuarantinedItem
from frontdesk.model.messages import Message
from frontdesk.model.tickets import Ticket
from frontdesk.settings import SupportAddress
from frontdesk.storage.blobs import sha256_hex

UNICODE_SUPPORT = "soporte-ñandú@acme.test"


@pytest.fixture
def settings(settings):
    """The test installation, plus a support address with a non-ASCII local part."""
    return replace(settings, support_addresses=settings.support_addresses + (SupportAddress(UNICODE_SUPPORT),))


@pytest.fixture
async def channel(settings, sessions, blobs):
    ctx = IngestContext(settings=settings, sessions=sessions, blobs=blobs)
    channel = SmtpChannel(ctx, replace(settings.smtp, host="127.0.0.1", port=0, max_message_size=1_000_000))
    await channel.start()
    yield channel
    await channel.stop(grace=5)


def wire(raw: bytes) -> bytes:
    """``raw`` as it travels in DATA: CRLF line ends, ending in CRLF."""
    crlf = re.sub(rb"\r?\n", b"\r\n", raw)
    return crlf if crlf.endswith(b"\r\n") else crlf + b"\r\n"


def message_with_body(body: bytes, *, headers: bytes = b"", sender: bytes = b"carol@customer.test") -> tuple[bytes, str]:
    message_id = f"{uuid.uuid4().hex}@customer.test"
    head = (b"From: Carol <" + sender + b">\r\nTo: support@acme.test\r\nSubject: Odd mail\r\n"
            b"Date: Mon, 23 Nov 2026 03:00:00 +0000\r\nMessage-ID: <" + message_id.encode() + b">\r\n" + headers)
    return head + b"\r\n" + body, message_id


async def send(port: int, mail_from: str, rcpt_tos: list[str], raw: bytes, **options) -> dict:
    """Send with smtplib in a thread (the server runs on this loop); the refused recipients."""

    def run() -> dict:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
            return client.sendmail(mail_from, rcpt_tos, raw, **options)

    return await asyncio.to_thread(run)


async def processed(channel) -> None:
    """Wait until the intake processor behind the 250s has processed everything accepted."""
    await asyncio.wait_for(channel.intake.drained(), 120)


async def stored(sessions, blobs, message_id: str) -> tuple[Message, bytes]:
    async with sessions() as session:
        (message,) = (await session.scalars(select(Message).where(Message.external_id == message_id))).all()
    return message, await blobs.get(message.raw_blob)


async def test_a_5000_byte_line_is_accepted_and_stored_byte_for_byte(channel, sessions, blobs):
    raw, message_id = message_with_body(b"<p>" + b"long html " * 500 + b"</p>\r\nsecond line\r\n",
                                        headers=b"Content-Type: text/html; charset=utf-8\r\n")
    assert max(len(line) for line in raw.split(b"\r\n")) > 5000
    assert await send(channel.port, "carol@customer.test", ["support@acme.test"], raw) == {}
    await processed(channel)
    message, kept = await stored(sessions, blobs, message_id)
    assert kept == raw
    assert message.ticket_id is not None


async def test_a_100_kb_single_line_base64_body_is_accepted_and_stored_byte_for_byte(channel, sessions, blobs):
    payload = bytes(range(256)) * 300
    body = base64.b64encode(payload) + b"\r\n"  # one line, ~100 kB: no 76-column wrapping
    assert len(body) > 100_000
    raw, message_id = message_with_body(
        b"--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n--b\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=data.bin\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + body + b"--b--\r\n",
        headers=b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n",
    )
    assert await send(channel.port, "carol@customer.test", ["support@acme.test"], raw) == {}
    await processed(channel)
    message, kept = await stored(sessions, blobs, message_id)
    assert kept == raw


@pytest.mark.parametrize("shape", ["many lines", "one line"])
async def test_a_message_over_the_size_limit_still_gets_552(channel, sessions, shape):
    body = b"x" * 1_200_000 + b"\r\n" if shape == "one line" else (b"y" * 900 + b"\r\n") * 1400
    raw, message_id = message_with_body(body)

    def run() -> tuple[int, bytes]:
        # Without SIZE= (sendmail would declare it and be refused at MAIL).
        with smtplib.SMTP("127.0.0.1", channel.port, timeout=60) as client:
            client.ehlo()
            assert client.mail("carol@customer.test")[0] == 250
            assert client.rcpt("support@acme.test")[0] == 250
            return client.data(raw)

    code, reply = await asyncio.to_thread(run)
    assert code == 552, reply
    async with sessions() as session:
        assert (await session.scalars(select(Message).where(Message.external_id == message_id))).all() == []


async def test_command_lines_keep_their_limit(channel):
    def run() -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", channel.port, timeout=30) as client:
            client.ehlo()
            return client.docmd("MAIL FROM:<" + "a" * 5000 + "@customer.test>")

    code, _ = await asyncio.to_thread(run)
    assert code == 500


async def test_smtputf8_sender_and_recipient_make_a_ticket_for_the_unicode_address(channel, sessions, blobs):
    sender = "josé.müller@bücher.example"
    raw, message_id = message_with_body(
        "Grüße aus Köln\r\n".encode(), sender=sender.encode(),
        headers=b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n",
    )
    raw = raw.replace(b"To: support@acme.test", f"To: {UNICODE_SUPPORT}".encode())

    def run() -> tuple[dict, str]:
        with smtplib.SMTP("127.0.0.1", channel.port, timeout=30) as client:
            client.ehlo()
            assert client.has_extn("smtputf8")
            return client.sendmail(sender, [UNICODE_SUPPORT], raw, mail_options=["SMTPUTF8"]), ""

    refused, _ = await asyncio.to_thread(run)
    assert refused == {}
    await processed(channel)
    message, kept = await stored(sessions, blobs, message_id)
    assert kept == raw
    async with sessions() as session:
        ticket = await session.get(Ticket, message.ticket_id)
        contact = await session.get(Contact, ticket.contact_id)
    assert contact.email == sender


async def test_corpus_mails_with_long_lines_are_accepted_and_stored_byte_for_byte(channel, sessions, blobs, corpus):
    files = [path for path in sorted((corpus / "email").rglob("*"))
             if path.is_file() and path.name != "LICENSE.upstream"
             and any(len(line) > 998 for line in wire(path.read_bytes()).split(b"\r\n"))]
    assert len(files) > 100
    failures = []

    def run() -> list[tuple[Path, bytes]]:
        sent = []
        with smtplib.SMTP("127.0.0.1", channel.port, timeout=120) as client:
            for path in files:
                raw = wire(path.read_bytes())
                try:
                    client.sendmail("sender@customer.test", ["support@acme.test"], raw)
                except smtplib.SMTPException as error:
                    failures.append((path, error))
                    client.rset()
                else:
                    sent.append((path, raw))
        return sent

    sent = await asyncio.to_thread(run)
    assert failures == []
    await processed(channel)
    async with sessions() as session:
        kept = set((await session.scalars(select(Message.raw_blob))).all())
        kept |= set((await session.scalars(select(QuarantinedItem.blob))).all())
    # Every message is on a message or in the quarantine, as received.
    assert [path for path, raw in sent if sha256_hex(raw) not in kept] == []
    for path, raw in sent:
        assert await blobs.get(sha256_hex(raw)) == raw, path


async def test_a_sender_address_that_is_not_utf8_is_stored_not_retried_forever(channel, sessions, blobs):
    # Old MTAs pass Latin-1 envelope addresses through; aiosmtpd keeps the
    # undecodable bytes as lone surrogates, which no database column accepts.
    raw, message_id = message_with_body(b"Hola\r\n")

    def run() -> list[bytes]:
        with smtplib.SMTP("127.0.0.1", channel.port, timeout=30) as client:
            client.ehlo()
            answers = []
            for command in (b"MAIL FROM:<caf\xe9@customer.test>", b"RCPT TO:<support@acme.test>"):
                client.send(command + b"\r\n")
                answers.append(client.getreply())
            answers.append(client.data(raw))
            return answers

    mail, rcpt, data = await asyncio.to_thread(run)
    assert (mail[0], rcpt[0], data[0]) == (250, 250, 250), (mail, rcpt, data)
    await processed(channel)
    message, kept = await stored(sessions, blobs, message_id)
    assert kept == raw
