"""The IMAP poller against a real Dovecot (deploy/dovecot/start.sh), on SQLite and PostgreSQL.

Each test gets its own Dovecot user (``t-<random>``), so tests never see each
other's mail, appends with Python's imaplib like any mail client would, and
checks the database and the server's flags and folders afterwards.
"""

from __future__ import annotations

import asyncio
import imaplib
import inspect
import os
import re
import uuid
from email.message import EmailMessage
from typing import Awaitable, Callable

import pytest
from sqlalchemy import select

from frontdesk.channels.imap import BACKOFF, IDLE, ImapPoller, ImapPollers
from frontdesk.channels.imap_checkpoints import load_checkpoint
from frontdesk.model.messages import Message
from frontdesk.settings import ImapMailbox, Secret
from frontdesk.storage.database import StorageUnavailable
from frontdesk.ingest.context import IngestContext

from frontdesk.ingest.email_intake import EmailIntake
from frontdesk.ingest.pipeline import ingest_email
from _servers import server_address

pytestmark = pytest.mark.dovecot

PASSWORD = "test-password"  # deploy/dovecot accepts any t-* user with it


def _address(variable: str, default_port_offset: int = 0) -> tuple[str, int]:
    value = server_address("FRONTDESK_TEST_IMAP", "deploy/dovecot/start.sh")
    if variable != "FRONTDESK_TEST_IMAP" and os.environ.get(variable):
        value, default_port_offset = os.environ[variable], 0
    host, _, port = value.rpartition(":")
    return host, int(port) + default_port_offset


@pytest.fixture
def dovecot() -> tuple[str, int]:
    return _address("FRONTDESK_TEST_IMAP")


@pytest.fixture
def dovecot_imaps() -> tuple[str, int]:
    # deploy/dovecot/start.sh puts IMAPS 850 ports above plain IMAP.
    return _address("FRONTDESK_TEST_IMAPS", 850)


class DovecotUser:
    """A throwaway Dovecot user, driven with the standard library's IMAP client."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.name = f"t-{uuid.uuid4().hex[:12]}"

    def _session(self) -> imaplib.IMAP4:
        client = imaplib.IMAP4(self.host, self.port)
        client.login(self.name, PASSWORD)
        return client

    async def run(self, work: Callable[[imaplib.IMAP4], object]):
        def blocking():
            client = self._session()
            try:
                return work(client)
            finally:
                client.logout()
        return await asyncio.to_thread(blocking)

    async def append(self, raw: bytes, folder: str = "INBOX") -> None:
        def work(client):
            typ, data = client.append(folder, None, None, raw)
            assert typ == "OK", data
        await self.run(work)

    async def flags(self, folder: str = "INBOX") -> dict[str, set[str]]:
        """Message-ID -> flags, for every message in ``folder``."""
        def work(client):
            typ, _ = client.select(folder)
            assert typ == "OK"
            typ, data = client.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            result = {}
            for item in data:
                if isinstance(item, tuple):
                    flags = set(re.search(rb"FLAGS \(([^)]*)\)", item[0]).group(1).decode().split())
                    message_id = item[1].decode().split(":", 1)[1].strip().strip("<>")
                    result[message_id] = flags
            return result
        return await self.run(work)

    async def command(self, name: str, *args: str) -> None:
        def work(client):
            typ, data = getattr(client, name)(*args)
            assert typ == "OK", data
        await self.run(work)

    async def uidvalidity(self, folder: str) -> int:
        def work(client):
            typ, data = client.status(folder, "(UIDVALIDITY)")
            return int(re.search(rb"UIDVALIDITY (\d+)", data[0]).group(1))
        return await self.run(work)


def make_email(subject: str) -> tuple[bytes, str]:
    message_id = f"{uuid.uuid4().hex}@customer.test"
    message = EmailMessage()
    message["From"] = "Carol Customer <carol@customer.test>"
    message["To"] = "support@acme.test"
    message["Subject"] = subject
    message["Message-ID"] = f"<{message_id}>"
    message["Date"] = "Mon, 23 Nov 2026 03:00:00 +0000"
    message.set_content(f"About {subject}")
    return message.as_bytes().replace(b"\n", b"\r\n"), message_id


async def eventually(check: Callable[[], Awaitable[bool] | bool], what: str, timeout: float = 30.0) -> None:
    """Wait, bounded, until ``check`` holds (these are not timing assertions)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


async def stored_ids(sessions) -> list[str]:
    async with sessions() as session:
        return list((await session.scalars(select(Message.external_id).where(Message.source.like("imap:%")))).all())


def mailbox_for(user: DovecotUser, **overrides) -> ImapMailbox:
    options = dict(
        name=user.name, host=user.host, port=user.port, username=user.name, password=Secret(PASSWORD),
        security="none", poll_interval=3600.0, support_address="support@acme.test",
    )
    options.update(overrides)
    return ImapMailbox(**options)


class Running:
    """Run a poller in the background for the length of a ``async with``."""

    def __init__(self, poller: ImapPoller) -> None:
        self.poller = poller

    async def __aenter__(self) -> ImapPoller:
        self.task = asyncio.create_task(self.poller.run())
        return self.poller

    async def __aexit__(self, *exc_info) -> None:
        await self.poller.stop()
        await asyncio.wait_for(self.task, 30)


@pytest.fixture
def ingest_ctx(settings, sessions, blobs) -> IngestContext:
    return IngestContext(settings=settings, sessions=sessions, blobs=blobs)


@pytest.fixture
def user(dovecot) -> DovecotUser:
    return DovecotUser(*dovecot)


async def test_new_mail_is_imported_and_flagged_seen(ingest_ctx, sessions, user):
    first, first_id = make_email("First")
    second, second_id = make_email("Second")
    await user.append(first)
    await user.append(second)
    async with Running(ImapPoller(ingest_ctx, mailbox_for(user), ingest=ingest_email)) as poller:
        await eventually(lambda: _has(sessions, {first_id, second_id}), "both messages stored")
        await eventually(lambda: _all_seen(user, {first_id, second_id}), "both flagged \\Seen")
        await eventually(lambda: poller.state.last_uid == 2, "checkpoint at the second UID")
        assert poller.state.imported == 2
    assert sorted(await stored_ids(sessions)) == sorted([first_id, second_id])
    checkpoint = await load_checkpoint(sessions, user.name, "INBOX")
    assert checkpoint.last_uid == 2
    assert checkpoint.uidvalidity == await user.uidvalidity("INBOX")


async def test_with_the_durable_intake_mail_is_flagged_seen_once_committed_and_processed_behind(
        ingest_ctx, sessions, user):
    raw, message_id = make_email("Through the intake")
    await user.append(raw)
    intake = EmailIntake(ingest_ctx, paused=True)  # commits, never processes on its own
    await intake.start()
    try:
        async with Running(ImapPoller(ingest_ctx, mailbox_for(user), intake=intake)) as poller:
            await eventually(lambda: _all_seen(user, {message_id}), "flagged \\Seen")
            await eventually(lambda: poller.state.last_uid == 1, "checkpoint at the UID")
        # Seen on the server with only the intake row committed: nothing processed yet.
        assert await stored_ids(sessions) == []
        assert await intake.process_batch() == 1
    finally:
        await intake.stop()
    assert await stored_ids(sessions) == [message_id]


async def _has(sessions, wanted: set[str]) -> bool:
    return wanted <= set(await stored_ids(sessions))


async def _all_seen(user: DovecotUser, wanted: set[str], folder: str = "INBOX") -> bool:
    flags = await user.flags(folder)
    return all("\\Seen" in flags.get(message_id, set()) for message_id in wanted)


async def test_idle_picks_up_mail_appended_while_idle(ingest_ctx, sessions, user):
    # The poll interval is an hour: only IDLE can bring this message in.
    async with Running(ImapPoller(ingest_ctx, mailbox_for(user, poll_interval=3600.0), ingest=ingest_email)) as poller:
        async def idling() -> bool:
            return poller.state.state == IDLE
        await eventually(idling, "poller idle")
        assert poller.state.idle_supported is True
        raw, message_id = make_email("While idle")
        await user.append(raw)
        await eventually(lambda: _has(sessions, {message_id}), "message appended during IDLE stored")


async def test_polling_mode_without_idle(ingest_ctx, sessions, user):
    async with Running(ImapPoller(ingest_ctx, mailbox_for(user, use_idle=False, poll_interval=0.3),
                                  ingest=ingest_email)) as poller:
        raw, message_id = make_email("Polled")
        await user.append(raw)
        await eventually(lambda: _has(sessions, {message_id}), "message stored by polling")
        assert poller.state.state in ("polling", "syncing")


async def test_uidvalidity_change_resyncs_without_importing_twice(ingest_ctx, sessions, user):
    folder = "Support"
    await user.command("create", folder)
    old, old_id = make_email("Old one")
    await user.append(old, folder)
    mailbox = mailbox_for(user, folder=folder)
    async with Running(ImapPoller(ingest_ctx, mailbox, ingest=ingest_email)):
        await eventually(lambda: _has(sessions, {old_id}), "first message stored")
    before = await load_checkpoint(sessions, user.name, folder)

    # The folder is recreated: same name, new UIDVALIDITY, the old message
    # back under a fresh UID next to a new one.
    await user.command("delete", folder)
    await user.command("create", folder)
    await user.append(old, folder)
    new, new_id = make_email("New one")
    await user.append(new, folder)
    assert await user.uidvalidity(folder) != before.uidvalidity

    async with Running(ImapPoller(ingest_ctx, mailbox, ingest=ingest_email)) as poller:
        await eventually(lambda: _has(sessions, {new_id}), "new message stored after resync")
        await eventually(lambda: _all_seen(user, {old_id, new_id}, folder), "both flagged after resync")
        assert poller.state.uidvalidity == await user.uidvalidity(folder)
    assert sorted(await stored_ids(sessions)) == sorted([old_id, new_id])  # the old one exactly once
    after = await load_checkpoint(sessions, user.name, folder)
    assert (after.uidvalidity, after.last_uid) == (await user.uidvalidity(folder), 2)


class FlakyStorage:
    """The real ingest, except that storage is "down" for one subject until restored."""

    def __init__(self, failing_subject: str) -> None:
        self.failing_subject = failing_subject.encode()
        self.down = True
        self.failures = 0

    async def __call__(self, ctx, raw, envelope):
        if self.down and b"Subject: " + self.failing_subject in raw:
            self.failures += 1
            raise StorageUnavailable("database unreachable (simulated)")
        return await ingest_email(ctx, raw, envelope)


async def test_seen_only_after_commit_and_failed_message_is_retried(ingest_ctx, sessions, user):
    first, first_id = make_email("Alpha")
    failing, failing_id = make_email("Bravo")
    third, third_id = make_email("Charlie")
    for raw in (first, failing, third):
        await user.append(raw)
    flaky = FlakyStorage("Bravo")
    poller = ImapPoller(ingest_ctx, mailbox_for(user), ingest=flaky, backoff_initial=0.2, backoff_max=0.5)
    async with Running(poller):
        async def failed_twice() -> bool:
            return flaky.failures >= 2  # it is retried, and keeps failing while storage is down
        await eventually(failed_twice, "ingest retried the failing message")
        await eventually(lambda: (poller.state.last_error or "").startswith("storage"), "storage failure recorded")
        flags = await user.flags()
        assert "\\Seen" in flags[first_id]
        assert "\\Seen" not in flags[failing_id]
        assert "\\Seen" not in flags[third_id]  # after the failure nothing is skipped ahead
        assert set(await stored_ids(sessions)) == {first_id}
        assert (await load_checkpoint(sessions, user.name, "INBOX")).last_uid == 1

        flaky.down = False
        await eventually(lambda: _has(sessions, {failing_id, third_id}), "the failed message stored on retry")
        await eventually(lambda: _all_seen(user, {first_id, failing_id, third_id}), "all flagged \\Seen")
    assert sorted(await stored_ids(sessions)) == sorted([first_id, failing_id, third_id])


async def test_move_to_folder_after_commit(ingest_ctx, sessions, user):
    raws = [make_email(f"To move {n}") for n in range(2)]
    for raw, _ in raws:
        await user.append(raw)
    ids = {message_id for _, message_id in raws}
    async with Running(ImapPoller(ingest_ctx, mailbox_for(user, move_to="Frontdesk-Imported"), ingest=ingest_email)):
        await eventually(lambda: _has(sessions, ids), "messages stored")

        async def moved() -> bool:
            return not await user.flags("INBOX") and set(await user.flags("Frontdesk-Imported")) == ids
        await eventually(moved, "messages moved out of INBOX")
    assert sorted(await stored_ids(sessions)) == sorted(ids)


@pytest.mark.parametrize("security", ["starttls", "ssl"])
async def test_tls_connections(ingest_ctx, sessions, user, dovecot_imaps, security):
    raw, message_id = make_email(f"Over {security}")
    await user.append(raw)
    host, port = dovecot_imaps if security == "ssl" else (user.host, user.port)
    # The test server's certificate is self-signed.
    mailbox = mailbox_for(user, security=security, host=host, port=port, verify_tls=False)
    async with Running(ImapPoller(ingest_ctx, mailbox, ingest=ingest_email)):
        await eventually(lambda: _has(sessions, {message_id}), f"message stored over {security}")


class DroppableProxy:
    """A TCP relay in front of Dovecot that can cut every connection and refuse new ones."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.server: asyncio.AbstractServer | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", self.port, reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]

    async def drop_and_refuse(self) -> None:
        self.server.close()
        await self.server.wait_closed()
        for writer in list(self.writers):
            writer.transport.abort()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self.writers.update({writer, upstream_writer})

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.transport.abort()

        await asyncio.gather(pump(reader, upstream_writer), pump(upstream_reader, writer))
        self.writers.difference_update({writer, upstream_writer})

    async def close(self) -> None:
        await self.drop_and_refuse()


async def test_dropped_connection_reconnects_with_backoff(ingest_ctx, sessions, user):
    proxy = DroppableProxy((user.host, user.port))
    await proxy.start()
    poller = ImapPoller(ingest_ctx, mailbox_for(user, port=proxy.port), ingest=ingest_email,
                        backoff_initial=0.2, backoff_max=1.0)
    try:
        async with Running(poller):
            before, before_id = make_email("Before the drop")
            await user.append(before)
            await eventually(lambda: _has(sessions, {before_id}), "message before the drop stored")

            await proxy.drop_and_refuse()

            async def backing_off() -> bool:
                return poller.state.state == BACKOFF and poller.state.consecutive_failures >= 2
            await eventually(backing_off, "poller backing off while the server is unreachable")
            assert poller.state.last_error.startswith("imap")

            during, during_id = make_email("During the outage")
            await user.append(during)
            await proxy.start()  # same port again
            await eventually(lambda: _has(sessions, {during_id}), "message sent during the outage stored")

            async def recovered() -> bool:
                return poller.state.state == IDLE and poller.state.consecutive_failures == 0
            await eventually(recovered, "poller idle again with its failure count reset")
    finally:
        await proxy.close()
    assert sorted(await stored_ids(sessions)) == sorted([before_id, during_id])


async def test_pollers_run_several_mailboxes_concurrently(ingest_ctx, sessions, dovecot):
    users = [DovecotUser(*dovecot) for _ in range(3)]
    expected = set()
    for user in users:
        raw, message_id = make_email(f"For {user.name}")
        await user.append(raw)
        expected.add(message_id)
    pollers = ImapPollers(ingest_ctx, [mailbox_for(user) for user in users], {"ingest": ingest_email})
    await pollers.start()
    try:
        await eventually(lambda: _has(sessions, expected), "every mailbox imported")
        await eventually(lambda: all(state.last_uid == 1 for state in pollers.states.values()), "all checkpointed")
        assert {name: state.imported for name, state in pollers.states.items()} == {u.name: 1 for u in users}
    finally:
        await pollers.stop()
    assert all(state.state == "stopped" for state in pollers.states.values())


async def test_large_message_is_imported_byte_for_byte(ingest_ctx, sessions, blobs, user):
    message = EmailMessage()
    message["From"] = "carol@customer.test"
    message["To"] = "support@acme.test"
    message["Subject"] = "Logs attached"
    message["Message-ID"] = f"<{uuid.uuid4().hex}@customer.test>"
    message.set_content("The logs you asked for.")
    message.add_attachment(os.urandom(2 * 1024 * 1024), maintype="application", subtype="octet-stream",
                           filename="logs.bin")
    raw = message.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    message_id = message["Message-ID"].strip("<>")
    await user.append(raw)
    async with Running(ImapPoller(ingest_ctx, mailbox_for(user), ingest=ingest_email)):
        await eventually(lambda: _has(sessions, {message_id}), "large message stored")
    async with sessions() as session:
        stored = await session.scalar(select(Message).where(Message.external_id == message_id))
    assert await blobs.get(stored.raw_blob) == raw
