"""Shared constants and helpers of the webhook tests: channel configuration, a signing client, row counts."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from frontdesk.channels.webhooks.app import PROCESSOR, create_webhook_app
from frontdesk.channels.webhooks.config import WebhookConfig
from frontdesk.channels.webhooks.processor import PayloadProcessor
from frontdesk.channels.webhooks.signing import hub_signature, timestamped_signature
from frontdesk.model import Base
from frontdesk.ingest.context import IngestContext

APP_SECRET = "test-app-secret"
PREVIOUS_APP_SECRET = "test-app-secret-old"
VERIFY_TOKEN = "test-verify-token"
CHAT_SECRET = "test-chat-secret"
FORM_SECRET = "test-form-secret"
# Every Page id the restfb corpus uses for Messenger events, as if one app served them all.
CORPUS_PAGES = ("12345654332", "1234567890321", "349489628480201", "692521420913831", "682498302938465")

CHANNELS: dict[str, Any] = {
    "messenger": [
        {"page_id": page, "app_secret": APP_SECRET, "app_secret_previous": PREVIOUS_APP_SECRET,
         "verify_token": VERIFY_TOKEN, "page_access_token": f"token-{page}",
         "graph_api_base": "http://127.0.0.1:9/v21.0"}
        for page in CORPUS_PAGES
    ] + [
        # A Page of another Meta app: its secret must not open the pages above.
        {"page_id": "777", "app_secret": "other-app-secret", "verify_token": "other-token",
         "page_access_token": "token-777", "create_tickets": False},
    ],
    "chat": [
        {"slug": "widget", "secret": CHAT_SECRET, "callback_url": "http://127.0.0.1:9/replies",
         "max_skew_seconds": 300},
    ],
    "forms": [
        {"slug": "contact", "required": ["email", "subject"], "honeypot_field": "website",
         "fields": {"email": "contact.email", "first": "contact.first_name", "last": "contact.last_name",
                    "phone": "contact.phone", "company": "contact.company", "subject": "ticket.name",
                    "message": "ticket.description", "urgency": "ticket.priority", "topic": "ticket.category",
                    "order": "ticket.custom.order_number", "seats": "ticket.custom.seats",
                    "plan": "ticket.custom.plan"}},
        {"slug": "anonymous", "allow_without_email": True, "rate_limit": "3/minute",
         "fields": {"email": "contact.email", "message": "ticket.description", "name": "contact.first_name"}},
        {"slug": "signed", "secret": FORM_SECRET, "fields": {"email": "contact.email", "message": "ticket.description"}},
    ],
}


@dataclass
class WebhookServer:
    client: TestClient
    processor: PayloadProcessor
    ctx: IngestContext
    config: WebhookConfig
    app: web.Application  # the webhook sub-application

    async def post_messenger(self, body: bytes, *, secret: str | None = APP_SECRET, **headers: str):
        headers.setdefault("Content-Type", "application/json")
        if secret is not None:
            headers.setdefault("X-Hub-Signature-256", hub_signature(secret, body))
        return await self.client.post("/webhooks/messenger", data=body, headers=headers)

    async def post_signed(self, path: str, body: bytes, *, secret: str, timestamp: float | None = None,
                          content_type: str = "application/json", **headers: str):
        stamp = str(int(time.time() if timestamp is None else timestamp))
        headers = {"Content-Type": content_type, "X-Frontdesk-Timestamp": stamp,
                   "X-Frontdesk-Signature": timestamped_signature(secret, stamp, body), **headers}
        return await self.client.post(path, data=body, headers=headers)

    async def settle(self) -> None:
        await self.processor.join()


async def start_server(ctx: IngestContext, config: WebhookConfig, **options: Any) -> WebhookServer:
    root = web.Application()
    sub = create_webhook_app(ctx, config, **options)
    root.add_subapp("/webhooks/", sub)
    client = TestClient(TestServer(root, host="127.0.0.1", port=0))
    await client.start_server()
    return WebhookServer(client, sub[PROCESSOR], ctx, config, sub)


async def count_rows(sessions, *models: type[Base]) -> dict[str, int]:
    async with sessions() as session:
        return {m.__tablename__: await session.scalar(select(func.count()).select_from(m)) for m in models}
