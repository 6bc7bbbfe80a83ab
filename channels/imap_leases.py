"""Which daemon polls an IMAP mailbox folder: a lease row its holder renews, taken over once it expires.

Several daemons may share one PostgreSQL and the same ``[[imap.mailboxes]]``;
each folder must still be polled by one of them at a time (two pollers would
fetch every mail twice and fight over the checkpoint).  The lease is a
``mailbox_leases`` row: the holder renews ``expires_at`` every third of the
lease; any daemon may take a row whose ``expires_at`` has passed.  A holder
killed with ``kill -9`` stops renewing, so another daemon takes the mailbox
within one lease and one retry interval.

Time on PostgreSQL is the database's clock (``now()``), so daemons on
machines whose clocks disagree still agree on expiry.  The holder also
keeps its own monotonic deadline, measured from before each renewal, and
gives up when it cannot renew before that deadline: it stops polling before
anyone else may start.  On SQLite (one daemon) the same statements run and
the lease is simply always free.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import func, or_, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from frontdesk.model import MailboxLease, utcnow
from frontdesk.storage.upsert import dialect_insert


def holder_id() -> str:
    """Names this daemon in the lease table: host and pid for people, a random part so it is never reused."""
    return f"{socket.gethostname()[:120]}:{os.getpid()}:{secrets.token_hex(4)}"


def _now(session: AsyncSession) -> Any:
    # The database's clock where daemons may run on several machines; SQLite
    # stores timestamps as text, which only compares right with our own format.
    return func.now() if session.get_bind().dialect.name == "postgresql" else utcnow()


@dataclass
class MailboxLeaseHold:
    """One daemon's claim on one mailbox folder: :meth:`acquire`, :meth:`renew` while polling, :meth:`release`."""

    sessions: async_sessionmaker[AsyncSession]
    mailbox: str
    folder: str
    holder: str
    seconds: float = 15.0
    # monotonic time after which another daemon may hold the lease; 0 when not held.
    valid_until: float = field(default=0.0, init=False)

    @property
    def renew_every(self) -> float:
        """Renew (and, while waiting, retry) every third of the lease: two renewals may fail before it lapses."""
        return self.seconds / 3

    @property
    def held(self) -> bool:
        return time.monotonic() < self.valid_until

    async def acquire(self) -> bool:
        """Take the lease if it is free, expired or already ours; True if we hold it now."""
        return await self._claim(renewing=False)

    async def renew(self) -> bool:
        """Extend our lease; False if another daemon has it (ours had lapsed)."""
        return await self._claim(renewing=True)

    def lapses_before_next_renewal(self) -> bool:
        """After a failed renewal: True when waiting for the next one would outlast the lease."""
        return time.monotonic() + self.renew_every >= self.valid_until

    async def _claim(self, *, renewing: bool) -> bool:
        started = time.monotonic()
        async with self.sessions.begin() as session:
            now = _now(session)
            await session.execute(  # a free lease: no holder
                dialect_insert(session, MailboxLease)
                .values(mailbox=self.mailbox, folder=self.folder, holder=None, expires_at=utcnow())
                .on_conflict_do_nothing(index_elements=["mailbox", "folder"])
            )
            ours = MailboxLease.holder == self.holder
            claim = (
                update(MailboxLease)
                .where(MailboxLease.mailbox == self.mailbox, MailboxLease.folder == self.folder,
                       ours if renewing else or_(ours, MailboxLease.holder.is_(None), MailboxLease.expires_at <= now))
                .values(holder=self.holder, expires_at=now + timedelta(seconds=self.seconds))
            )
            if not renewing:
                claim = claim.values(acquired_at=now)
            claimed = (await session.execute(claim)).rowcount == 1
        # Measured from before the statement: our deadline never falls after the stored one.
        self.valid_until = started + self.seconds if claimed else 0.0
        return claimed

    async def release(self) -> None:
        """Give the lease up (a clean stop), so another daemon takes over at its next try."""
        self.valid_until = 0.0
        async with self.sessions.begin() as session:
            await session.execute(
                update(MailboxLease)
                .where(MailboxLease.mailbox == self.mailbox, MailboxLease.folder == self.folder,
                       MailboxLease.holder == self.holder)
                .values(holder=None, expires_at=_now(session))
            )
