"""One IMAP connection for the poller: connect (TLS / STARTTLS / plain), log in,
select, list new UIDs, fetch, flag or move, and wait in IDLE.

A thin layer over aioimaplib that turns its loose responses into values and
its failures into :class:`ImapError`, and notices a dropped connection at
once instead of waiting for a command timeout.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from typing import Awaitable, TypeVar

from aioimaplib import aioimaplib

from frontdesk.settings import ImapMailbox

T = TypeVar("T")

_UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")
_FETCH_UID = re.compile(rb"UID (\d+)")


class ImapError(Exception):
    """The server refused something, the connection dropped, or a command timed out."""


def quote_mailbox(name: str) -> str:
    """An IMAP quoted string (RFC 3501 section 4.3) for a folder name."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def client_tls_context(mailbox: ImapMailbox) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if not mailbox.verify_tls:
        # Only for servers with self-signed certificates the operator chose
        # to trust; the setting defaults to verifying.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class ImapConnection:
    """A logged-in IMAP session on one mailbox; use as ``async with``."""

    def __init__(self, mailbox: ImapMailbox, *, timeout: float = 30.0) -> None:
        self.mailbox = mailbox
        self.timeout = timeout
        self._lost = asyncio.Event()
        self._client: aioimaplib.IMAP4 | None = None

    # -- connection -------------------------------------------------------

    async def __aenter__(self) -> ImapConnection:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _connection_lost(self, error: Exception | None) -> None:
        self._lost.set()
        if self._client is not None:
            # Wake a pending IDLE wait; commands are woken by _call.
            self._client.protocol.idle_queue.put_nowait(aioimaplib.STOP_WAIT_SERVER_PUSH)

    @property
    def client(self) -> aioimaplib.IMAP4:
        if self._client is None:
            raise ImapError("not connected")
        return self._client

    async def _call(self, awaitable: Awaitable[T], what: str, timeout: float | None = None) -> T:
        """Run one command, failing fast when the connection drops meanwhile."""
        timeout = timeout or self.timeout
        if self._lost.is_set():
            if asyncio.iscoroutine(awaitable):
                awaitable.close()  # never started; avoids "never awaited" noise
            raise ImapError(f"connection lost before {what}")
        command = asyncio.ensure_future(awaitable)
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            done, _ = await asyncio.wait({command, lost}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
        if command in done:
            try:
                return command.result()
            except (aioimaplib.AioImapException, asyncio.TimeoutError, OSError) as error:
                raise ImapError(f"{what}: {error!r}") from error
        command.cancel()
        if lost in done:
            raise ImapError(f"connection lost during {what}")
        raise ImapError(f"{what}: no answer within {timeout:g}s")

    async def open(self) -> None:
        mailbox = self.mailbox
        if mailbox.security not in ("ssl", "starttls", "none"):
            raise ImapError(f"unknown security {mailbox.security!r} (ssl, starttls or none)")
        tls = client_tls_context(mailbox) if mailbox.security != "none" else None
        self._client = aioimaplib.IMAP4(
            host=mailbox.host,
            port=mailbox.port,
            timeout=self.timeout,
            conn_lost_cb=self._connection_lost,
            ssl_context=tls if mailbox.security == "ssl" else None,
        )
        await self._call(self.client.wait_hello_from_server(), "greeting")
        if mailbox.security == "starttls":
            await self._starttls(tls)
        response = await self._call(
            self.client.login(mailbox.username, mailbox.password.reveal()), "LOGIN"
        )
        if response.result != "OK":
            raise ImapError(f"LOGIN refused for {mailbox.username}")  # never echo the password
        # Some servers only list MOVE, IDLE, UIDPLUS once logged in.
        await self._call(self.client.protocol.capability(), "CAPABILITY")

    async def _starttls(self, tls: ssl.SSLContext | None) -> None:
        # aioimaplib has no STARTTLS; RFC 3501 section 6.2.1: send it, then
        # the TLS handshake on the same socket, then ask CAPABILITY anew.
        # Never fall back to plain text when the server does not offer it.
        protocol = self.client.protocol
        if "STARTTLS" not in protocol.capabilities:
            raise ImapError("server does not offer STARTTLS")
        command = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
        response = await self._call(protocol.execute(command), "STARTTLS")
        if response.result != "OK":
            raise ImapError(f"STARTTLS refused: {response.lines!r}")
        loop = asyncio.get_running_loop()
        transport = await self._call(
            loop.start_tls(protocol.transport, protocol, tls, server_hostname=self.mailbox.host), "TLS handshake"
        )
        protocol.transport = transport
        await self._call(protocol.capability(), "CAPABILITY")

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        if not self._lost.is_set():
            try:
                await asyncio.wait_for(client.logout(), 5)
            except Exception:  # noqa: BLE001 - closing anyway
                pass
        transport = client.protocol.transport
        if transport is not None:
            transport.close()

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def has(self, capability: str) -> bool:
        return self.client.has_capability(capability)

    # -- mailbox ----------------------------------------------------------

    async def select(self, folder: str) -> int:
        """Select ``folder`` read-write; return its UIDVALIDITY."""
        response = await self._call(self.client.select(quote_mailbox(folder)), "SELECT")
        if response.result != "OK":
            raise ImapError(f"cannot select {folder!r}: {response.lines[-1:]!r}")
        for line in response.lines:
            if isinstance(line, (bytes, bytearray)):
                match = _UIDVALIDITY.search(line)
                if match:
                    return int(match.group(1))
        raise ImapError(f"server gave no UIDVALIDITY for {folder!r}")

    async def ensure_folder(self, folder: str) -> None:
        """Create ``folder`` if missing (an "already exists" answer is fine)."""
        response = await self._call(self.client.create(quote_mailbox(folder)), "CREATE")
        if response.result != "OK" and not any(
            b"ALREADYEXISTS" in line for line in response.lines if isinstance(line, (bytes, bytearray))
        ):
            raise ImapError(f"cannot create folder {folder!r}: {response.lines[-1:]!r}")

    async def uids_after(self, last_uid: int) -> list[int]:
        """UIDs above ``last_uid``, ascending (flags do not matter)."""
        await self._call(self.client.noop(), "NOOP")  # lets the server report new mail
        response = await self._call(self.client.uid_search(f"UID {last_uid + 1}:*", charset=None), "UID SEARCH")
        if response.result != "OK":
            raise ImapError(f"UID SEARCH failed: {response.lines[-1:]!r}")
        uids: set[int] = set()
        for line in response.lines[:-1]:
            if isinstance(line, (bytes, bytearray)):
                uids.update(int(token) for token in line.split() if token.isdigit())
        # "n:*" always matches the highest UID, even when it is below n.
        return sorted(uid for uid in uids if uid > last_uid)

    async def fetch(self, uid: int) -> bytes | None:
        """The raw message, without setting \\Seen (BODY.PEEK); None if it is gone."""
        # A large message on a slow link may take a while as a whole;
        # aioimaplib still gives up after `timeout` seconds without data.
        response = await self._call(self.client.uid("fetch", str(uid), "(UID BODY.PEEK[])"), "UID FETCH",
                                    timeout=max(self.timeout, 600.0))
        if response.result != "OK":
            raise ImapError(f"UID FETCH {uid} failed: {response.lines[-1:]!r}")
        header_seen = False
        for line in response.lines:
            if isinstance(line, bytearray):
                if header_seen:
                    return bytes(line)
            elif isinstance(line, bytes):
                match = _FETCH_UID.search(line)
                header_seen = bool(match and int(match.group(1)) == uid)
        return None  # expunged meanwhile

    async def mark_seen(self, uid: int) -> None:
        response = await self._call(self.client.uid("store", str(uid), "+FLAGS.SILENT (\\Seen)"), "UID STORE")
        if response.result != "OK":
            raise ImapError(f"UID STORE {uid} failed: {response.lines[-1:]!r}")

    async def move(self, uid: int, folder: str) -> None:
        target = quote_mailbox(folder)
        if self.has("MOVE"):  # RFC 6851
            response = await self._call(self.client.uid("move", str(uid), target), "UID MOVE")
            if response.result != "OK":
                raise ImapError(f"UID MOVE {uid} failed: {response.lines[-1:]!r}")
            return
        response = await self._call(self.client.uid("copy", str(uid), target), "UID COPY")
        if response.result != "OK":
            raise ImapError(f"UID COPY {uid} failed: {response.lines[-1:]!r}")
        await self._call(self.client.uid("store", str(uid), "+FLAGS.SILENT (\\Deleted)"), "UID STORE")
        if self.has("UIDPLUS"):  # RFC 4315: expunge only this message
            await self._call(self.client.uid("expunge", str(uid)), "UID EXPUNGE")
        else:
            await self._call(self.client.expunge(), "EXPUNGE")

    async def idle(self, timeout: float) -> bool:
        """IDLE until the server reports new mail or ``timeout`` passes; True on news."""
        client = self.client
        queue = client.protocol.idle_queue
        while not queue.empty():  # leftovers of an earlier IDLE
            queue.get_nowait()
        idle = await self._call(client.idle_start(timeout=timeout), "IDLE")
        news = False
        try:
            while not self._lost.is_set():
                lines = await client.wait_server_push(timeout=timeout + self.timeout)
                if lines == aioimaplib.STOP_WAIT_SERVER_PUSH:
                    break
                if any(b"EXISTS" in line for line in lines if isinstance(line, (bytes, bytearray))):
                    news = True
                    break
        except asyncio.TimeoutError:
            pass
        finally:
            if not self._lost.is_set():
                client.idle_done()
                await self._call(idle, "IDLE DONE")
        if self._lost.is_set():
            raise ImapError("connection lost while idle")
        return news
