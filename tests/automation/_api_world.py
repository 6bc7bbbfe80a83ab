"""Test helpers for API-driven automation tests: the API tests' harness (listen, users with tokens), reachable from here."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import AsyncIterator

import aiohttp
from aiohttp import web

# One harness for every test that calls the API: pytest puts tests/api on the path only when it collects it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))

from api_harness import create_user_token, listen  # noqa: E402

__all__ = ["create_user_token", "serve"]


async def serve(app: web.Application) -> AsyncIterator[aiohttp.ClientSession]:
    """A client of ``app`` listening on a free loopback port, until the caller is done."""
    runner, url = await listen(app)
    try:
        async with aiohttp.ClientSession(base_url=url) as client:
            yield client
    finally:
        await runner.cleanup()
