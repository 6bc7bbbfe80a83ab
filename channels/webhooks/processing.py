"""What a stored payload becomes, per channel: the handlers the payload processor calls.

Customer messages go through the ingest pipeline (``ingest_message``);
Messenger echoes, receipts, edits and unsends change messages we hold
(:mod:`channels.webhooks.page_events`).  Each handler returns one outcome
line per event, which is logged.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from frontdesk.channels.webhooks import chat, forms, page_events
from frontdesk.channels.webhooks.config import WebhookConfig
from frontdesk.channels.webhooks.intake import IngestFunction, PayloadHandler
from frontdesk.channels.webhooks.messenger import (
    DELETE, DELIVERY, ECHO, EDIT, IGNORED, MESSAGE, POSTBACK, READ, MessengerEvent, classify_payload,
)
from frontdesk.channels.webhooks.validation import InvalidFields
from frontdesk.model import Channel, InboundPayload, Message
from frontdesk.model.channels import CHAT, FORM, MESSENGER
from frontdesk.storage.writer import write_transaction
from frontdesk.ingest.context import IngestContext
from frontdesk.ingest.message import InboundAttachment, InboundMessage, QuarantineMessage


async def _channel(ctx: IngestContext, kind: str, key: str) -> Channel:
    async with ctx.sessions() as session:
        channel = await session.scalar(select(Channel).where(Channel.kind == kind, Channel.key == key))
    if channel is None:
        # The row is created at start-up from the configuration; a payload
        # stored for a channel since removed from it is kept for replay.
        raise QuarantineMessage("unknown_channel", f"no {kind} channel {key!r} is configured")
    return channel


async def _already_stored(ctx: IngestContext, channel: Channel, external_id: str | None) -> bool:
    if not external_id:
        return False
    async with ctx.sessions() as session:
        return await page_events.message_exists(session, channel, external_id)


async def _ingest(ctx: IngestContext, ingest: IngestFunction, message: InboundMessage) -> str:
    outcome = await ingest(ctx, message)
    detail = f" ({outcome.reason})" if outcome.reason else ""
    return f"{outcome.kind}: ticket {outcome.ticket_id} message {outcome.message_id}{detail}"


def messenger_inbound(event: MessengerEvent, payload: InboundPayload) -> InboundMessage:
    extra: dict[str, Any] = {"messenger": {"page_id": event.page_id, **event.extra}}
    if event.kind == POSTBACK:
        extra["messenger"]["kind"] = "postback"
    return InboundMessage(
        channel=MESSENGER,
        channel_key=event.page_id,
        source=f"webhook:messenger/{event.page_id}",
        raw_blob=payload.blob,
        content_hash=event.content_hash,
        external_id=event.external_id,
        thread_key=event.thread_key,
        sender_external_id=event.psid,
        text_body=event.text,
        reply_text=event.text,
        attachments=[InboundAttachment(filename=a.title, content_type=a.content_type, url=a.url)
                     for a in event.attachments if a.url],
        sent_at=event.sent_at,
        extra=extra,
    )


async def _messenger_event(ctx: IngestContext, ingest: IngestFunction, payload: InboundPayload,
                           event: MessengerEvent, channels: dict[str, Channel]) -> str:
    if event.kind == IGNORED:
        return f"ignored: {event.reason}"
    channel = channels.get(event.page_id) or await _channel(ctx, MESSENGER, event.page_id)
    channels[event.page_id] = channel
    if event.kind in (MESSAGE, POSTBACK):
        if await _already_stored(ctx, channel, event.external_id):
            return f"duplicate: mid {event.external_id} already stored"
        return await _ingest(ctx, ingest, messenger_inbound(event, payload))
    async with write_transaction(ctx.sessions) as session:
        if event.kind == ECHO:
            result = await page_events.record_echo(session, channel, event, source=f"webhook:messenger/{event.page_id}",
                                                   raw_blob=payload.blob)
        elif event.kind == DELIVERY:
            result = await page_events.apply_receipt(session, channel, event, "delivered")
        elif event.kind == READ:
            result = await page_events.apply_receipt(session, channel, event, "read")
        elif event.kind == EDIT:
            result = await page_events.apply_edit(session, channel, event)
        elif event.kind == DELETE:
            result = await page_events.apply_delete(session, channel, event)
        else:  # a kind classify_messaging does not produce
            result = f"ignored: unhandled kind {event.kind}"
    if event.kind in (DELIVERY, READ):
        await ctx.committed()  # receipts recorded message.delivery_updated events
    return f"{event.kind}: {result}"


async def handle_messenger(ctx: IngestContext, config: WebhookConfig, payload: InboundPayload, raw: bytes,
                           ingest: IngestFunction) -> list[str]:
    try:
        data = json.loads(raw)
    except ValueError as error:
        raise QuarantineMessage("parse_error", str(error)) from error
    # Only Pages whose app secret verified the signature at the edge.
    verified = set((payload.headers or {}).get("verified_pages") or [])
    classified = classify_payload(data, verified)
    if classified.ignored_reason:
        return [f"ignored: {classified.ignored_reason}"]
    channels: dict[str, Channel] = {}
    return [await _messenger_event(ctx, ingest, payload, event, channels) for event in classified.events]


async def handle_chat(ctx: IngestContext, config: WebhookConfig, payload: InboundPayload, raw: bytes,
                      ingest: IngestFunction) -> list[str]:
    try:
        message = chat.parse_chat_message(json.loads(raw))
    except (ValueError, InvalidFields) as error:
        raise QuarantineMessage("parse_error", str(error)) from error
    channel = await _channel(ctx, CHAT, payload.route)
    inbound = chat.to_inbound(message, slug=payload.route, raw_blob=payload.blob, raw=raw)
    if await _already_stored(ctx, channel, inbound.external_id):
        return [f"duplicate: chat message {message.message_id} already stored"]
    return [await _ingest(ctx, ingest, inbound)]


async def handle_form(ctx: IngestContext, config: WebhookConfig, payload: InboundPayload, raw: bytes,
                      ingest: IngestFunction) -> list[str]:
    form = config.form(payload.route)
    if form is None:
        raise QuarantineMessage("unknown_channel", f"form {payload.route!r} is no longer configured")
    try:
        data = forms.decode_body(raw, (payload.headers or {}).get("content_type", forms.URLENCODED))
        submission = forms.map_submission(form, data)
    except (ValueError, InvalidFields) as error:
        raise QuarantineMessage("parse_error", str(error)) from error
    if submission.honeypot_filled:
        # Kept (quarantined) rather than dropped: a false positive can be replayed.
        raise QuarantineMessage("spam_honeypot", f"the hidden field {form.honeypot_field!r} was filled in")
    channel = await _channel(ctx, FORM, form.slug)
    inbound = forms.to_inbound(form, submission, data, raw_blob=payload.blob, raw=raw)
    if await _already_stored(ctx, channel, inbound.external_id):
        return ["duplicate: identical submission already stored"]
    return [await _ingest(ctx, ingest, inbound)]


HANDLERS: dict[str, PayloadHandler] = {MESSENGER: handle_messenger, CHAT: handle_chat, FORM: handle_form}
