"""Request checks at the webhook edge: size, content type, signature and JSON, each failure a refusal.

A :class:`Refusal` is answered (by the :func:`refusals` middleware) with an
error body and has no side effect; nothing is stored before every check of
the request has passed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from aiohttp import web

from frontdesk.channels.webhooks import validation
from frontdesk.channels.webhooks.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureRefused, check_timestamped
from frontdesk.channels.webhooks.validation import InvalidFields
from frontdesk.settings import Secret

log = structlog.get_logger(__name__)


class Refusal(Exception):
    """A request we answer with an error and no side effect."""

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details

    def response(self) -> web.Response:
        body = {"error": {"code": self.code, "message": self.message, **self.details}}
        headers = {"Retry-After": str(self.details["retry_after"])} if "retry_after" in self.details else None
        return web.json_response(body, status=self.status, headers=headers)


@web.middleware
async def refusals(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except Refusal as refusal:
        log.info("webhook.refused", path=request.path, status=refusal.status, code=refusal.code)
        return refusal.response()


async def read_body(request: web.Request, limit: int) -> bytes:
    """The raw body, refusing (413) anything over ``limit`` without reading it all."""
    too_large = Refusal(413, "body_too_large", f"the body exceeds {limit} bytes")
    if request.content_length is not None:
        if request.content_length > limit:
            raise too_large
        try:
            return await request.content.readexactly(request.content_length)
        except asyncio.IncompleteReadError:
            raise Refusal(400, "incomplete_body", "the body is shorter than its Content-Length") from None
    body = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


def require_content_type(request: web.Request, allowed: tuple[str, ...]) -> str:
    if request.content_type not in allowed:
        raise Refusal(415, "unsupported_media_type", f"Content-Type must be {' or '.join(allowed)}")
    return request.content_type


def parse_json(raw: bytes) -> Any:
    """The body decoded once (400 when it is not JSON); the decoded value travels on."""
    try:
        return validation.decode_json(raw)
    except ValueError as error:
        raise Refusal(400, "malformed_json", f"the body is not valid JSON: {error}") from None


def require_timestamped_signature(request: web.Request, raw: bytes, secret: Secret, max_skew_seconds: int) -> None:
    try:
        check_timestamped(raw, request.headers.get(TIMESTAMP_HEADER), request.headers.get(SIGNATURE_HEADER),
                          secret, max_skew_seconds)
    except SignatureRefused as refused:
        raise Refusal(403, refused.code, refused.message) from None


def invalid_fields(invalid: InvalidFields) -> Refusal:
    return Refusal(422, "invalid_fields", "some fields are missing or invalid", fields=invalid.errors)
