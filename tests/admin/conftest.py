"""A real listening API app and an HTTP client for the admin tests, on both databases."""

from __future__ import annotations

from typing import AsyncIterator

import aiohttp
import pytest


from admin_client import Api, serve


@pytest.fixture
async def api(settings, sessions, blobs) -> AsyncIterator[Api]:  # type: ignore[no-untyped-def]
    async for base in serve(settings, sessions, blobs):
        async with aiohttp.ClientSession() as http:
            yield Api(http, base)




@pytest.fixture
async def empty_database_url(database_url: str, tmp_path):  # type: ignore[no-untyped-def]
    """A second database of the same backend, migrated and otherwise empty (no defaults)."""
    import uuid

    import asyncpg
    from sqlalchemy.engine import make_url

    from frontdesk.storage.database import create_engine
    from frontdesk.storage.migrate import upgrade

    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        target = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        drop = None
    else:
        name = f"fd_empty_{uuid.uuid4().hex[:12]}"
        admin_dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        conn = await asyncpg.connect(admin_dsn)
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()
        target = url.set(database=name).render_as_string(hide_password=False)
        drop = (admin_dsn, name)
    engine = create_engine(target)
    await upgrade(engine)
    await engine.dispose()
    yield target
    if drop:
        conn = await asyncpg.connect(drop[0])
        await conn.execute(f'DROP DATABASE IF EXISTS "{drop[1]}" WITH (FORCE)')
        await conn.close()
