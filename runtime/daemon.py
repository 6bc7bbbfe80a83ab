"""``frontdesk run``: the ingestion daemon, wired from its parts and shut down gracefully.

Start-up order: configuration checks, storage (migrations where allowed,
defaults), one shared :class:`ingest.context.IngestContext`, the outbound
delivery loop and automation (the embedded runner, or the outbox relay that
feeds the Kafka worker), the mail parse pool, the email intake processor (which first processes
mail a previous run accepted but did not process), then the edges: SMTP,
IMAP pollers, HTTP with the webhook sub-app.  Every ingest commit wakes the
runners through ``IngestContext.on_commit``.  Shutdown runs the other way:
stop accepting SMTP and HTTP (in-flight work finishes within the grace
period), stop the pollers, the email intake processor, the parse pool, automation and
deliveries, dispose the engine.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import structlog
from aiohttp import web
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from frontdesk.api.app import AppExtras, Readiness, create_app
from frontdesk.api.replies import AFTER_COMMIT
from frontdesk.automation.embedded import EmbeddedAutomation
from frontdesk.automation.kafka_config import KafkaTopics
from frontdesk.automation.relay import OutboxRelay
from frontdesk.automation.sla_timers import SlaTimerLoop
from frontdesk.automation.services import AutomationServices
from frontdesk.background import PollingLoop
from frontdesk.channels.imap import IDLE, POLLING, STANDBY, SYNCING, ImapPollers
from frontdesk.channels.smtp import SmtpChannel
from frontdesk.channels.webhooks.app import create_webhook_app, openapi_paths
from frontdesk.channels.webhooks.config import WebhookConfig, parse_webhook_config
from frontdesk.defaults import ensure_defaults
from frontdesk.settings import EXAMPLE_SUPPORT_ADDRESS, ConfigError, Settings
from frontdesk.storage.blobs import BlobStore
from frontdesk.storage.database import create_engine, is_storage_outage, session_factory
from frontdesk.storage.migrate import current_revision, head_revision, upgrade
from frontdesk.ingest import parse_pool
from frontdesk.ingest.context import IngestContext
from frontdesk.ingest.email_channels import receiving_addresses
from frontdesk.ingest.email_intake import EmailIntake
from frontdesk.outbound.deliveries import DeliveryLoop
from frontdesk.runtime.event_loop import use_event_loop
from frontdesk.runtime.registries import deliverers

log = structlog.get_logger("frontdesk.daemon")

SHUTDOWN_GRACE = 30.0
# For crash tests only: "1" commits accepted mail to the intake but never
# processes it, so a test can kill -9 the daemon between 250 and processing.
HOLD_EMAIL_INTAKE = "FRONTDESK_TEST_HOLD_EMAIL_INTAKE"

# Exit codes of ``frontdesk run``.
EXIT_OK = 0
EXIT_CONFIG = 2  # the operator must change something (schema not migrated, port taken)
EXIT_STORAGE = 3  # the database or blob storage is unreachable; a supervisor may retry


class StartupError(RuntimeError):
    """The daemon cannot start; the message says what the operator should do."""


def redacted_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def describe_defaults(settings: Settings) -> dict[str, str]:
    """What each built-in default that was used amounts to, for the start-up log."""
    described = {}
    for name in settings.used_defaults:
        if name == "database":
            described[name] = f"SQLite database at {make_url(settings.database_url).database}"
        elif name == "support_addresses":
            described[name] = f"example support address {EXAMPLE_SUPPORT_ADDRESS}"
        else:
            described[name] = "built-in default"
    return described


async def prepare_database(settings: Settings, engine: AsyncEngine) -> None:
    """Migrate the embedded database (or when asked to); otherwise insist the schema is current."""
    if settings.is_sqlite or settings.auto_migrate:
        before = await current_revision(engine)
        await upgrade(engine)
        after = await current_revision(engine)
        if before != after:
            log.info("database.migrated", from_revision=before, to_revision=after)
        return
    current, head = await current_revision(engine), head_revision()
    if current != head:
        raise StartupError(
            f"the database schema is at {current or 'nothing'}, this version needs {head}: "
            "run `frontdesk migrate` (or set [database] auto_migrate = true)"
        )


@dataclass
class Daemon:
    """The running parts of one ``frontdesk run``; built by :meth:`start`, torn down by :meth:`stop`."""

    settings: Settings
    grace: float = SHUTDOWN_GRACE
    engine: AsyncEngine | None = None
    ctx: IngestContext | None = None
    smtp: SmtpChannel | None = None
    http: web.AppRunner | None = None
    http_port: int | None = None
    imap: ImapPollers | None = None  # when mailboxes are configured
    email_intake: EmailIntake | None = None
    webhooks: WebhookConfig = field(default_factory=WebhookConfig)
    # Background parts with an ``async stop()``, stopped in reverse order.
    _stoppables: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)

    async def start(self) -> None:
        settings = self.settings
        # Parsed first: a mistake in the channel tables should stop us before anything listens.
        self.webhooks = parse_webhook_config(settings)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        log.info("frontdesk.starting", data_dir=str(settings.data_dir.resolve()),
                 database=redacted_url(settings.database_url),
                 automation="embedded" if settings.embedded else "kafka")
        for name, what in describe_defaults(settings).items():
            log.info("defaults.used", setting=name, value=what)
        if not settings.api_token:
            log.warning("api.no_operator_token",
                        message="FRONTDESK_API_TOKEN is not set: the HTTP API accepts only per-user API tokens")

        self.engine = create_engine(settings.reveal_database_url())
        await prepare_database(settings, self.engine)
        sessions = session_factory(self.engine)
        await ensure_defaults(sessions, settings)
        blobs = BlobStore(settings.blob_dir)
        self.ctx = IngestContext(settings=settings, sessions=sessions, blobs=blobs)

        await self._start_automation()
        # The parse pool starts now, so its memory is there from the start;
        # stopped after the email intake, whose batches use it.
        await parse_pool.start(settings.parse_workers)
        self._stoppables.append(self._stop_parse_pool)
        # One durable email intake for SMTP and IMAP.  Started before the
        # edges and stopped after them (a _stoppable), so every row an edge
        # commits is processed or left pending for the next start.
        self.email_intake = EmailIntake(self.ctx, paused=os.environ.get(HOLD_EMAIL_INTAKE) == "1")
        await self.email_intake.start()
        self._stoppables.append(self.email_intake.stop)
        self.smtp = SmtpChannel(self.ctx, settings.smtp, intake=self.email_intake)
        try:
            await self.smtp.start()
        except OSError as error:
            raise StartupError(f"cannot listen for SMTP on {settings.smtp.host}:{settings.smtp.port}: "
                               f"{error.strerror or error}") from error
        await self._start_imap()
        await self._start_http()
        log.info("frontdesk.ready", smtp=f"{settings.smtp.host}:{self.smtp.port}",
                 http=f"{settings.http.host}:{self.http_port}",
                 support_addresses=sorted(await receiving_addresses(self.ctx.sessions)))

    async def _start_automation(self) -> None:
        """Outbound deliveries always; automation in-process, or the relay that feeds the Kafka worker."""
        assert self.ctx is not None
        ctx, settings = self.ctx, self.settings
        deliveries = DeliveryLoop(settings, ctx.sessions, ctx.blobs, deliverers=deliverers(self.webhooks, ctx.sessions))
        await self._run_loop(deliveries)
        if settings.embedded:
            automation = EmbeddedAutomation(
                AutomationServices(settings=settings, sessions=ctx.sessions, blobs=ctx.blobs, outbound=deliveries))
            await self._run_loop(automation)
            ctx.on_commit.append(automation.wake_async)
            # With Kafka the worker scans the SLA timers; embedded, this process does.
            await self._run_loop(SlaTimerLoop(ctx.sessions, on_fired=[automation.wake_async]))
            log.info("automation.embedded_started")
        else:
            assert settings.kafka_bootstrap is not None
            topics = KafkaTopics.from_environ(settings.kafka_bootstrap)
            relay = OutboxRelay(ctx.sessions, settings.kafka_bootstrap, topic=topics.events,
                                partitions=topics.partitions, replication_factor=topics.replication_factor)
            relay.start()
            self._stoppables.append(relay.stop)

            async def wake_relay() -> None:
                relay.wake()

            ctx.on_commit.append(wake_relay)
            log.info("automation.outbox_relay_started", topic=topics.events)
        ctx.on_commit.append(deliveries.wake_async)

    @staticmethod
    async def _stop_parse_pool() -> None:
        await asyncio.to_thread(parse_pool.shutdown)

    async def _run_loop(self, loop: PollingLoop) -> None:
        await loop.start()
        self._stoppables.append(loop.stop)

    async def _start_imap(self) -> None:
        if not self.settings.imap_mailboxes:
            return
        assert self.ctx is not None
        self.imap = ImapPollers(self.ctx, self.settings.imap_mailboxes, {"intake": self.email_intake},
                                lease_seconds=self.settings.imap_lease_seconds)
        await self.imap.start()
        imap = self.imap
        self._stoppables.append(lambda: imap.stop(self.grace))
        log.info("imap.started", mailboxes=[m.name for m in self.settings.imap_mailboxes])

    def _readiness(self) -> dict[str, Callable[[], Readiness]]:
        def smtp() -> Readiness:
            try:
                assert self.smtp is not None
                return Readiness(True, {"listening": f"{self.settings.smtp.host}:{self.smtp.port}",
                                        "sessions": self.smtp.active_sessions})
            except (AssertionError, RuntimeError):
                return Readiness(False, {"listening": None})

        checks: dict[str, Callable[[], Readiness]] = {"smtp": smtp}
        for mailbox in self.settings.imap_mailboxes:
            checks[f"imap:{mailbox.name}"] = functools.partial(self._mailbox_readiness, mailbox.name)
        return checks

    def _mailbox_readiness(self, name: str) -> Readiness:
        state = self.imap.states.get(name) if self.imap is not None else None
        if state is None:
            return Readiness(False, {"state": "not_started"})
        detail = {key: value for key, value in state.to_dict().items()
                  if key in ("state", "folder", "last_error", "last_error_at", "last_sync_at", "consecutive_failures")}
        # Standby (another daemon polls this mailbox) is as ready as polling it.
        return Readiness(state.state in (STANDBY, SYNCING, IDLE, POLLING), detail)

    async def _start_http(self) -> None:
        assert self.ctx is not None
        extras = AppExtras(
            subapps=[("/webhooks/", create_webhook_app(self.ctx, self.webhooks))],
            openapi=[openapi_paths()],
            readiness=self._readiness(),
        )
        app = create_app(self.settings, self.ctx.sessions, self.ctx.blobs, extra=extras)
        # Agent replies and ticket updates wake the same runners as ingest does.
        app[AFTER_COMMIT] = self.ctx.on_commit
        # aiohttp's own access log is off: request_context_middleware writes a structured one.
        self.http = web.AppRunner(app, access_log=None, shutdown_timeout=self.grace)
        await self.http.setup()
        site = web.TCPSite(self.http, self.settings.http.host, self.settings.http.port)
        try:
            await site.start()
        except OSError as error:
            raise StartupError(f"cannot listen for HTTP on {self.settings.http.host}:{self.settings.http.port}: "
                               f"{error.strerror or error}") from error
        self.http_port = self.http.addresses[0][1]
        log.info("http.listening", host=self.settings.http.host, port=self.http_port)

    async def stop(self) -> None:
        log.info("frontdesk.stopping", grace_seconds=self.grace)
        # Stop taking new work on both edges at once; each waits for its in-flight work.
        edges = []
        if self.smtp is not None:
            edges.append(self.smtp.stop(self.grace))
        if self.http is not None:
            edges.append(self.http.cleanup())
        for result in await asyncio.gather(*edges, return_exceptions=True):
            if isinstance(result, BaseException):
                log.error("shutdown.edge_failed", error=repr(result))
        self.smtp = self.http = None
        while self._stoppables:
            stop = self._stoppables.pop()
            try:
                await asyncio.wait_for(stop(), self.grace)
            except Exception as error:  # noqa: BLE001 - keep shutting the rest down
                log.error("shutdown.part_failed", part=getattr(stop, "__qualname__", repr(stop)), error=repr(error))
        if self.engine is not None:
            await self.engine.dispose()
            self.engine = None
        log.info("frontdesk.stopped")


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> int:
    """Run until ``stop`` is set (by SIGTERM / SIGINT when not given); return the exit code."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    daemon = Daemon(settings)
    async with AsyncExitStack() as cleanup:
        cleanup.push_async_callback(daemon.stop)
        try:
            await daemon.start()
        except (StartupError, ConfigError) as error:
            log.error("frontdesk.cannot_start", reason=str(error))
            return EXIT_CONFIG
        except Exception as error:
            if not is_storage_outage(error):
                raise
            log.error("frontdesk.cannot_start", reason=f"storage is unavailable: {type(error).__name__}: {error}")
            return EXIT_STORAGE
        await stop.wait()
        log.info("frontdesk.signal_received")
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(signum)
    return EXIT_OK


def run(settings: Settings) -> int:
    use_event_loop()
    return asyncio.run(serve(settings))
