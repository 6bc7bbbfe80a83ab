"""What a stored payload becomes, per channel: the handlers the payload processor calls.

One processing pass decodes the body once into the channel's typed payload
(classified Messenger events, a chat message, a form submission), looks
each channel up once, and hands ingest what it takes: customer messages go
through the message pipeline (``ingest_message``), Messenger echoes,
receipts, edits and unsends through the update pipeline
(:func:`ingest.update_pipeline.apply_update`).  Whether a message is a
duplicate is decided there, by one rule (:mod:`ingest.duplicates`).  Each
handler returns one outcome line per event, which is logged.
"""

from __future__ import annotations

from sqlalchemy import select

from frontdesk.channels.webhooks import chat, forms, validation
from frontdesk.channels.webhooks.config import WebhookConfig
from frontdesk.channels.webhooks.messenger import IGNORED, MessengerEvent, classify_payload, to_ingest
from frontdesk.channels.webhooks.processor import IngestFunction, PayloadHandler
from frontdesk.channels.webhooks.validation import InvalidFields
from frontdesk.model import Channel, InboundPayload
from frontdesk.model.channels import CHAT, FORM, MESSENGER
from frontdesk.ingest.context import IngestContext
from frontdesk.ingest.message import InboundMessage, QuarantineMessage
from frontdesk.ingest.update_pipeline import apply_update


class ChannelRows:
    """The channel rows of one processing pass, each read from the database once."""

    def __init__(self, ctx: IngestContext) -> None:
        self.ctx = ctx
        self._rows: dict[tuple[str, str], Channel] = {}

    async def get(self, kind: str, key: str) -> Channel:
        if (kind, key) not in self._rows:
            async with self.ctx.sessions() as session:
                channel = await session.scalar(
                    select(Channel).where(Channel.kind == kind, Channel.key == key, Channel.enabled))
            if channel is None:
                # The row is created at start-up from the configuration; a payload
                # stored for a channel since removed from it is kept for replay.
                raise QuarantineMessage("unknown_channel", f"no {kind} channel {key!r} is configured")
            self._rows[(kind, key)] = channel
        return self._rows[(kind, key)]


def _decode(raw: bytes):  # type: ignore[no-untyped-def]
    try:
        return validation.decode_json(raw)
    except ValueError as error:
        raise QuarantineMessage("parse_error", str(error)) from error


async def _ingest(ctx: IngestContext, ingest: IngestFunction, message: InboundMessage, channel: Channel) -> str:
    outcome = await ingest(ctx, message, channel=channel)
    detail = f" ({outcome.reason})" if outcome.reason else ""
    return f"{outcome.kind}: ticket {outcome.ticket_id} message {outcome.message_id}{detail}"


async def _messenger_event(ctx: IngestContext, ingest: IngestFunction, payload: InboundPayload,
                           event: MessengerEvent, channels: ChannelRows) -> str:
    if event.kind == IGNORED:
        return f"ignored: {event.reason}"
    channel = await channels.get(MESSENGER, event.page_id)
    item = to_ingest(event, channel_id=channel.id, raw_blob=payload.blob)
    if isinstance(item, InboundMessage):
        return await _ingest(ctx, ingest, item, channel)
    return f"{event.kind}: {await apply_update(ctx, item)}"


async def handle_messenger(ctx: IngestContext, config: WebhookConfig, payload: InboundPayload, raw: bytes,
                           ingest: IngestFunction) -> list[str]:
    # Only Pages whose app secret verified the signature at the edge.
    verified = set((payload.headers or {}).get("verified_pages") or [])
    classified = classify_payload(_decode(raw), verified)
    if classified.ignored_reason:
        return [f"ignored: {classified.ignored_reason}"]
    channels = ChannelRows(ctx)
    return [await _messenger_event(ctx, ingest, payload, event, channels) for event in classified.events]


async def handle_chat(ctx: IngestContext, config: WebhookConfig, payload: InboundPayload, raw: bytes,
                      ingest: IngestFunction) -> list[str]:
    try:
        message = chat.parse_chat_message(_decode(raw))
    except InvalidFields as error:
        raise QuarantineMessage("parse_error", str(error)) from error
    channel = await ChannelRows(ctx).get(CHAT, payload.route)
    inbound = chat.to_inbound(message, slug=payload.route, raw_blob=payload.blob, raw=raw)
    return [await _ingest(ctx, ingest, inbound, channel)]


async def handle_form(ctx: IngestContext, config: WebhookConfig, payload: InboundPayload, raw: bytes,
                      ingest: IngestFunction, *, replay: bool = False) -> list[str]:
    """A form submission to a ticket; ``replay``: an operator replays it, so the honeypot no longer counts."""
    form = config.form(payload.route)
    if form is None:
        raise QuarantineMessage("unknown_channel", f"form {payload.route!r} is no longer configured")
    try:
        data = forms.decode_body(raw, (payload.headers or {}).get("content_type", forms.URLENCODED))
        submission = forms.map_submission(form, data)
    except (ValueError, InvalidFields) as error:
        raise QuarantineMessage("parse_error", str(error)) from error
    if submission.honeypot_filled and not replay:
        # Kept (quarantined) rather than dropped: a false positive can be replayed.
        raise QuarantineMessage("spam_honeypot", f"the hidden field {form.honeypot_field!r} was filled in")
    channel = await ChannelRows(ctx).get(FORM, form.slug)
    inbound = forms.to_inbound(form, submission, data, raw_blob=payload.blob, raw=raw)
    return [await _ingest(ctx, ingest, inbound, channel)]


HANDLERS: dict[str, PayloadHandler] = {MESSENGER: handle_messenger, CHAT: handle_chat, FORM: handle_form}
