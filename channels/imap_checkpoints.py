"""How far the IMAP poller got: UIDVALIDITY and last imported UID per mailbox folder."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from frontdesk.model.intake import MailboxCheckpoint


@dataclass(frozen=True)
class Checkpoint:
    uidvalidity: int | None
    last_uid: int


async def load_checkpoint(sessions: async_sessionmaker[AsyncSession], mailbox: str, folder: str) -> Checkpoint:
    async with sessions() as session:
        row = await session.scalar(
            select(MailboxCheckpoint).where(MailboxCheckpoint.mailbox == mailbox, MailboxCheckpoint.folder == folder)
        )
    if row is None:
        return Checkpoint(uidvalidity=None, last_uid=0)
    return Checkpoint(uidvalidity=row.uidvalidity, last_uid=row.last_uid)


async def save_checkpoint(
    sessions: async_sessionmaker[AsyncSession], mailbox: str, folder: str, checkpoint: Checkpoint
) -> None:
    # One poller task owns each (mailbox, folder), so read-then-write is safe.
    async with sessions() as session, session.begin():
        row = await session.scalar(
            select(MailboxCheckpoint).where(MailboxCheckpoint.mailbox == mailbox, MailboxCheckpoint.folder == folder)
        )
        if row is None:
            row = MailboxCheckpoint(mailbox=mailbox, folder=folder)
            session.add(row)
        row.uidvalidity = checkpoint.uidvalidity
        row.last_uid = checkpoint.last_uid
