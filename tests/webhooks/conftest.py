"""Fixtures for the webhook channels: configured settings and a real listening server.

The sub-application is mounted at ``/webhooks/`` in a parent app served by
``aiohttp.test_utils.TestServer`` on an ephemeral loopback port, as the
daemon mounts it; requests go through a real HTTP client.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import AsyncIterator

import pytest

from frontdesk.channels.webhooks.config import WebhookConfig, parse_webhook_config
from frontdesk.settings import Settings
from frontdesk.ingest.context import IngestContext

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fakes"))

from _webhooks_support import CHANNELS, WebhookServer, start_server  # noqa: E402


@pytest.fixture
def webhook_settings(settings: Settings) -> Settings:
    return replace(settings, channels=CHANNELS)


@pytest.fixture
def webhook_config(webhook_settings: Settings) -> WebhookConfig:
    return parse_webhook_config(webhook_settings)


@pytest.fixture
async def webhooks(webhook_settings: Settings, webhook_config: WebhookConfig, sessions, blobs) -> AsyncIterator[WebhookServer]:
    server = await start_server(IngestContext(webhook_settings, sessions, blobs), webhook_config)
    yield server
    await server.client.close()
