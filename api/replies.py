"""Agents reply to a ticket's contact: ``POST /api/v1/tickets/{id}/replies``.

The reply goes out on the ticket's channel (email, or Messenger / chat
through :mod:`outbound.dispatch`), recorded as an outbound message plus one
delivery in the same transaction as its ``message.sent`` event (actor
agent, ``from_ticket: true``), which the "email sent to a customer" status
trigger acts on.  A client may send ``Idempotency-Key``: a retried request
with the same key returns the first reply instead of sending twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.api.auth import Principal, principal_of
from frontdesk.api.errors import ApiError
from frontdesk.api.keys import BLOBS, SESSIONS, SETTINGS
from frontdesk.api.openapi import (
    AUTH_ERRORS, answer_object, closed_object, error_response, json_request, json_response, text,
)
from frontdesk.api.parameters import ID_SCHEMA, path_id
from frontdesk.api.request_body import json_body
from frontdesk.events import AGENT, Actor, MessageSent
from frontdesk.model import Contact, ContactIdentity, Conversation, Delivery, Message, Ticket
from frontdesk.model.channels import CHAT, EMAIL, FORM, MESSENGER
from frontdesk.model.messages import OUTBOUND
from frontdesk.outbound.deliveries import find_delivery, queue_delivery
from frontdesk.outbound.email.outgoing import queue_ticket_email
from frontdesk.outbound.inserts import Insert, compose_reply, parse_inserts, render_inserts
from frontdesk.outbox import record_events
from frontdesk.tickets.access import visible_ticket
from frontdesk.tickets.header_fields import email_address, header_text

routes = web.RouteTableDef()

# Async callbacks the daemon registers (the embedded runner's and the
# delivery loop's ``wake_async``), run after a commit that wrote events and
# queued deliveries; pass IngestContext.on_commit's list to share them.
AFTER_COMMIT = web.AppKey("after_commit", list)

MAX_TEXT = 100_000
MAX_KEY = 100


async def run_after_commit(app: web.Application) -> None:
    callbacks: list[Callable[[], Awaitable[None]]] = app.get(AFTER_COMMIT, [])
    for callback in callbacks:
        await callback()


@dataclass(frozen=True)
class ReplyFields:
    text: str | None
    html: str | None
    subject: str | None
    cc: tuple[str, ...]
    inserts: tuple[Insert, ...]


def _reply_fields(body: dict[str, Any]) -> ReplyFields:
    inserts = parse_inserts(body.get("insert"))
    text = body.get("text")
    if text is not None or not inserts:  # the inserted content alone may make the whole reply
        if not isinstance(text, str) or not text.strip():
            raise ApiError(422, "field_required", "'text' is required (or 'insert')", field="text")
        if len(text) > MAX_TEXT:
            raise ApiError(422, "field_too_long", f"'text' is longer than {MAX_TEXT} characters", field="text")
    html = body.get("html")
    if html is not None and (not isinstance(html, str) or len(html) > MAX_TEXT):
        raise ApiError(422, "field_invalid", "'html' must be a string", field="html")
    subject = body.get("subject")
    cc = body.get("cc") or []
    if subject is not None and not isinstance(subject, str):
        raise ApiError(422, "field_invalid", "'subject' must be a string", field="subject")
    if not isinstance(cc, list) or not all(isinstance(a, str) for a in cc):
        raise ApiError(422, "field_invalid", "'cc' must be a list of addresses", field="cc")
    if subject is not None:
        header_text(subject, "subject")
    addresses = tuple(email_address(a, "cc", display_name=True) for a in cc)
    return ReplyFields(text, html, subject, addresses, inserts)


def _idempotency_key(request: web.Request, ticket_id: int) -> str:
    given = request.headers.get("Idempotency-Key")
    if given is None:
        return f"reply:{ticket_id}:{uuid.uuid4()}"
    if not given.strip() or len(given) > MAX_KEY or any(c in given for c in "\r\n"):
        raise ApiError(400, "invalid_idempotency_key", f"Idempotency-Key must be 1-{MAX_KEY} characters")
    return f"reply:{ticket_id}:{given.strip()}"


def _answer(delivery: Delivery, message: Message | None, status: int) -> web.Response:
    return web.json_response({
        "message_id": delivery.message_id,
        "delivery_id": delivery.id,
        "channel": delivery.channel,
        "recipient": delivery.recipient,
        "state": delivery.state,
        "external_id": message.external_id if message else None,
        "subject": message.subject if message else None,
    }, status=status)


async def _queue_chat_reply(session: AsyncSession, ticket: Ticket, text: str, key: str,
                            author_user_id: int | None) -> tuple[Message, Delivery]:
    """Messenger / chat: one message on the ticket's conversation, delivered by the channel's deliverer."""
    conversation = None
    if ticket.origin_conversation_id is not None:
        conversation = await session.get(Conversation, ticket.origin_conversation_id)
    identity = None
    if ticket.contact_id is not None and ticket.channel_id is not None:
        identity = await session.scalar(select(ContactIdentity).where(
            ContactIdentity.contact_id == ticket.contact_id, ContactIdentity.channel_id == ticket.channel_id))
    if identity is None:
        raise ApiError(409, "no_channel_identity",
                       f"the contact has no {ticket.source_channel} identity to reply to")
    message = Message(
        conversation_id=conversation.id if conversation else None, ticket_id=ticket.id, direction=OUTBOUND,
        channel=ticket.source_channel, channel_id=ticket.channel_id, text_body=text, author_kind=AGENT,
        author_user_id=author_user_id, delivery_state="queued", source="outbound",
    )
    session.add(message)
    await session.flush()
    delivery = queue_delivery(
        session, idempotency_key=key, channel=ticket.source_channel, recipient=identity.external_id,
        kind="agent_reply", ticket_id=ticket.id, message_id=message.id,
        payload={"text": text, "channel_id": ticket.channel_id,
                 "thread_key": conversation.thread_key if conversation else None},
    )
    await session.flush()
    return message, delivery


async def _reply(app: web.Application, principal: Principal, ticket_id: int, key: str,
                 fields: ReplyFields) -> tuple[Delivery, Message | None, bool]:
    """Record and queue the reply; returns (delivery, message, created)."""
    async with app[SESSIONS].begin() as session:
        ticket = await visible_ticket(session, principal, ticket_id)
        existing = await find_delivery(session, key)
        if existing is not None:
            message = await session.get(Message, existing.message_id) if existing.message_id else None
            return existing, message, False
        parts = await render_inserts(session, principal, ticket, fields.inserts)
        text, html = compose_reply(fields.text, fields.html, parts)
        if not text.strip():
            raise ApiError(422, "field_required", "the reply is empty once its inserts are rendered", field="text")
        if len(text) > MAX_TEXT or len(html or "") > MAX_TEXT:
            raise ApiError(422, "field_too_long", f"the reply is longer than {MAX_TEXT} characters", field="text")
        subject, cc = fields.subject, fields.cc
        if ticket.source_channel in (MESSENGER, CHAT):
            message, delivery = await _queue_chat_reply(session, ticket, text, key, principal.user_id)
        elif ticket.source_channel in (EMAIL, FORM):
            contact = await session.get(Contact, ticket.contact_id) if ticket.contact_id else None
            if contact is None or not contact.email:
                raise ApiError(409, "contact_has_no_email", "the ticket's contact has no email address")
            message, delivery = await queue_ticket_email(
                session, app[BLOBS], app[SETTINGS], ticket=ticket, to=contact.email, subject=subject, text=text,
                html=html, cc=cc, idempotency_key=key, kind="agent_reply", author_kind=AGENT,
                author_user_id=principal.user_id,
            )
        else:
            raise ApiError(409, "channel_cannot_reply", f"cannot reply on channel {ticket.source_channel!r}")
        await record_events(session, MessageSent(
            ticket_id=ticket.id, actor=Actor.agent(principal.user_id),
            message_id=message.id, conversation_id=message.conversation_id, channel=message.channel,
            direction=OUTBOUND, from_ticket=True, automated=False, delivery_id=delivery.id,
        ))
    return delivery, message, True


@routes.post(r"/api/v1/tickets/{ticket_id:\d+}/replies")
async def post_reply(request: web.Request) -> web.Response:
    principal = principal_of(request)
    ticket_id = path_id(request, "ticket_id")
    fields = _reply_fields(await json_body(request))
    key = _idempotency_key(request, ticket_id)
    app = request.app
    try:
        delivery, message, created = await _reply(app, principal, ticket_id, key, fields)
    except IntegrityError:
        # The same Idempotency-Key raced in twice: the other request won.
        async with app[SESSIONS]() as session:
            delivery = await find_delivery(session, key)
            if delivery is None:
                raise
            message = await session.get(Message, delivery.message_id) if delivery.message_id else None
        return _answer(delivery, message, 200)
    if not created:
        return _answer(delivery, message, 200)
    await run_after_commit(app)
    return _answer(delivery, message, 201)


_REPLY = answer_object({
    "message_id": {"type": ["integer", "null"]}, "delivery_id": {"type": "integer"}, "channel": {"type": "string"},
    "recipient": {"type": "string"}, "state": {"type": "string"}, "external_id": {"type": ["string", "null"]},
    "subject": {"type": ["string", "null"]}}, "message_id", "delivery_id", "channel", "recipient", "state")

OPENAPI: dict[str, Any] = {
    "paths": {
        "/api/v1/tickets/{ticket_id}/replies": {
            "post": {
                "summary": "Reply to the ticket's contact on the ticket's channel",
                "operationId": "replyToTicket",
                "tags": ["tickets"],
                "description": (
                    "Email tickets: an email to the contact, threaded on the customer's conversation, "
                    "with [#id] in the subject. Messenger / chat tickets: a message on that channel. "
                    "Emits message.sent (from_ticket: true), which may move the ticket to the pipeline's "
                    "'email sent' status. Send Idempotency-Key to make retries safe."
                ),
                "parameters": [
                    {"name": "ticket_id", "in": "path", "required": True, "schema": {"type": "integer"}},
                    {"name": "Idempotency-Key", "in": "header", "required": False,
                     "schema": {"type": "string", "maxLength": MAX_KEY}},
                ],
                "requestBody": json_request(closed_object({
                    "text": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT, "pattern": r"\S",
                             "x-error": {"code": "field_required"}},
                    "html": {"type": ["string", "null"], "maxLength": MAX_TEXT},
                    "subject": {"type": ["string", "null"], "maxLength": 998,
                                "description": "default: Re: <customer's subject>"},
                    "cc": {"type": ["array", "null"], "items": {"type": "string", "maxLength": 320}},
                    "insert": {"type": "array", "maxItems": 20, "description": (
                        "Snippets and templates rendered for the ticket and appended in order; with it, "
                        "`text` may be left out."),
                        "items": {"oneOf": [
                            closed_object({"snippet": ID_SCHEMA}, "snippet"),
                            closed_object({"template": text(100)}, "template")],
                            "x-error": {"code": "insert_invalid"}}},
                }, anyOf=[{"required": ["text"]}, {"required": ["insert"]}])),
                "responses": {
                    "201": json_response("Queued for delivery.", _REPLY),
                    "200": json_response("A reply with this Idempotency-Key already exists.", _REPLY),
                    "404": error_response("No such ticket, or not visible to you."),
                    "409": error_response("The contact cannot be reached on this channel."),
                    "422": error_response("Invalid fields, or a line break in a header value; an unknown "
                                          "snippet or template to insert (insert_not_found, insert_invalid) "
                                          "or one that does not render (template_render_error)."),
                    **AUTH_ERRORS,
                },
            }
        }
    }
}
