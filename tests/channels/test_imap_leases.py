"""The IMAP mailbox lease, on SQLite and PostgreSQL: one holder at a time, taken over once it expires.

Expiry is simulated by moving ``expires_at`` into the past, so the lease
rules wait for no clock; the pollers' handover (real Dovecot) waits for one
3 s lease.  The two-daemon kill -9 test is tests/runtime/test_scale_out.py.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from frontdesk.channels.imap import IDLE, STANDBY, ImapPollers
from frontdesk.channels.imap_leases import MailboxLeaseHold, holder_id
from frontdesk.ingest.context import IngestContext
from frontdesk.ingest.pipeline import ingest_email
from frontdesk.model import MailboxLease, utcnow
from frontdesk.settings import ConfigError, load_settings
from test_imap import DovecotUser, _address, eventually, make_email, mailbox_for, stored_ids


def hold(sessions, holder: str, *, mailbox: str = "support", folder: str = "INBOX") -> MailboxLeaseHold:
    return MailboxLeaseHold(sessions, mailbox, folder, holder, seconds=15.0)


async def expire(sessions, mailbox: str = "support") -> None:
    async with sessions.begin() as session:
        await session.execute(update(MailboxLease).where(MailboxLease.mailbox == mailbox)
                              .values(expires_at=utcnow() - timedelta(seconds=1)))


async def stored_holder(sessions, mailbox: str = "support") -> str | None:
    async with sessions() as session:
        return await session.scalar(select(MailboxLease.holder).where(MailboxLease.mailbox == mailbox))


async def test_one_holder_at_a_time_until_the_lease_expires(sessions):
    first, second = hold(sessions, "daemon-a"), hold(sessions, "daemon-b")
    assert await first.acquire() and first.held
    assert not await second.acquire() and not second.held
    assert await first.renew() and await first.acquire()  # renewing and re-acquiring our own lease
    assert await stored_holder(sessions) == "daemon-a"

    await expire(sessions)  # the holder died: nobody renewed it
    assert await second.acquire()
    assert await stored_holder(sessions) == "daemon-b"
    # The old holder's next renewal tells it the mailbox is no longer its own.
    assert not await first.renew() and not first.held
    assert not await first.acquire()


async def test_a_released_lease_is_free_at_once_and_leases_are_per_folder(sessions):
    first, second = hold(sessions, "daemon-a"), hold(sessions, "daemon-b")
    assert await first.acquire()
    assert await hold(sessions, "daemon-b", folder="Archive").acquire()  # another folder: its own lease
    assert await hold(sessions, "daemon-b", mailbox="billing").acquire()
    await second.release()  # not the holder: changes nothing
    assert not await second.acquire()
    await first.release()
    assert not first.held
    assert await second.acquire()


async def test_concurrent_acquires_give_the_lease_to_exactly_one(sessions):
    holds = [hold(sessions, holder_id()) for _ in range(4)]
    results = await asyncio.gather(*(lease.acquire() for lease in holds))
    assert sorted(results) == [False, False, False, True]
    winner = holds[results.index(True)]
    assert await stored_holder(sessions) == winner.holder


async def test_a_failed_renewal_halts_polling_before_the_lease_can_lapse(sessions):
    lease = hold(sessions, "daemon-a")
    assert await lease.acquire()
    # Just renewed: a renewal failing now leaves time for two more tries.
    assert not lease.lapses_before_next_renewal()
    lease.valid_until -= 2 * lease.renew_every  # two renewals failed since
    assert lease.held and lease.lapses_before_next_renewal()


def test_lease_seconds_come_from_the_environment_or_the_config_file_and_nonsense_is_refused(tmp_path):
    base = {"FRONTDESK_DATA_DIR": str(tmp_path / "var")}
    assert load_settings(environ=base).imap_lease_seconds == 15.0
    config = tmp_path / "frontdesk.toml"
    config.write_text("[imap]\nlease_seconds = 30\n")
    assert load_settings(config, environ=base).imap_lease_seconds == 30.0
    assert load_settings(config, environ=dict(base, FRONTDESK_IMAP_LEASE_SECONDS="3")).imap_lease_seconds == 3.0
    for wrong in ("0", "-5", "nan", "soon", "86400"):
        with pytest.raises(ConfigError, match="lease_seconds"):
            load_settings(environ=dict(base, FRONTDESK_IMAP_LEASE_SECONDS=wrong))


@pytest.mark.dovecot
async def test_a_poller_that_loses_its_lease_leaves_idle_and_the_other_takes_the_mailbox(settings, sessions, blobs):
    """Two daemons' pollers in one process, on one mailbox: one idles, one stands by; steal the lease."""
    user = DovecotUser(*_address("FRONTDESK_TEST_IMAP"))
    mailbox = mailbox_for(user, name="shared")
    ctx = IngestContext(settings=settings, sessions=sessions, blobs=blobs)
    first = ImapPollers(ctx, [mailbox], {"ingest": ingest_email}, lease_seconds=3, holder="daemon-a")
    await first.start()
    second = ImapPollers(ctx, [mailbox], {"ingest": ingest_email}, lease_seconds=3, holder="daemon-b")
    try:
        await eventually(lambda: first.states["shared"].state == IDLE, "the first daemon idles on the mailbox")
        await second.start()
        await eventually(lambda: second.states["shared"].state == STANDBY, "the second daemon stands by")

        # A third daemon's lease, as if ours had lapsed while we were frozen.
        async with sessions.begin() as session:
            await session.execute(update(MailboxLease).values(holder="daemon-c",
                                                              expires_at=utcnow() + timedelta(seconds=4)))
        await eventually(lambda: first.states["shared"].state == STANDBY,
                         "the first daemon leaves IDLE at its next renewal")
        assert second.states["shared"].state == STANDBY
        # Once that lease expires, whichever standby asks first polls again; only that one.
        pollers = {"daemon-a": first, "daemon-b": second}
        await eventually(lambda: any(p.states["shared"].state == IDLE for p in pollers.values()),
                         "a standby daemon takes the mailbox once the lease expires")
        holder = await stored_holder(sessions, "shared")
        assert [name for name, p in pollers.items() if p.states["shared"].state != STANDBY] == [holder]
        raw, message_id = make_email("After the handover")
        await user.append(raw)
        await eventually(lambda: _has(sessions, message_id), "mail after the handover is imported")
        assert (await stored_ids(sessions)).count(message_id) == 1
    finally:
        await first.stop()
        await second.stop()
    assert await stored_holder(sessions, "shared") is None  # released on stop


async def _has(sessions, message_id: str) -> bool:
    return message_id in await stored_ids(sessions)
