"""A real listening API app and an HTTP client for the admin tests, on both databases."""

from __future__ import annotations

from typing import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from api.app import create_app

from admin_client import Api


async def serve(settings, sessions, blobs) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    runner = web.AppRunner(create_app(settings, sessions, blobs))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def api(settings, sessions, blobs) -> AsyncIterator[Api]:  # type: ignore[no-untyped-def]
    async for base in serve(settings, sessions, blobs):
        async with aiohttp.ClientSession() as http:
            yield Api(http, base)


