"""The lookup tables the daemon, the worker and the CLI build at start-up and pass in.

Nothing registers itself at import: which channel's deliveries go out how,
and which channel's quarantined items replay how, is decided here, from the
configuration, by whoever runs.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from frontdesk.channels.webhooks.config import WebhookConfig
from frontdesk.channels.webhooks.deliverers import webhook_deliverers
from frontdesk.channels.webhooks.replay import webhook_replayers
from frontdesk.ingest.pipeline import replay_email
from frontdesk.ingest.quarantine import Replayers
from frontdesk.outbound.deliveries import EMAIL_ONLY
from frontdesk.outbound.dispatch import Deliverers


def deliverers(webhooks: WebhookConfig, sessions: async_sessionmaker[AsyncSession]) -> Deliverers:
    """Every channel's deliverer: email, Messenger and chat."""
    return {**EMAIL_ONLY, **webhook_deliverers(webhooks, sessions)}


def quarantine_replayers(webhooks: WebhookConfig) -> Replayers:
    """Every channel's replayer: email, and Messenger, chat and form items rebuilt from their payloads."""
    return {"email": replay_email, **webhook_replayers(webhooks)}
