"""Typed keys for what the API application holds (aiohttp ``web.AppKey``)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from frontdesk.settings import Settings
from frontdesk.storage.blobs import BlobStore

SETTINGS = web.AppKey("settings", Settings)
SESSIONS = web.AppKey("sessions", async_sessionmaker[AsyncSession])
BLOBS = web.AppKey("blobs", BlobStore)
# Set when the application starts shutting down: long-lived responses (the event stream) end cleanly.
SHUTTING_DOWN = web.AppKey("shutting_down", asyncio.Event)
# The merged OpenAPI document, built once when the app is made.
OPENAPI_DOCUMENT = web.AppKey("openapi_document", dict[str, Any])
