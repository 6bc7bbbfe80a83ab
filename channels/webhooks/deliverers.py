"""The Messenger and chat deliverers, built from the webhook configuration for the delivery loop's table.

The deliverers live in :mod:`outbound`; this is where the webhook
configuration (page tokens, callback URLs, secrets) is handed to them.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from frontdesk.channels.webhooks.config import WebhookConfig
from frontdesk.outbound.chat import ChatDeliverer, ChatEndpoint
from frontdesk.outbound.dispatch import Deliverer
from frontdesk.outbound.messenger import MessengerDeliverer, PageSender


def messenger_deliverer(config: WebhookConfig, sessions: async_sessionmaker[AsyncSession] | None) -> MessengerDeliverer:
    pages = {p.page_id: PageSender(p.page_id, p.page_access_token, p.graph_api_base) for p in config.messenger}
    return MessengerDeliverer(pages, sessions, timeout_seconds=config.send_timeout_seconds)


def chat_deliverer(config: WebhookConfig, sessions: async_sessionmaker[AsyncSession] | None) -> ChatDeliverer:
    endpoints = {c.slug: ChatEndpoint(c.slug, c.callback_url, c.secret) for c in config.chat}
    return ChatDeliverer(endpoints, sessions, timeout_seconds=config.send_timeout_seconds)


def webhook_deliverers(config: WebhookConfig, sessions: async_sessionmaker[AsyncSession]) -> dict[str, Deliverer]:
    """``"messenger"`` and ``"chat"`` deliveries go out through the Send API and chat callbacks."""
    return {"messenger": messenger_deliverer(config, sessions), "chat": chat_deliverer(config, sessions)}
