"""Webhook channel configuration: typed, secrets hidden, loud on mistakes; the OpenAPI fragment."""

from __future__ import annotations

from dataclasses import replace

import pytest

from frontdesk.channels.webhooks.app import openapi_paths
from frontdesk.channels.webhooks.config import parse_webhook_config
from frontdesk.settings import ConfigError, Settings


def config_of(channels: dict):
    return parse_webhook_config(Settings(channels=channels))


def test_secrets_are_typed_and_never_shown() -> None:
    config = config_of({"messenger": [{"page_id": 1, "app_secret": "s3cret", "verify_token": "v",
                                       "page_access_token": "tok"}]})
    page = config.page("1")
    assert page.app_secret.reveal() == "s3cret" and "s3cret" not in repr(config)
    assert page.app_secrets == (page.app_secret,)


@pytest.mark.parametrize("channels, message", [
    ({"messenger": [{"page_id": "1", "verify_token": "v", "page_access_token": "t"}]}, "app_secret"),
    ({"chat": [{"slug": "a b", "secret": "s"}]}, "slug"),
    ({"chat": [{"slug": "a", "secret": "s"}, {"slug": "a", "secret": "t"}]}, "twice"),
    ({"forms": [{"slug": "f", "fields": {"x": "ticket.colour"}}]}, "unknown target"),
    ({"forms": [{"slug": "f", "fields": {"x": "ticket.custom.priority"}}]}, "unknown target"),
    ({"forms": [{"slug": "f", "fields": {"x": "contact.email"}, "required": ["y"]}]}, "not in the fields"),
    ({"forms": [{"slug": "f", "fields": {"x": "contact.email"}, "rate_limit": "lots"}]}, "rate_limit"),
])
def test_mistakes_fail_loudly_at_start_up(channels: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_of(channels)


def test_openapi_fragment_documents_every_route() -> None:
    fragment = openapi_paths()
    assert set(fragment["paths"]) == {"/webhooks/messenger", "/webhooks/chat/{channel}", "/webhooks/forms/{form}"}
    for operations in fragment["paths"].values():
        for operation in operations.values():
            assert operation["security"] == [] and "200" in operation["responses"]
    assert {"WebhookAccepted", "ChatMessage", "MessengerWebhook"} <= set(fragment["components"]["schemas"])


async def test_channels_are_mirrored_into_the_database_idempotently(webhook_config, sessions) -> None:
    from sqlalchemy import select

    from frontdesk.channels.webhooks.sync import sync_webhook_channels
    from frontdesk.model import Channel

    await sync_webhook_channels(sessions, webhook_config)
    await sync_webhook_channels(sessions, webhook_config)
    async with sessions() as session:
        rows = {(c.kind, c.key): c for c in (await session.scalars(select(Channel))).all()}
    assert ("messenger", "12345654332") in rows and ("chat", "widget") in rows and ("form", "contact") in rows
    assert rows[("messenger", "777")].create_tickets is False
    assert len([k for k in rows if k[0] in ("messenger", "chat", "form")]) == (
        len(webhook_config.messenger) + len(webhook_config.chat) + len(webhook_config.forms))
    # A changed switch is applied to the existing row.
    pages = tuple(replace(p, create_tickets=False) if p.page_id == "12345654332" else p for p in webhook_config.messenger)
    await sync_webhook_channels(sessions, replace(webhook_config, messenger=pages))
    async with sessions() as session:
        row = await session.scalar(select(Channel).where(Channel.kind == "messenger", Channel.key == "12345654332"))
    assert row.create_tickets is False and "app_secret" not in str(row.options)
