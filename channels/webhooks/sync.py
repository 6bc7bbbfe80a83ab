"""Mirror the configured Pages, chats and forms into the ``channels`` table at start-up.

Like :func:`frontdesk.defaults.ensure_defaults` does for support addresses:
every other part asks the database which pipeline a channel feeds and
whether it creates tickets.  Secrets stay in the settings, never in the row.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from frontdesk.channels.webhooks.config import WebhookConfig
from frontdesk.model import Channel, Pipeline
from frontdesk.model.channels import CHAT, FORM, MESSENGER


async def sync_webhook_channels(sessions: async_sessionmaker[AsyncSession], config: WebhookConfig) -> None:
    """Create or update one ``Channel`` row per configured Page, chat and form (idempotent)."""
    wanted = (
        [(MESSENGER, p.page_id, p.name or f"Messenger page {p.page_id}", p.pipeline, p.create_tickets, {})
         for p in config.messenger]
        + [(CHAT, c.slug, c.name or f"Chat {c.slug}", c.pipeline, c.create_tickets,
            {"callback_url": c.callback_url}) for c in config.chat]
        + [(FORM, f.slug, f.name or f"Form {f.slug}", f.pipeline, f.create_tickets,
            {"allow_without_email": f.allow_without_email}) for f in config.forms]
    )
    async with sessions.begin() as session:
        pipelines = {p.internal_name: p for p in (await session.scalars(select(Pipeline))).all()}
        existing = {(c.kind, c.key): c for c in (await session.scalars(
            select(Channel).where(Channel.kind.in_((MESSENGER, CHAT, FORM))))).all()}
        for kind, key, name, pipeline_name, create_tickets, options in wanted:
            pipeline = pipelines.get(pipeline_name)
            if pipeline is None:
                raise LookupError(f"{kind} channel {key} names unknown pipeline {pipeline_name!r}")
            channel = existing.get((kind, key))
            if channel is None:
                session.add(Channel(kind=kind, key=key, name=name, pipeline_id=pipeline.id,
                                    create_tickets=create_tickets, options=options))
            else:
                channel.name = name
                channel.pipeline_id = pipeline.id
                channel.create_tickets = create_tickets
                channel.options = options
