"""The webhook sub-application: Messenger, chat and form endpoints, mounted at ``/webhooks/``.

Each handler is a protocol edge only: check size, content type, signature
and shape (:mod:`channels.webhooks.checks`, the body decoded once), store
the raw body durably (:mod:`ingest.intake`), answer, and hand the
stored row to the payload processor (:mod:`channels.webhooks.processor`).
Status codes: 200 accepted (or duplicate), 400
malformed JSON, 403 bad signature / stale timestamp, 404 unknown channel,
413 too large, 415 wrong content type, 422 invalid fields, 429 rate
limited (forms), 503 storage down (nothing was accepted).
"""

from __future__ import annotations

import hmac
from typing import Any, AsyncIterator

import structlog
from aiohttp import web

from frontdesk.channels.webhooks import forms
from frontdesk.channels.webhooks.chat import parse_chat_message
from frontdesk.channels.webhooks.checks import (
    Refusal, invalid_fields, parse_json, read_body, refusals, require_content_type, require_timestamped_signature,
)
from frontdesk.channels.webhooks.config import WebhookConfig
from frontdesk.ingest.intake import (
    PayloadWriter, RecentPayloads, StoredPayload, body_digest, store_payload,
)
from frontdesk.channels.webhooks.messenger import entry_page_ids
from frontdesk.channels.webhooks.processing import HANDLERS, IngestMessages
from frontdesk.channels.webhooks.processor import PayloadProcessor
from frontdesk.channels.webhooks.ratelimit import SlidingWindowLimiter
from frontdesk.channels.webhooks.signing import HUB_SIGNATURE_HEADER, TIMESTAMP_HEADER, hub_signature_matches
from frontdesk.channels.webhooks.sync import sync_webhook_channels
from frontdesk.channels.webhooks.validation import InvalidFields
from frontdesk.model.channels import CHAT, FORM, MESSENGER
from frontdesk.storage.database import StorageUnavailable
from frontdesk.ingest.context import IngestContext

log = structlog.get_logger(__name__)

PROCESSOR = web.AppKey("webhook_processor", PayloadProcessor)
CONFIG = web.AppKey("webhook_config", WebhookConfig)
CONTEXT = web.AppKey("webhook_context", IngestContext)
LIMITER = web.AppKey("webhook_rate_limiter", SlidingWindowLimiter)
WRITER = web.AppKey("webhook_payload_writer", PayloadWriter)
RECENT = web.AppKey("webhook_recent_payloads", RecentPayloads)


def answer(status: str, payload_id: int) -> web.Response:
    # Built by hand: this is the hot path of every redelivery.
    return web.Response(body=b'{"status": "%s", "id": %d}' % (status.encode(), payload_id),
                        content_type="application/json")


def duplicate(stored: StoredPayload) -> web.Response:
    return answer("duplicate", stored.id)


def known_body(request: web.Request, channel: str, digest: str) -> StoredPayload | None:
    """A verified body this process already committed: answered before any parsing."""
    payload_id = request.app[RECENT].get(channel, digest)
    return StoredPayload(payload_id, duplicate=True) if payload_id is not None else None


async def accept(request: web.Request, *, channel: str, route: str, raw: bytes, headers: dict[str, Any],
                 digest: str | None = None) -> web.Response:
    """Store durably, then answer 200 and queue processing; 503 when storage is down."""
    ctx, processor = request.app[CONTEXT], request.app[PROCESSOR]
    try:
        stored = await store_payload(ctx, channel=channel, route=route, raw=raw, headers=headers,
                                     writer=request.app[WRITER], recent=request.app[RECENT], digest=digest)
    except StorageUnavailable as error:
        log.warning("webhook.storage_unavailable", channel=channel, error=str(error))
        raise Refusal(503, "storage_unavailable", "storage is unavailable; nothing was accepted, retry later",
                      retry_after=30) from None
    if stored.duplicate:
        return duplicate(stored)
    processor.submit(stored.id)
    return answer("accepted", stored.id)


# --- Messenger -----------------------------------------------------------------------------

async def messenger_verify(request: web.Request) -> web.Response:
    """Meta's subscription check: echo ``hub.challenge`` for our verify token, else 403."""
    config = request.app[CONFIG]
    mode = request.query.get("hub.mode")
    token = request.query.get("hub.verify_token", "")
    challenge = request.query.get("hub.challenge", "")
    known = False
    for page in config.messenger:
        known |= hmac.compare_digest(page.verify_token.reveal().encode(), token.encode())
    if mode != "subscribe" or not known or not challenge:
        raise Refusal(403, "verification_failed", "hub.mode or hub.verify_token is wrong")
    return web.Response(text=challenge, content_type="text/plain")


async def messenger_receive(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    if not config.messenger:
        raise Refusal(404, "unknown_channel", "no Messenger Page is configured")
    raw = await read_body(request, config.max_body_size)
    require_content_type(request, ("application/json",))
    signature = request.headers.get(HUB_SIGNATURE_HEADER)
    verified = [p.page_id for p in config.messenger if hub_signature_matches(raw, signature, p.app_secrets)]
    if not verified:
        raise Refusal(403, "signature_invalid", f"{HUB_SIGNATURE_HEADER} is missing or does not match")
    digest = body_digest(raw)
    if (seen := known_body(request, MESSENGER, digest)) is not None:  # Meta redelivering
        return duplicate(seen)
    data = parse_json(raw)
    if isinstance(data, dict) and data.get("object") == "page":
        pages = entry_page_ids(data)
        if pages and not pages & set(verified):
            raise Refusal(404, "unknown_channel", "the payload names no Page configured with this app secret",
                          pages=sorted(pages))
    return await accept(request, channel=MESSENGER, route="messenger", raw=raw, digest=digest,
                        headers={"verified_pages": verified})


# --- Live chat -------------------------------------------------------------------------------

async def chat_receive(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    slug = request.match_info["channel"]
    channel = config.chat_channel(slug)
    if channel is None:
        raise Refusal(404, "unknown_channel", f"no chat channel {slug!r}")
    raw = await read_body(request, config.max_body_size)
    require_content_type(request, ("application/json",))
    require_timestamped_signature(request, raw, channel.secret, channel.max_skew_seconds)
    try:
        parse_chat_message(parse_json(raw))
    except InvalidFields as invalid:
        raise invalid_fields(invalid) from None
    return await accept(request, channel=CHAT, route=slug, raw=raw,
                        headers={"timestamp": request.headers.get(TIMESTAMP_HEADER)})


# --- Web forms -------------------------------------------------------------------------------

async def form_receive(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    slug = request.match_info["form"]
    form = config.form(slug)
    if form is None:
        raise Refusal(404, "unknown_channel", f"no form {slug!r}")
    if form.rate_limit is not None:
        # Behind a reverse proxy request.remote is the proxy unless aiohttp is
        # told to trust X-Forwarded-For; see docs/channels-webhooks.md.
        wait = request.app[LIMITER].allow((slug, request.remote or "?"), form.rate_limit)
        if wait is not None:
            raise Refusal(429, "rate_limited", "too many submissions from this address", retry_after=int(wait) + 1)
    raw = await read_body(request, config.max_body_size)
    content_type = require_content_type(request, (*forms.JSON_TYPES, forms.URLENCODED))
    if form.secret:
        require_timestamped_signature(request, raw, form.secret, form.max_skew_seconds)
    try:
        data = forms.decode_body(raw, content_type)
    except (UnicodeDecodeError, ValueError) as error:
        code = "malformed_json" if content_type in forms.JSON_TYPES else "malformed_body"
        raise Refusal(400, code, f"the body cannot be decoded: {error}") from None
    try:
        await forms.check_property_values(request.app[CONTEXT].sessions, form, forms.map_submission(form, data))
    except InvalidFields as invalid:
        raise invalid_fields(invalid) from None
    return await accept(request, channel=FORM, route=slug, raw=raw,
                        headers={"content_type": content_type, "remote": request.remote})


# --- The application -------------------------------------------------------------------------

def create_webhook_app(ctx: IngestContext, config: WebhookConfig, *, ingest: IngestMessages | None = None,
                       sync_channels: bool = True, recover_pending: bool = True) -> web.Application:
    """The sub-application to mount at ``/webhooks/``.

    On start-up it mirrors the configured channels into the database,
    queues every payload still pending from before, and starts the worker
    that processes stored payloads in batches through ``ingest`` (by
    default :func:`ingest.pipeline.ingest_messages`).
    """
    if ingest is None:
        from frontdesk.ingest.pipeline import ingest_messages

        ingest = ingest_messages
    app = web.Application(middlewares=[refusals])
    app[CONFIG] = config
    app[CONTEXT] = ctx
    app[LIMITER] = SlidingWindowLimiter()
    app[WRITER] = PayloadWriter(ctx)
    app[PROCESSOR] = PayloadProcessor(ctx, config, HANDLERS, ingest, writer=app[WRITER])
    app[RECENT] = RecentPayloads()

    async def processing(app: web.Application) -> AsyncIterator[None]:
        if sync_channels:
            await sync_webhook_channels(ctx.sessions, config)
        await app[PROCESSOR].start(recover=recover_pending)
        await app[WRITER].start()
        yield
        await app[WRITER].stop()
        await app[PROCESSOR].stop()

    app.cleanup_ctx.append(processing)
    app.router.add_get("/messenger", messenger_verify)
    app.router.add_post("/messenger", messenger_receive)
    app.router.add_post("/chat/{channel}", chat_receive)
    app.router.add_post("/forms/{form}", form_receive)
    return app


def openapi_paths() -> dict[str, Any]:
    """OpenAPI 3 ``paths`` and ``components.schemas`` for the webhook endpoints."""
    from frontdesk.channels.webhooks.openapi import OPENAPI

    return OPENAPI
