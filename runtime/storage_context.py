"""Storage for one-shot commands: an engine, sessions, blobs and an ingest context, disposed on exit."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator

from frontdesk.settings import Settings
from frontdesk.storage.blobs import BlobStore
from frontdesk.storage.database import create_engine, session_factory
from frontdesk.ingest.context import IngestContext


@asynccontextmanager
async def ingest_context(settings: Settings) -> AsyncIterator[IngestContext]:
    engine = create_engine(settings.reveal_database_url())
    try:
        yield IngestContext(settings=settings, sessions=session_factory(engine), blobs=BlobStore(settings.blob_dir))
    finally:
        await engine.dispose()
