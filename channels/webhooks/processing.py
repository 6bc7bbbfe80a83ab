"""What a stored payload becomes, per channel: the handlers the payload processor calls, and how their work runs.

One processing pass decodes the body once into the channel's typed payload
(classified Messenger events, a chat message, a form submission), looks
each channel up once, and lists what it holds (:data:`Work`): customer
messages, for the message pipeline; Messenger echoes, receipts, edits and
unsends, for the update pipeline (:func:`ingest.update_pipeline.apply_update`);
events deliberately ignored, with the reason.  :func:`run_work` then runs
a whole batch of payloads' work in arrival order: consecutive messages go
to the message pipeline together, one transaction per batch
(``ingest_messages``), an update is applied where it stands.  Whether a
message is a duplicate is decided there, by one rule
(:mod:`ingest.duplicates`).  Each payload gets one outcome line per
event, which is logged.
"""

from __future__ import annotations

from typing import Awaitable, Callable, Union

from sqlalchemy import select

from frontdesk.channels.webhooks import chat, forms, validation
from frontdesk.channels.webhooks.config import WebhookConfig
from frontdesk.channels.webhooks.messenger import IGNORED, MessengerEvent, classify_payload, to_ingest
from frontdesk.channels.webhooks.validation import InvalidFields
from frontdesk.model import Channel, InboundPayload
from frontdesk.model.channels import CHAT, FORM, MESSENGER
from frontdesk.ingest.batch_runner import MessageItem
from frontdesk.ingest.context import IngestContext
from frontdesk.ingest.message import InboundMessage, IngestOutcome, QuarantineMessage
from frontdesk.ingest.update_pipeline import apply_update
from frontdesk.ingest.updates import MessageUpdate

# ingest.pipeline.ingest_messages, or a stand-in in tests: a batch of
# messages in, their outcomes (in order) out.
IngestMessages = Callable[[IngestContext, list[MessageItem]], Awaitable[list[IngestOutcome]]]

# One event of a payload: a message to ingest, an update to apply, or the line saying why it is ignored.
Work = Union[MessageItem, MessageUpdate, str]

# (ctx, config, payload row, raw bytes, channel rows) -> the payload's work, one item per event.
PayloadHandler = Callable[[IngestContext, WebhookConfig, InboundPayload, bytes, "ChannelRows"],
                          Awaitable[list[Work]]]


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


async def _messenger_work(payload: InboundPayload, event: MessengerEvent, channels: ChannelRows) -> Work:
    if event.kind == IGNORED:
        return f"ignored: {event.reason}"
    channel = await channels.get(MESSENGER, event.page_id)
    item = to_ingest(event, channel_id=channel.id, raw_blob=payload.blob)
    return MessageItem(item, channel) if isinstance(item, InboundMessage) else item


async def handle_messenger(ctx: IngestContext, config: WebhookConfig, payload: InboundPayload, raw: bytes,
                           channels: ChannelRows) -> list[Work]:
    # Only Pages whose app secret verified the signature at the edge.
    verified = set((payload.headers or {}).get("verified_pages") or [])
    classified = classify_payload(_decode(raw), verified)
    if classified.ignored_reason:
        return [f"ignored: {classified.ignored_reason}"]
    return [await _messenger_work(payload, event, channels) for event in classified.events]


async def handle_chat(ctx: IngestContext, config: WebhookConfig, payload: InboundPayload, raw: bytes,
                      channels: ChannelRows) -> list[Work]:
    try:
        message = chat.parse_chat_message(_decode(raw))
    except InvalidFields as error:
        raise QuarantineMessage("parse_error", str(error)) from error
    channel = await channels.get(CHAT, payload.route)
    return [MessageItem(chat.to_inbound(message, slug=payload.route, raw_blob=payload.blob, raw=raw), channel)]


async def handle_form(ctx: IngestContext, config: WebhookConfig, payload: InboundPayload, raw: bytes,
                      channels: ChannelRows, *, replay: bool = False) -> list[Work]:
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
    channel = await channels.get(FORM, form.slug)
    return [MessageItem(forms.to_inbound(form, submission, data, raw_blob=payload.blob, raw=raw), channel)]


def outcome_line(outcome: IngestOutcome) -> str:
    detail = f" ({outcome.reason})" if outcome.reason else ""
    return f"{outcome.kind}: ticket {outcome.ticket_id} message {outcome.message_id}{detail}"


async def run_work(ctx: IngestContext, ingest: IngestMessages, payloads: list[list[Work]]) -> list[list[str]]:
    """Run the work of a batch of payloads in arrival order; each payload's outcome lines.

    Consecutive messages (across payloads) are ingested as one batch; an
    update ends that run, so it is applied after the messages before it
    and before the ones after it.  Raises what ``ingest`` and
    ``apply_update`` raise (storage outages).
    """
    lines: list[list[str]] = [[""] * len(work) for work in payloads]
    waiting: list[tuple[int, int, MessageItem]] = []  # (payload, event, message) not yet ingested

    async def ingest_waiting() -> None:
        if waiting:
            outcomes = await ingest(ctx, [item for _, _, item in waiting])
            for (payload, event, _), outcome in zip(waiting, outcomes):
                lines[payload][event] = outcome_line(outcome)
            waiting.clear()

    for payload, work in enumerate(payloads):
        for event, item in enumerate(work):
            if isinstance(item, MessageItem):
                waiting.append((payload, event, item))
            elif isinstance(item, MessageUpdate):
                await ingest_waiting()
                lines[payload][event] = f"{item.kind}: {await apply_update(ctx, item)}"
            else:
                lines[payload][event] = item
    await ingest_waiting()
    return lines


HANDLERS: dict[str, PayloadHandler] = {MESSENGER: handle_messenger, CHAT: handle_chat, FORM: handle_form}
