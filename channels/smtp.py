"""The SMTP edge: accept mail for the support addresses and hand it to the durable email intake.

The edge only checks and hands over.  ``RCPT`` is a cheap in-memory check
against the cached email channels (so we are never an open relay); ``DATA`` passes
the raw bytes and the envelope to :meth:`ingest.email_intake.EmailIntake.accept`
and answers ``250`` once they are committed in an intake row (group commit
across concurrent sessions); the pipeline processes the row behind the
answer, and a row a crash left pending is processed on restart.  ``451``
when that commit fails (storage down, or anything unexpected) so the sending
server keeps the message and retries.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from datetime import datetime, timezone
from typing import Any

import structlog
from aiosmtpd.smtp import SMTP, Envelope as SmtpEnvelope, Session as SmtpSession
from prometheus_client import Counter, Gauge, Histogram

from frontdesk.settings import SmtpSettings
from frontdesk.storage.database import is_storage_outage
from frontdesk.ingest.context import IngestContext
from frontdesk.ingest.email_channels import receiving_addresses
from frontdesk.ingest.email_intake import EmailIntake, IngestEmail
from frontdesk.ingest.message import Envelope

log = structlog.get_logger(__name__)

SMTP_MESSAGES = Counter(
    "frontdesk_smtp_messages_total",
    "Messages that reached the end of DATA, by answer: accepted (250), "
    "tempfail (451, sender retries) or rejected (552, too large).",
    ["result"],
)
SMTP_RECIPIENTS_REJECTED = Counter(
    "frontdesk_smtp_recipients_rejected_total",
    "RCPT TO addresses refused with 550 because they are not support addresses.",
)
SMTP_SESSIONS = Gauge("frontdesk_smtp_sessions_active", "Open SMTP connections.")
SMTP_HANDLING_SECONDS = Histogram(
    "frontdesk_smtp_handling_seconds",
    "Time from the end of DATA to our answer (the intake row's commit included).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

# RFC 3463 enhanced status codes: 5.1.1 bad destination mailbox,
# 4.3.0 other or undefined mail system status (retry), 2.0.0 success.
REPLY_UNKNOWN_RECIPIENT = "550 5.1.1 Recipient address rejected: not a support address here"
REPLY_RECIPIENT_OK = "250 2.1.5 Recipient OK"
REPLY_RETRY_LATER = "451 4.3.0 Cannot store the message right now, try again later"
REPLY_TOO_LARGE = "552 5.3.4 Error: Too much mail data"
# With max_message_size = 0 (no limit) a DATA line may still not exceed this.
MAX_UNLIMITED_DATA_LINE = 64 * 1024 * 1024


def _peer_text(peer: Any) -> str | None:
    if isinstance(peer, (tuple, list)) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer) if peer else None


class SupportMailHandler:
    """aiosmtpd handler hooks: recipient check at RCPT, durable intake at DATA."""

    def __init__(self, ctx: IngestContext, intake: EmailIntake) -> None:
        self._ctx = ctx
        self._intake = intake
        self.in_flight: set[asyncio.Task[int]] = set()

    async def accepts(self, address: str) -> bool:
        # A cheap, exact check against the enabled email channels, held in
        # memory by ingest.email_channels (a write in this process applies at
        # once, one by another process within its TTL; a stale copy costs one
        # query).  It only keeps us from being an open relay: the pipeline's
        # resolve_email_channel stage is the authoritative check, and mail
        # that gets past a stale copy waits in the quarantine for replay.
        # Compared case-insensitively.  Percent hacks ("x%other@ours"),
        # quoted local parts and bang paths never equal a channel's address,
        # so they are refused like any foreign recipient.  Source routes
        # ("<@relay:support@ours>") arrive here already reduced to the final
        # mailbox by aiosmtpd; RFC 5321 appendix C says to ignore the route,
        # and delivering to our own mailbox is not relaying.
        return address.strip().lower() in await receiving_addresses(self._ctx.sessions)

    async def handle_RCPT(
        self, server: SMTP, session: SmtpSession, envelope: SmtpEnvelope, address: str, rcpt_options: list[str]
    ) -> str:
        try:
            accepted = await self.accepts(address)
        except Exception as error:
            if not is_storage_outage(error):
                raise
            # The channels were never read and the database is down: let the
            # recipient through; DATA answers 451 while storage stays down, and
            # ingest quarantines mail no channel claims.  Never a relay either way.
            log.warning("smtp.rcpt_unchecked", reason="storage_unavailable", peer=_peer_text(session.peer),
                        rcpt=address, error=str(error))
            accepted = True
        if not accepted:
            SMTP_RECIPIENTS_REJECTED.inc()
            log.info("smtp.rcpt_rejected", peer=_peer_text(session.peer), rcpt=address)
            return REPLY_UNKNOWN_RECIPIENT
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return REPLY_RECIPIENT_OK

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: SmtpEnvelope) -> str:
        started = time.perf_counter()
        raw = envelope.original_content or b""
        rcpt_tos = tuple(address.lower() for address in envelope.rcpt_tos)
        mail_from = envelope.mail_from or ""
        inbound = Envelope(
            channel="email",
            source="smtp",
            mail_from="" if mail_from == "<>" else mail_from,  # null reverse path: a bounce
            rcpt_tos=rcpt_tos,
            channel_key=rcpt_tos[0] if rcpt_tos else None,
            peer=_peer_text(session.peer),
            received_at=datetime.now(timezone.utc),
        )
        fields = {"peer": inbound.peer, "mail_from": inbound.mail_from, "rcpt_tos": list(rcpt_tos), "size": len(raw)}
        # Shielded: if the connection drops or the server stops while the
        # intake row commits, the commit still completes (the sender, lacking
        # our 250, retries and ingest's duplicate check absorbs the second copy).
        task = asyncio.ensure_future(self._intake.accept(raw, inbound))
        self.in_flight.add(task)
        task.add_done_callback(self.in_flight.discard)
        try:
            intake_id = await asyncio.shield(task)
        except Exception as error:  # noqa: BLE001 - every failure becomes a retryable answer
            elapsed = time.perf_counter() - started
            SMTP_MESSAGES.labels("tempfail").inc()
            SMTP_HANDLING_SECONDS.observe(elapsed)
            if is_storage_outage(error):
                log.warning("smtp.tempfail", reason="storage_unavailable", error=str(error),
                            seconds=round(elapsed, 4), **fields)
            else:
                log.exception("smtp.tempfail", reason="unexpected_error", seconds=round(elapsed, 4), **fields)
            return REPLY_RETRY_LATER
        elapsed = time.perf_counter() - started
        SMTP_MESSAGES.labels("accepted").inc()
        SMTP_HANDLING_SECONDS.observe(elapsed)
        log.info("smtp.accepted", intake_id=intake_id, seconds=round(elapsed, 4), **fields)
        return f"250 2.0.0 OK queued as {intake_id}"


class _TrackedSMTP(SMTP):
    """aiosmtpd's protocol, reporting its connections to the channel for a graceful stop.

    It also lifts aiosmtpd's line-length limit inside DATA.  aiosmtpd reads
    with one ``asyncio.StreamReader`` whose ``limit`` is ``line_length_limit``
    (1001, the RFC 5321 4.5.3.1.6 line limit) and answers a longer DATA line
    with a permanent ``500 Line too long``: the sending server bounces a real
    customer's message.  Senders do break that limit (HTML on one line,
    unwrapped base64), and Postfix and Exim accept such mail, so we do too:
    only the message size limit bounds a DATA line.  Command lines keep the
    1001-byte read limit (and aiosmtpd's 512-byte command limit), so nobody
    makes us buffer megabytes of a command.  The reader's limit has no public
    setter; ``smtp_DATA`` raises its ``_limit`` for the duration of DATA and
    puts it back afterwards, leaving aiosmtpd's DATA state machine untouched.
    """

    def __init__(self, handler: SupportMailHandler, sessions: set[_TrackedSMTP], **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._sessions = sessions
        # The reader was built with the class's 1001; from here on
        # ``line_length_limit`` is only read by smtp_DATA's own check of a
        # complete line, which must agree with the raised reader limit.
        self._command_line_limit = SMTP.line_length_limit
        self.line_length_limit = self._data_line_limit()

    def _data_line_limit(self) -> int:
        # A DATA line longer than the whole message limit makes the message
        # too large anyway.  ("+ 3": the CRLF and a transparency dot.)
        return max(self.data_size_limit or MAX_UNLIMITED_DATA_LINE, SMTP.line_length_limit) + 3

    async def smtp_DATA(self, arg: str) -> None:
        self._reader._limit = self._data_line_limit()  # type: ignore[attr-defined]
        try:
            await super().smtp_DATA(arg)
        finally:
            self._reader._limit = self._command_line_limit  # type: ignore[attr-defined]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Called a second time after STARTTLS; only the first one counts.
        if self not in self._sessions:
            self._sessions.add(self)
            SMTP_SESSIONS.inc()
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self in self._sessions:
            self._sessions.discard(self)
            SMTP_SESSIONS.dec()
        super().connection_lost(error)

    async def push(self, status: str) -> None:
        if status.startswith("500 Line too long"):
            # With the DATA line limit above the message size limit, only a
            # line longer than the whole allowed message gets here: that
            # message is too large, and 552 says so (RFC 5321 4.5.3.1.10).
            status = REPLY_TOO_LARGE
        # aiosmtpd answers an oversized message itself, without a hook.
        if status.startswith("552"):
            SMTP_MESSAGES.labels("rejected").inc()
            log.info("smtp.rejected", reason="too_large", peer=_peer_text(self.session.peer if self.session else None))
        await super().push(status)


def server_tls_context(settings: SmtpSettings) -> ssl.SSLContext | None:
    if not settings.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(settings.tls_cert), str(settings.tls_key))
    return context


class SmtpChannel:
    """The SMTP listener: ``await start()``, read ``port``, ``await stop()``."""

    def __init__(
        self,
        ctx: IngestContext,
        settings: SmtpSettings,
        *,
        intake: EmailIntake | None = None,
        ingest: IngestEmail | None = None,
        session_timeout: float = 300.0,
    ) -> None:
        # The daemon shares one intake between SMTP and IMAP; alone (tests,
        # tools) the channel runs its own, over ``ingest``.
        self._own_intake = intake is None
        self.intake = intake if intake is not None else EmailIntake(ctx, ingest=ingest)
        self._settings = settings
        self._handler = SupportMailHandler(ctx, self.intake)
        self._tls = server_tls_context(settings)
        if settings.require_starttls and self._tls is None:
            raise ValueError("smtp.require_starttls needs smtp.tls_cert and smtp.tls_key")
        self._session_timeout = session_timeout
        # aiosmtpd would look the FQDN up for every connection.
        self._hostname = settings.hostname or socket.getfqdn()
        self._sessions: set[_TrackedSMTP] = set()
        self._server: asyncio.base_events.Server | None = None

    def _new_session(self) -> _TrackedSMTP:
        return _TrackedSMTP(
            self._handler,
            self._sessions,
            data_size_limit=self._settings.max_message_size,  # also announced as SIZE in EHLO
            # RFC 6531: internationalized addresses.  Arguments are then read as
            # UTF-8; DATA stays bytes (decode_data=False), stored as received.
            enable_SMTPUTF8=True,
            hostname=self._hostname,
            tls_context=self._tls,
            require_starttls=self._settings.require_starttls,
            timeout=self._session_timeout,
        )

    @property
    def port(self) -> int:
        """The bound port (useful when the settings asked for port 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the SMTP channel is not started")
        return self._server.sockets[0].getsockname()[1]

    @property
    def active_sessions(self) -> int:
        return len(self._sessions)

    async def start(self) -> None:
        if self._own_intake:
            await self.intake.start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._new_session, host=self._settings.host, port=self._settings.port, reuse_address=True
        )
        log.info("smtp.listening", host=self._settings.host, port=self.port,
                 starttls=self._tls is not None, require_starttls=self._settings.require_starttls,
                 max_message_size=self._settings.max_message_size)

    async def stop(self, grace: float = 30.0) -> None:
        """Stop accepting, give open sessions ``grace`` seconds, then close them.

        A message whose intake commit is already running is always allowed
        to finish, even past the grace period.
        """
        if self._server is None:
            return
        self._server.close()
        deadline = time.monotonic() + grace
        while self._sessions and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for session in list(self._sessions):
            if session.transport is not None:
                session.transport.close()
        if self._handler.in_flight:
            await asyncio.wait(set(self._handler.in_flight))
        await self._server.wait_closed()
        self._server = None
        if self._own_intake:
            await self.intake.stop(grace)
        log.info("smtp.stopped", closed_sessions=len(self._sessions))
