"""The SMTP edge against a real aiosmtpd server on loopback, with a real client.

Each test starts :class:`channels.smtp.SmtpChannel` on port 0 over the real
ingest pipeline and a real database (SQLite and PostgreSQL), sends mail with
aiosmtplib and, once the intake processor behind the 250 has drained, looks
at what landed in the database.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import uuid
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from frontdesk.channels.smtp import SmtpChannel
from frontdesk.model.messages import Message
from frontdesk.model.tickets import Ticket
from frontdesk.storage.database import create_engine, session_factory
from frontdesk.ingest.context import IngestContext
from frontdesk.ingest.pipeline import ingest_emails


def make_email(*, to: str = "support@acme.test", subject: str = "Printer on fire", body: str = "Help!") -> tuple[bytes, str]:
    message_id = f"{uuid.uuid4().hex}@customer.test"
    message = EmailMessage()
    message["From"] = "Carol Customer <carol@customer.test>"
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = f"<{message_id}>"
    message["Date"] = "Mon, 23 Nov 2026 03:00:00 +0000"
    message.set_content(body)
    return message.as_bytes(), message_id


class RecordingIngest:
    """The real ``ingest_emails``, remembering the envelopes the edge built."""

    def __init__(self) -> None:
        self.envelopes = []

    async def __call__(self, ctx, items):
        self.envelopes.extend(item.envelope for item in items)
        return await ingest_emails(ctx, items)


@pytest.fixture
def ingest_ctx(settings, sessions, blobs) -> IngestContext:
    return IngestContext(settings=settings, sessions=sessions, blobs=blobs)


@pytest.fixture
def recorder() -> RecordingIngest:
    return RecordingIngest()


async def start_channel(ctx: IngestContext, recorder: RecordingIngest, **smtp_overrides) -> SmtpChannel:
    smtp_settings = replace(ctx.settings.smtp, host="127.0.0.1", port=0, **smtp_overrides)
    channel = SmtpChannel(ctx, smtp_settings, ingest=recorder)
    await channel.start()
    return channel


@pytest.fixture
async def channel(ingest_ctx, recorder):
    channel = await start_channel(ingest_ctx, recorder)
    yield channel
    await channel.stop(grace=5)


async def processed(channel: SmtpChannel) -> None:
    """Wait until the intake processor behind the 250s has processed everything accepted."""
    await asyncio.wait_for(channel.intake.drained(), 60)


async def stored_messages(sessions, message_id: str) -> list[Message]:
    async with sessions() as session:
        return list((await session.scalars(select(Message).where(Message.external_id == message_id))).all())


async def count_messages(sessions) -> int:
    async with sessions() as session:
        return await session.scalar(select(func.count()).select_from(Message))


async def test_mail_to_a_support_address_is_accepted_and_becomes_a_ticket(channel, sessions, blobs, recorder):
    raw, message_id = make_email()
    raw = raw.replace(b"\n", b"\r\n")  # as it travels over SMTP
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=channel.port) as client:
        refused, reply = await client.sendmail("carol@customer.test", ["support@acme.test"], raw)
    assert refused == {}
    assert reply.startswith("2.0.0 OK queued as ")

    await processed(channel)
    (message,) = await stored_messages(sessions, message_id)
    assert message.ticket_id is not None
    assert await blobs.get(message.raw_blob) == raw  # the raw bytes, kept as received
    async with sessions() as session:
        ticket = await session.get(Ticket, message.ticket_id)
    assert ticket.name == "Printer on fire"
    (envelope,) = recorder.envelopes
    assert (envelope.channel, envelope.source, envelope.mail_from) == ("email", "smtp", "carol@customer.test")
    assert envelope.rcpt_tos == ("support@acme.test",)
    assert envelope.peer.startswith("127.0.0.1:")


@pytest.mark.parametrize(
    "recipient",
    [
        "someone@elsewhere.test",
        "support@acme.test.evil.test",
        "support%evil.test@acme.test",  # percent hack
        '"support@acme.test"@evil.test',  # quoted local part
        "@acme.test:victim@evil.test",  # source route ending elsewhere
        "evil.test!victim@acme.test",  # bang path
    ],
)
async def test_foreign_recipients_get_550_and_nothing_is_stored(channel, sessions, recipient):
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=channel.port) as client:
        await client.ehlo()
        await client.mail("mallory@evil.test")
        reply = await client.execute_command(f"RCPT TO:<{recipient}>".encode())
        assert reply.code == 550, reply
        assert reply.message.startswith("5.1.1")
        data = await client.execute_command(b"DATA")
        assert data.code == 503  # no accepted recipient: no message at all
    assert await count_messages(sessions) == 0


async def test_source_route_to_a_support_address_is_delivered_locally(channel, sessions, recorder):
    # RFC 5321 appendix C: accept the syntax, ignore the route.  The final
    # mailbox is ours, so this is local delivery, not relaying.
    raw, message_id = make_email()
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=channel.port) as client:
        await client.ehlo()
        await client.mail("carol@customer.test")
        reply = await client.execute_command(b"RCPT TO:<@relay.evil.test:support@acme.test>")
        assert reply.code == 250
        await client.data(raw)
    await processed(channel)
    assert recorder.envelopes[0].rcpt_tos == ("support@acme.test",)
    assert len(await stored_messages(sessions, message_id)) == 1


async def test_mixed_recipients_keep_only_the_accepted_ones(channel, sessions, recorder):
    raw, message_id = make_email(to="support@acme.test, other@elsewhere.test")
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=channel.port) as client:
        refused, _ = await client.sendmail(
            "carol@customer.test", ["support@acme.test", "other@elsewhere.test", "BILLING@Acme.Test"], raw
        )
    assert set(refused) == {"other@elsewhere.test"}
    assert refused["other@elsewhere.test"].code == 550
    await processed(channel)
    (envelope,) = recorder.envelopes
    assert envelope.rcpt_tos == ("support@acme.test", "billing@acme.test")
    assert len(await stored_messages(sessions, message_id)) == 1


async def test_oversized_message_gets_552_and_nothing_is_stored(ingest_ctx, recorder, sessions):
    channel = await start_channel(ingest_ctx, recorder, max_message_size=4096)
    try:
        raw, message_id = make_email(body="x" * 10_000)
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=channel.port) as client:
            ehlo = await client.ehlo()
            assert "SIZE 4096" in ehlo.message
            # Announced size too large: refused at MAIL already.
            declared = await client.execute_command(b"MAIL FROM:<carol@customer.test> SIZE=10000")
            assert declared.code == 552
            # Undeclared: refused after DATA.
            await client.mail("carol@customer.test")
            await client.rcpt("support@acme.test")
            with pytest.raises(aiosmtplib.SMTPDataError) as refused:
                await client.data(raw)
            assert refused.value.code == 552
        assert recorder.envelopes == []
        assert await stored_messages(sessions, message_id) == []
    finally:
        await channel.stop(grace=5)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_storage_outage_answers_451_and_the_retry_stores_the_message_once(
    ingest_ctx, recorder, sessions, settings, tmp_path
):
    if settings.is_sqlite:
        unreachable = f"sqlite+aiosqlite:///{tmp_path / 'no-such-dir' / 'frontdesk.db'}"
    else:
        unreachable = f"postgresql+asyncpg://postgres@127.0.0.1:{_closed_port()}/frontdesk"
    down_engine = create_engine(unreachable)
    channel = await start_channel(ingest_ctx, recorder)
    raw, message_id = make_email()
    try:
        ingest_ctx.sessions = session_factory(down_engine)
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=channel.port) as client:
            with pytest.raises(aiosmtplib.SMTPDataError) as failed:
                await client.sendmail("carol@customer.test", ["support@acme.test"], raw)
        assert failed.value.code == 451
        assert failed.value.message.startswith("4.3.0")
        assert REGISTRY.get_sample_value("frontdesk_smtp_messages_total", {"result": "tempfail"}) >= 1

        # The database is back; the sending server retries the same message.
        ingest_ctx.sessions = sessions
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=channel.port) as client:
            await client.sendmail("carol@customer.test", ["support@acme.test"], raw)
            # A second retry (say the 250 got lost) must not store it twice.
            await client.sendmail("carol@customer.test", ["support@acme.test"], raw)
        await processed(channel)
        stored = await stored_messages(sessions, message_id)
        assert len(stored) == 1
        assert stored[0].ticket_id is not None
    finally:
        await channel.stop(grace=5)
        await down_engine.dispose()


def make_certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


async def test_starttls_with_a_generated_certificate(ingest_ctx, recorder, sessions, tmp_path):
    cert, key = make_certificate(tmp_path)
    channel = await start_channel(ingest_ctx, recorder, tls_cert=cert, tls_key=key, require_starttls=True)
    try:
        raw, message_id = make_email()
        # Without TLS the server refuses to take mail.
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=channel.port, start_tls=False) as plain:
            ehlo = await plain.ehlo()
            assert "STARTTLS" in ehlo.message
            reply = await plain.execute_command(b"MAIL FROM:<carol@customer.test>")
            assert reply.code == 530
        client_tls = ssl.create_default_context(cafile=str(cert))
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=channel.port, start_tls=True,
                                   tls_context=client_tls) as client:
            refused, _ = await client.sendmail("carol@customer.test", ["support@acme.test"], raw)
            assert refused == {}
        await processed(channel)
        assert len(await stored_messages(sessions, message_id)) == 1
    finally:
        await channel.stop(grace=5)


async def test_sixty_concurrent_sessions_are_all_accepted_and_stored_once(channel, sessions):
    messages = [make_email(subject=f"Concurrent {n}") for n in range(60)]

    async def send(raw: bytes) -> str:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=channel.port, timeout=120) as client:
            _, reply = await client.sendmail("carol@customer.test", ["support@acme.test"], raw)
            return reply

    replies = await asyncio.gather(*(send(raw) for raw, _ in messages))
    assert all(reply.startswith("2.0.0") for reply in replies)
    await processed(channel)
    async with sessions() as session:
        ids = (await session.scalars(select(Message.external_id))).all()
    assert sorted(ids) == sorted(message_id for _, message_id in messages)


async def test_stop_waits_for_open_sessions_then_refuses_connections(ingest_ctx, recorder):
    channel = await start_channel(ingest_ctx, recorder)
    port = channel.port
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
    await client.connect()
    await channel.stop(grace=0.2)
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await client.noop()
    with pytest.raises((aiosmtplib.SMTPConnectError, OSError)):
        await aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=2).connect()
