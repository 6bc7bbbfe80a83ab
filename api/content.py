"""Stored bytes: a message's raw source and attachment downloads, checked against the ticket's visibility.

A message or attachment is visible exactly when its ticket is.  Messages on
no ticket (screened out, or from a channel that does not create tickets)
are shown to super admins only.  Downloads are always served as
attachments with ``nosniff``, so an HTML file a customer sent can never run
as a page of this origin.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.api.auth import principal_of
from frontdesk.api.errors import ApiError, not_found
from frontdesk.api.keys import BLOBS, SESSIONS
from frontdesk.api.openapi import AUTH_ERRORS, error_response
from frontdesk.api.parameters import path_id
from frontdesk.model import Attachment, Message
from frontdesk.model.channels import EMAIL
from frontdesk.tickets.access import visible_ticket
from frontdesk.tickets.errors import NotFound

routes = web.RouteTableDef()


async def _visible_message(request: web.Request, session: AsyncSession, message_id: int) -> Message:
    message = await session.get(Message, message_id)
    if message is None:
        raise not_found("message")
    principal = principal_of(request)
    if message.ticket_id is None:
        if not principal.is_super_admin:
            raise not_found("message")
        return message
    try:
        await visible_ticket(session, principal, message.ticket_id)
    except NotFound:
        raise not_found("message") from None
    return message


def _content_disposition(filename: str | None, fallback: str) -> str:
    name = (filename or fallback).replace("\r", " ").replace("\n", " ")
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "'").replace("\\", "_")
    # RFC 6266: a plain fallback plus the exact UTF-8 name for clients that read it.
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def _blob_response(request: web.Request, digest: str, content_type: str, disposition: str) -> web.StreamResponse:
    path = request.app[BLOBS].path_for(digest)
    if not path.is_file():
        raise ApiError(410, "blob_missing", "the stored bytes are missing from blob storage")
    # Streamed from disk: attachments may be as large as the largest accepted message.
    return web.FileResponse(path, headers={
        "Content-Type": content_type,
        "Content-Disposition": disposition,
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox",
    })


@routes.get(r"/api/v1/messages/{message_id:\d+}/raw")
async def raw_message(request: web.Request) -> web.StreamResponse:
    async with request.app[SESSIONS]() as session:
        message = await _visible_message(request, session, path_id(request, "message_id"))
    if not message.raw_blob:
        raise not_found("raw source of this message")
    # Email is kept as the exact RFC 5322 bytes; webhooks as the JSON body they posted.
    content_type = "message/rfc822" if message.channel == EMAIL else "application/json"
    extension = "eml" if message.channel == EMAIL else "json"
    return _blob_response(
        request, message.raw_blob, content_type,
        _content_disposition(None, f"message-{message.id}.{extension}"),
    )


@routes.get(r"/api/v1/attachments/{attachment_id:\d+}")
async def download_attachment(request: web.Request) -> web.StreamResponse:
    async with request.app[SESSIONS]() as session:
        attachment = await session.get(Attachment, path_id(request, "attachment_id"))
        if attachment is None:
            raise not_found("attachment")
        try:
            await _visible_message(request, session, attachment.message_id)
        except ApiError:
            raise not_found("attachment") from None
    if not attachment.blob:
        raise ApiError(404, "attachment_not_stored", "this attachment is a remote link, not stored bytes",
                       remote_url=attachment.url)
    return _blob_response(
        request, attachment.blob, attachment.content_type or "application/octet-stream",
        _content_disposition(attachment.filename, f"attachment-{attachment.id}"),
    )


def _binary(description: str, media: str) -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": {"type": "string", "contentMediaType": media}}}}


OPENAPI: dict[str, Any] = {
    "paths": {
        "/api/v1/messages/{message_id}/raw": {
            "get": {
                "summary": "The message exactly as received (RFC 5322 for email, the JSON body for webhooks)",
                "operationId": "getRawMessage",
                "tags": ["tickets"],
                "parameters": [{"name": "message_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "responses": {
                    "200": {"description": "The raw bytes.", "content": {
                        "message/rfc822": {"schema": {"type": "string"}},
                        "application/json": {"schema": {"type": "string"}}}},
                    "404": error_response("No such message, no raw source, or the caller may not see its ticket."),
                    "410": error_response("The bytes are missing from blob storage."),
                    **AUTH_ERRORS,
                },
            }
        },
        "/api/v1/attachments/{attachment_id}": {
            "get": {
                "summary": "Download an attachment",
                "operationId": "downloadAttachment",
                "tags": ["tickets"],
                "parameters": [{"name": "attachment_id", "in": "path", "required": True,
                                "schema": {"type": "integer"}}],
                "responses": {
                    "200": _binary("The attachment, served as a download with its own content type.", "*/*"),
                    "404": error_response("No such attachment, a remote-only one, or the caller may not see its ticket."),
                    "410": error_response("The bytes are missing from blob storage."),
                    **AUTH_ERRORS,
                },
            }
        },
    }
}
