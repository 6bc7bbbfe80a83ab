"""Replaying quarantined webhook items (``frontdesk quarantine replay``).

Two kinds of items come from the webhook channels:

* a whole stored payload the processor could not handle (its envelope
  names ``inbound_payload_id``): the payload is processed again;
* one message the ingest pipeline refused (its envelope names the
  message's ``external_id``): that message is rebuilt from the stored
  payload and ingested again with ``replay_of``.

Replays are idempotent: messages already stored are duplicates.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any, Awaitable, Callable

from sqlalchemy import select

from frontdesk.channels.webhooks import chat, forms, processing
from frontdesk.channels.webhooks.config import WebhookConfig
from frontdesk.ingest.intake import PROCESSED
from frontdesk.channels.webhooks.messenger import MESSAGE, POSTBACK, classify_payload, messenger_inbound
from frontdesk.channels.webhooks.validation import InvalidFields, decode_json
from frontdesk.model import InboundPayload, utcnow
from frontdesk.model.channels import CHAT, FORM, MESSENGER
from frontdesk.storage.writer import write_transaction
from frontdesk.ingest.context import IngestContext
from frontdesk.ingest.message import Envelope, InboundMessage, IngestOutcome, QuarantineMessage
from frontdesk.ingest.batch_runner import MessageItem
from frontdesk.ingest.pipeline import ingest_message
from frontdesk.ingest.quarantine import Replayer

# ingest.pipeline.ingest_message, or a stand-in in tests: one message in, its outcome out.
IngestFunction = Callable[..., Awaitable[IngestOutcome]]


def _messages_in(config: WebhookConfig, channel: str, key: str | None, raw: bytes) -> list[InboundMessage]:
    """Every inbound message a stored payload holds, rebuilt as the processor built it."""
    stub = InboundPayload(channel=channel, route=key or "", blob=hashlib.sha256(raw).hexdigest(), headers={})
    if channel == MESSENGER:
        events = classify_payload(decode_json(raw), {key} if key else set()).events
        return [messenger_inbound(e, stub.blob) for e in events if e.kind in (MESSAGE, POSTBACK)]
    if channel == CHAT:
        return [chat.to_inbound(chat.parse_chat_message(decode_json(raw)), slug=key or "", raw_blob=stub.blob, raw=raw)]
    form = config.form(key or "")
    if form is None:
        return []
    try:
        data = forms.decode_body(raw, forms.JSON_TYPES[0])
    except ValueError:
        data = forms.decode_body(raw, forms.URLENCODED)
    submission = forms.map_submission(form, data)
    return [forms.to_inbound(form, submission, data, raw_blob=stub.blob, raw=raw)]


def webhook_replayer(config: WebhookConfig, ingest: IngestFunction | None = None) -> Replayer:
    """A quarantine replayer (:data:`ingest.quarantine.Replayer`) that knows this configuration."""

    async def replay(ctx: IngestContext, raw: bytes, envelope: Envelope, record: dict[str, Any],
                     item_id: int) -> IngestOutcome:
        if record.get("inbound_payload_id") is not None:
            return await _replay_payload(ctx, config, ingest or ingest_message, int(record["inbound_payload_id"]), raw)
        # The pipeline refused one message: rebuild it and let the pipeline update the same item.
        run = ingest or functools.partial(ingest_message, replay_of=item_id)
        wanted = record.get("external_id")
        try:
            messages = _messages_in(config, envelope.channel, envelope.channel_key, raw)
        except (ValueError, InvalidFields) as error:
            return IngestOutcome("quarantined", reason=f"parse_error: {error}")
        for message in messages:
            if wanted is None or message.external_id == wanted:
                return await run(ctx, message)
        return IngestOutcome("quarantined", reason=f"message {wanted!r} not found in the stored payload")

    return replay


async def _replay_payload(ctx: IngestContext, config: WebhookConfig, ingest: IngestFunction, payload_id: int,
                          raw: bytes) -> IngestOutcome:
    async with ctx.sessions() as session:
        payload = await session.scalar(select(InboundPayload).where(InboundPayload.id == payload_id))
    if payload is None:
        return IngestOutcome("quarantined", reason=f"inbound payload {payload_id} is gone")
    channels = processing.ChannelRows(ctx)
    try:
        if payload.channel == FORM:
            # Replaying is the operator's word that this was a person: a
            # filled honeypot (spam_honeypot) no longer holds it back.
            work = await processing.handle_form(ctx, config, payload, raw, channels, replay=True)
        else:
            work = await processing.HANDLERS[payload.channel](ctx, config, payload, raw, channels)
    except QuarantineMessage as refusal:
        return IngestOutcome("quarantined", reason=refusal.cause)

    async def one_at_a_time(ctx: IngestContext, items: list[MessageItem]) -> list[IngestOutcome]:
        return [await ingest(ctx, item.message, channel=item.channel) for item in items]

    [outcomes] = await processing.run_work(ctx, one_at_a_time, [work])
    async with write_transaction(ctx.sessions) as session:
        row = await session.get(InboundPayload, payload_id)
        if row is not None:
            row.state = PROCESSED
            row.processed_at = utcnow()
    return IngestOutcome("replayed", reason="; ".join(outcomes)[:1000])


def webhook_replayers(config: WebhookConfig, ingest: IngestFunction | None = None) -> dict[str, Replayer]:
    """The replayers of messenger, chat and form items, for ``frontdesk quarantine replay``."""
    replayer = webhook_replayer(config, ingest)
    return {channel: replayer for channel in (MESSENGER, CHAT, FORM)}
