"""What the ingest pipeline needs from its surroundings, passed explicitly."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from frontdesk.settings import Settings
from frontdesk.storage.blobs import BlobStore


@dataclass
class IngestContext:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    blobs: BlobStore
    # Called after each commit that wrote outbox events, so embedded-mode
    # automation can run at once instead of waiting for its next poll.
    on_commit: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @property
    def secret_key(self) -> bytes:
        return self.settings.secret_key.reveal().encode()

    async def committed(self) -> None:
        for callback in self.on_commit:
            await callback()
