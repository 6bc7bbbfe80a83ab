"""What automation handlers need from their surroundings, passed explicitly."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from frontdesk.settings import Settings
from frontdesk.storage.blobs import BlobStore
from frontdesk.outbound.deliveries import DeliveryLoop


@dataclass
class AutomationServices:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    blobs: BlobStore
    # The outbound mail sender: woken after a commit that queued deliveries.
    # None when something else (a test, a separate process) sends them.
    outbound: DeliveryLoop | None = None
