"""Automation test harness: a real aiosmtpd sink as the smarthost, tickets, services, runners."""

from __future__ import annotations

import asyncio
import email
import email.policy
from dataclasses import dataclass, field, replace
from typing import AsyncIterator, Awaitable, Callable

import pytest
from aiosmtpd.smtp import SMTP

from frontdesk.automation.embedded import EmbeddedAutomation
from frontdesk.automation.services import AutomationServices
from frontdesk.settings import Settings, SmarthostSettings
from frontdesk.outbound.deliveries import DeliveryLoop


@dataclass
class Sink:
    """What the smarthost received; ``data_reply`` makes it refuse DATA with that SMTP reply."""

    received: list[email.message.EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    data_reply: str | None = None
    on_message: Callable[[email.message.EmailMessage], Awaitable[None]] | None = None

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        if self.data_reply:
            return self.data_reply
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.received.append(message)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        if self.on_message is not None:
            await self.on_message(message)
        return "250 2.0.0 queued as test"

    def to(self, address: str) -> list[email.message.EmailMessage]:
        return [m for m, (_, rcpts) in zip(self.received, self.envelopes) if address in rcpts]


@pytest.fixture
async def sink() -> AsyncIterator[tuple[Sink, int]]:
    handler = Sink()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, hostname="sink.test"), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield handler, port
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
def mail_settings(settings: Settings, sink: tuple[Sink, int]) -> Settings:
    """The shared settings, sending through the sink (plain SMTP on loopback)."""
    return replace(settings, smarthost=SmarthostSettings(host="127.0.0.1", port=sink[1], tls="none"))


@pytest.fixture
def deliveries(mail_settings: Settings, sessions, blobs) -> DeliveryLoop:  # type: ignore[no-untyped-def]
    return DeliveryLoop(mail_settings, sessions, blobs, first_delay=60.0)


@pytest.fixture
def services(mail_settings: Settings, sessions, blobs, deliveries: DeliveryLoop) -> AutomationServices:  # type: ignore[no-untyped-def]
    return AutomationServices(settings=mail_settings, sessions=sessions, blobs=blobs, outbound=deliveries)


@pytest.fixture
def runner(services: AutomationServices) -> EmbeddedAutomation:
    return EmbeddedAutomation(services, first_delay=0.0, max_delay=0.0, max_attempts=3)
