"""The IMAP edge: one poller task per configured mailbox, feeding the durable email intake.

Each poller keeps a connection open, imports every message whose UID is
above its checkpoint, and once the raw mail is committed in an intake row
(:meth:`ingest.email_intake.EmailIntake.accept`; the pipeline processes it
behind) marks it ``\\Seen`` or moves it, then advances the checkpoint.
A poller given no intake (tests, tools) runs ``ingest`` directly instead.  A crash at
any point re-imports at most the message in hand, and ingest drops the
duplicate.  It waits for news with IDLE when the server offers it and polls
otherwise, and reconnects with capped, jittered exponential backoff.

With several daemons on one database, a poller first takes its mailbox's
lease (:mod:`channels.imap_leases`) and waits in ``standby`` while another
daemon holds it.  It renews the lease while it polls; when it cannot, it
stops (ends IDLE, finishes the message in hand) and goes back to standby.
Whoever takes over starts from the stored checkpoint.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Iterable

import structlog
from prometheus_client import Counter, Gauge

from frontdesk.background import Backoff, finish_or_cancel
from frontdesk.channels.imap_checkpoints import Checkpoint, load_checkpoint, save_checkpoint
from frontdesk.channels.imap_connection import ImapConnection, ImapError
from frontdesk.channels.imap_leases import MailboxLeaseHold, holder_id
from frontdesk.settings import ImapMailbox
from frontdesk.storage.database import is_storage_outage
from frontdesk.ingest.context import IngestContext
from frontdesk.ingest.email_intake import EmailIntake
from frontdesk.ingest.email_channels import own_addresses
from frontdesk.ingest.message import Envelope, IngestOutcome

log = structlog.get_logger(__name__)

IngestEmail = Callable[[IngestContext, bytes, Envelope], Awaitable[IngestOutcome]]

# What a poller is doing; exported as a one-hot gauge.  ``standby``:
# another daemon holds the mailbox's lease.
STARTING, STANDBY, CONNECTING, SYNCING, IDLE, POLLING, BACKOFF, STOPPED = (
    "starting", "standby", "connecting", "syncing", "idle", "polling", "backoff", "stopped",
)
STATES = (STARTING, STANDBY, CONNECTING, SYNCING, IDLE, POLLING, BACKOFF, STOPPED)

IMAP_STATE = Gauge("frontdesk_imap_mailbox_state", "1 for the state each mailbox poller is in.", ["mailbox", "state"])
IMAP_IMPORTED = Counter("frontdesk_imap_messages_imported_total", "Messages ingested from IMAP.", ["mailbox"])
IMAP_ERRORS = Counter(
    "frontdesk_imap_errors_total",
    "Poller failures, by kind: imap (network, TLS or server refusal), storage (ingest could not commit) "
    "or unexpected (a bug: logged with its traceback).",
    ["mailbox", "kind"],
)
IMAP_LAST_UID = Gauge("frontdesk_imap_last_uid", "Last UID imported and checkpointed.", ["mailbox"])
IMAP_LEASE_LOST = Counter("frontdesk_imap_lease_lost_total",
                          "Times this daemon stopped polling a mailbox because it could not renew its lease.",
                          ["mailbox"])


@dataclass
class MailboxState:
    """What one poller is doing, for health checks, metrics and logs."""

    mailbox: str
    folder: str
    state: str = STARTING
    last_error: str | None = None
    last_error_at: datetime | None = None
    last_uid: int = 0
    uidvalidity: int | None = None
    imported: int = 0
    consecutive_failures: int = 0
    idle_supported: bool | None = None
    last_sync_at: datetime | None = None
    lease_holder: str | None = None  # this daemon's id while it holds the mailbox's lease

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("last_error_at", "last_sync_at"):
            data[key] = data[key].isoformat() if data[key] else None
        return data


async def channel_key_for(mailbox: ImapMailbox, ctx: IngestContext) -> str | None:
    """The support address this mailbox serves: configured, or its user name if that is an email channel.

    Asked per message (the channels are cached), so a channel created for the
    user name at run time applies to the next message.
    """
    if mailbox.support_address:
        return mailbox.support_address.strip().lower()
    username = mailbox.username.strip().lower()
    if username in await own_addresses(ctx.sessions):
        return username
    return None


class _Stopping(Exception):
    pass


class ImapPoller:
    """Imports one mailbox folder until :meth:`stop`; read :attr:`state` for its health."""

    def __init__(
        self,
        ctx: IngestContext,
        mailbox: ImapMailbox,
        *,
        ingest: IngestEmail | None = None,
        intake: EmailIntake | None = None,
        backoff_initial: float = 1.0,
        backoff_max: float = 300.0,
        command_timeout: float = 30.0,
        lease: MailboxLeaseHold | None = None,
    ) -> None:
        if ingest is None:
            from frontdesk.ingest.pipeline import ingest_email

            ingest = ingest_email
        self._ctx = ctx
        self.mailbox = mailbox
        self._ingest = ingest
        self._intake = intake
        # Jittered so pollers that lost the same server never retry in step.
        self._backoff = Backoff(base=backoff_initial, cap=backoff_max)
        self._command_timeout = command_timeout
        self._stop = asyncio.Event()
        # Set by stop, or when the lease is lost: ends the polling in progress.
        self._halt = asyncio.Event()
        # None: this poller polls unconditionally (tests, tools).
        self._lease = lease
        self._connection: ImapConnection | None = None
        self._wake = asyncio.Event()
        # The configured support address; without one, the user name when it is an email channel.
        self.channel_key = mailbox.support_address.strip().lower() if mailbox.support_address else None
        self.state = MailboxState(mailbox=mailbox.name, folder=mailbox.folder)
        self._log = log.bind(mailbox=mailbox.name, folder=mailbox.folder)
        self._set_state(STARTING)

    # -- state ------------------------------------------------------------

    def _set_state(self, new: str) -> None:
        if new != self.state.state:
            self._log.info("imap.state", state=new, previous=self.state.state)
        self.state.state = new
        for name in STATES:
            IMAP_STATE.labels(self.mailbox.name, name).set(1 if name == new else 0)

    @staticmethod
    def _failure_kind(error: BaseException) -> str:
        # ImapConnection turns every network or protocol failure into
        # ImapError, so a bare OSError here came from storage.
        if isinstance(error, ImapError):
            return "imap"
        if is_storage_outage(error):
            return "storage"
        return "unexpected"

    def _record_failure(self, kind: str, error: BaseException) -> None:
        self.state.consecutive_failures += 1
        self.state.last_error = f"{kind}: {error}"
        self.state.last_error_at = datetime.now(timezone.utc)
        IMAP_ERRORS.labels(self.mailbox.name, kind).inc()

    # -- lifecycle --------------------------------------------------------

    async def stop(self) -> None:
        """Ask :meth:`run` to finish; the message in hand is completed first."""
        self._stop.set()
        self._halt.set()

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._halt.wait(), seconds)
        except asyncio.TimeoutError:
            return
        raise _Stopping

    async def run(self) -> None:
        if self.channel_key is None:
            try:
                known = await channel_key_for(self.mailbox, self._ctx) is not None
            except Exception:  # noqa: BLE001 - only decides a warning; every message asks again
                known = False
            if not known:
                self._log.warning("imap.no_support_address",
                                  hint="set support_address on the mailbox; ingest will guess from the headers")
        try:
            if self._lease is None:
                await self._poll()
            else:
                await self._poll_while_leased(self._lease)
        finally:
            self._set_state(STOPPED)

    async def _poll(self) -> None:
        """Poll until halted (stop, or the lease lost), retrying every failure after a pause."""
        while not self._halt.is_set():
            try:
                await self._connected_session()
            except _Stopping:
                return
            except Exception as error:  # noqa: BLE001 - every failure is retried after a pause
                kind = self._failure_kind(error)
                self._record_failure(kind, error)
                delay = self._backoff.delay(self.state.consecutive_failures)
                log_method = self._log.exception if kind == "unexpected" else self._log.warning
                log_method("imap.backoff", kind=kind, error=str(error), retry_in=round(delay, 2),
                           failures=self.state.consecutive_failures)
                self._set_state(BACKOFF)
                try:
                    await self._sleep(delay)
                except _Stopping:
                    return

    # -- the lease ----------------------------------------------------------

    async def _poll_while_leased(self, lease: MailboxLeaseHold) -> None:
        """Wait in standby until the lease is ours, poll while it stays ours, and again until stopped."""
        while not self._stop.is_set():
            if not await self._try_lease(lease.acquire, "acquire"):
                self._set_state(STANDBY)
                await self._wait_stop(lease.renew_every)
                continue
            if self._stop.is_set():  # stopped while we asked
                break
            self._halt.clear()
            self.state.lease_holder = lease.holder
            self._log.info("imap.lease_acquired", holder=lease.holder, lease_seconds=lease.seconds)
            keeper = asyncio.create_task(self._keep_lease(lease), name=f"imap-lease:{self.mailbox.name}")
            try:
                await self._poll()
            finally:
                keeper.cancel()
                await asyncio.gather(keeper, return_exceptions=True)
                self.state.lease_holder = None
        try:
            await lease.release()
        except Exception as error:  # noqa: BLE001 - it expires by itself
            self._log.warning("imap.lease_release_failed", error=str(error))

    async def _keep_lease(self, lease: MailboxLeaseHold) -> None:
        """Renew every third of the lease; halt the polling once it is lost or about to lapse."""
        while True:
            await asyncio.sleep(lease.renew_every)
            if await self._try_lease(lease.renew, "renew"):
                continue
            if lease.held and not lease.lapses_before_next_renewal():
                continue  # a failed renewal with time to spare: try again
            IMAP_LEASE_LOST.labels(self.mailbox.name).inc()
            self._log.warning("imap.lease_lost", holder=lease.holder)
            self._halt.set()
            return

    async def _try_lease(self, claim: Callable[[], Awaitable[bool]], what: str) -> bool:
        try:
            return await claim()
        except Exception as error:  # noqa: BLE001 - the database is away: we do not hold it
            self._log.warning("imap.lease_unavailable", action=what, error=str(error))
            return False

    async def _wait_stop(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    # -- one connection ---------------------------------------------------

    async def _connected_session(self) -> None:
        self._set_state(CONNECTING)
        connection = ImapConnection(self.mailbox, timeout=self._command_timeout)
        self._connection = connection
        stop_waiter = asyncio.ensure_future(self._halt.wait())
        try:
            await connection.open()
            if self.mailbox.move_to:
                await connection.ensure_folder(self.mailbox.move_to)
            uidvalidity = await connection.select(self.mailbox.folder)
            self.state.idle_supported = connection.has("IDLE")
            self._log.info("imap.connected", host=self.mailbox.host, security=self.mailbox.security,
                           uidvalidity=uidvalidity, idle=self.state.idle_supported)
            while not self._halt.is_set():
                self._set_state(SYNCING)
                await self._import_new(connection, uidvalidity)
                # A clean round trip: the next failure starts the backoff afresh.
                self.state.consecutive_failures = 0
                if self._halt.is_set():
                    break
                if self.mailbox.use_idle and self.state.idle_supported:
                    self._set_state(IDLE)
                    idle = asyncio.ensure_future(connection.idle(self.mailbox.poll_interval))
                    await asyncio.wait({idle, stop_waiter}, return_when=asyncio.FIRST_COMPLETED)
                    if not idle.done():
                        # Halting: cancelling ends IDLE politely (DONE), then leave.
                        idle.cancel()
                        await asyncio.gather(idle, return_exceptions=True)
                        break
                    idle.result()
                else:
                    self._set_state(POLLING)
                    await self._sleep(self.mailbox.poll_interval)
        finally:
            stop_waiter.cancel()
            self._connection = None
            await connection.close()

    async def _import_new(self, connection: ImapConnection, uidvalidity: int) -> None:
        checkpoint = await load_checkpoint(self._ctx.sessions, self.mailbox.name, self.mailbox.folder)
        if checkpoint.uidvalidity != uidvalidity:
            if checkpoint.uidvalidity is not None:
                # RFC 3501 section 2.3.1.1: the old UIDs mean nothing now.
                # Start over; ingest recognises what it already has.
                self._log.warning("imap.uidvalidity_changed", old=checkpoint.uidvalidity, new=uidvalidity,
                                  resync_from=0)
            checkpoint = Checkpoint(uidvalidity=uidvalidity, last_uid=0)
            await save_checkpoint(self._ctx.sessions, self.mailbox.name, self.mailbox.folder, checkpoint)
        self.state.uidvalidity = uidvalidity
        self.state.last_uid = checkpoint.last_uid

        for uid in await connection.uids_after(checkpoint.last_uid):
            if self._halt.is_set():
                return
            await self._import_one(connection, uidvalidity, uid)
        self.state.last_sync_at = datetime.now(timezone.utc)

    async def _import_one(self, connection: ImapConnection, uidvalidity: int, uid: int) -> None:
        started = time.perf_counter()
        raw = await connection.fetch(uid)
        if raw is not None:
            channel_key = self.channel_key or await channel_key_for(self.mailbox, self._ctx)
            envelope = Envelope(
                channel="email",
                source=f"imap:{self.mailbox.name}",
                rcpt_tos=(channel_key,) if channel_key else (),
                channel_key=channel_key,
                peer=f"{self.mailbox.host}:{self.mailbox.port}",
                received_at=datetime.now(timezone.utc),
            )
            # Raises on a storage outage: the message stays unflagged in
            # place and the checkpoint unchanged, so it is retried.
            if self._intake is not None:
                intake_id = await self._intake.accept(raw, envelope)
                outcome = IngestOutcome("queued", reason=f"intake row {intake_id}")
            else:
                outcome = await self._ingest(self._ctx, raw, envelope)
            # Only now, with the message committed, tell the server.
            if self.mailbox.move_to:
                await connection.move(uid, self.mailbox.move_to)
            else:
                await connection.mark_seen(uid)
            self.state.imported += 1
            IMAP_IMPORTED.labels(self.mailbox.name).inc()
            self._log.info("imap.imported", uid=uid, outcome=outcome.kind, ticket_id=outcome.ticket_id,
                           message_id=outcome.message_id, quarantine_id=outcome.quarantine_id, size=len(raw),
                           seconds=round(time.perf_counter() - started, 4))
        await save_checkpoint(self._ctx.sessions, self.mailbox.name, self.mailbox.folder,
                              Checkpoint(uidvalidity=uidvalidity, last_uid=uid))
        self.state.last_uid = uid
        IMAP_LAST_UID.labels(self.mailbox.name).set(uid)


@dataclass
class ImapPollers:
    """All configured mailboxes, each polled by its own task while this daemon holds its lease."""

    ctx: IngestContext
    mailboxes: Iterable[ImapMailbox]
    poller_options: dict[str, Any] = field(default_factory=dict)
    lease_seconds: float = 15.0
    holder: str = field(default_factory=holder_id)  # this daemon, in the lease table
    pollers: list[ImapPoller] = field(init=False, default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.pollers = [
            ImapPoller(self.ctx, mailbox, **self.poller_options,
                       lease=MailboxLeaseHold(self.ctx.sessions, mailbox.name, mailbox.folder, self.holder,
                                              seconds=self.lease_seconds))
            for mailbox in self.mailboxes
        ]

    @property
    def states(self) -> dict[str, MailboxState]:
        return {poller.mailbox.name: poller.state for poller in self.pollers}

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(poller.run(), name=f"imap:{poller.mailbox.name}") for poller in self.pollers
        ]

    async def stop(self, timeout: float = 30.0) -> None:
        for poller in self.pollers:
            await poller.stop()
        if not self._tasks:
            return
        await asyncio.gather(*(finish_or_cancel(task, timeout, name=task.get_name()) for task in self._tasks),
                             return_exceptions=True)
        self._tasks = []
