"""Inboxes and conversations: list and create inboxes, read a conversation, move it to another inbox.

``GET /api/v1/inboxes`` for every user (they pick where to look);
``POST /api/v1/inboxes`` for super admins.  ``GET
/api/v1/conversations/{id}`` follows its ticket's access (a conversation
without a ticket is for those who may move conversations).  ``POST
/api/v1/conversations/{id}/move`` needs super admin or the account access
permission (403), then the same visibility (404).  The rules are
:mod:`frontdesk.tickets.inboxes`'.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.api.auth import principal_of, require_account_access, require_super_admin
from frontdesk.api.errors import ApiError
from frontdesk.api.keys import SESSIONS
from frontdesk.api.openapi import AUTH_ERRORS, error_response
from frontdesk.api.parameters import ID_SCHEMA, path_id
from frontdesk.api.replies import run_after_commit
from frontdesk.api.request_body import int_field, json_body, text_field
from frontdesk.model import Conversation, ConversationMove, Inbox
from frontdesk.tickets.access import Principal
from frontdesk.tickets.audit import record_audit
from frontdesk.tickets.errors import NotFound
from frontdesk.tickets.inboxes import COMMENT_LIMIT, NAME_LIMIT, create_inbox, move_conversation, visible_conversation
from frontdesk.tickets.pipelines import valid_internal_name

routes = web.RouteTableDef()


def inbox_json(inbox: Inbox) -> dict[str, Any]:
    return {"id": inbox.id, "key": inbox.key, "name": inbox.name, "kind": inbox.kind}


def move_json(move: ConversationMove) -> dict[str, Any]:
    return {"id": move.id, "from_inbox_id": move.from_inbox_id, "to_inbox_id": move.to_inbox_id,
            "owner_id": move.owner_id, "comment": move.comment, "actor_user_id": move.actor_user_id,
            "created_at": move.created_at.isoformat()}


async def conversation_json(session: AsyncSession, conversation: Conversation) -> dict[str, Any]:
    moves = (await session.scalars(select(ConversationMove).where(ConversationMove.conversation_id == conversation.id)
                                   .order_by(ConversationMove.id))).all()
    return {"id": conversation.id, "ticket_id": conversation.ticket_id, "inbox_id": conversation.inbox_id,
            "owner_id": conversation.owner_id, "channel": conversation.channel,
            "contact_id": conversation.contact_id, "created_at": conversation.created_at.isoformat(),
            "moves": [move_json(m) for m in moves]}


async def _readable(session: AsyncSession, principal: Principal, conversation_id: int) -> Conversation:
    conversation = await visible_conversation(session, principal, conversation_id)
    if conversation.ticket_id is None and not principal.can_move_conversations:
        raise NotFound("conversation")
    return conversation


@routes.get("/api/v1/inboxes")
async def list_inboxes(request: web.Request) -> web.Response:
    principal_of(request)
    async with request.app[SESSIONS]() as session:
        inboxes = (await session.scalars(select(Inbox).order_by(Inbox.id))).all()
    return web.json_response({"inboxes": [inbox_json(i) for i in inboxes]})


@routes.post("/api/v1/inboxes")
async def add_inbox(request: web.Request) -> web.Response:
    principal = require_super_admin(request)
    body = await json_body(request)
    name = text_field(body, "name", max_length=NAME_LIMIT) or ""
    key = text_field(body, "key", required=False, max_length=80)
    if key is not None and not valid_internal_name(key):
        raise ApiError(422, "field_invalid", "'key' must be lower-case letters, digits and _", field="key")
    async with request.app[SESSIONS].begin() as session:
        inbox = await create_inbox(session, name, key=key)
        record_audit(session, principal, "inbox.created", "inbox", inbox.id, after=inbox_json(inbox))
        answer = inbox_json(inbox)
    return web.json_response(answer, status=201)


@routes.get(r"/api/v1/conversations/{conversation_id:\d+}")
async def get_conversation(request: web.Request) -> web.Response:
    async with request.app[SESSIONS]() as session:
        conversation = await _readable(session, principal_of(request), path_id(request, "conversation_id"))
        answer = await conversation_json(session, conversation)
    return web.json_response(answer)


@routes.post(r"/api/v1/conversations/{conversation_id:\d+}/move")
async def move(request: web.Request) -> web.Response:
    principal = require_account_access(request)
    body = await json_body(request)
    inbox_id = int_field(body, "inbox_id", required=True)
    owner_id = int_field(body, "owner_id")
    comment = body.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise ApiError(422, "field_invalid", "'comment' must be a string", field="comment")
    async with request.app[SESSIONS].begin() as session:
        await move_conversation(session, principal, path_id(request, "conversation_id"), inbox_id or 0,
                                owner_id=owner_id, reassign="owner_id" in body, comment=comment)
        conversation = await session.get_one(Conversation, path_id(request, "conversation_id"))
        answer = await conversation_json(session, conversation)
    await run_after_commit(request.app)
    return web.json_response(answer)


# --- OpenAPI ------------------------------------------------------------------

_INBOX = {"type": "object", "required": ["id", "key", "name", "kind"], "properties": {
    "id": {"type": "integer"}, "key": {"type": "string"}, "name": {"type": "string"},
    "kind": {"type": "string", "enum": ["help_desk", "conversations"]}}}
_NULLABLE_ID = {"type": ["integer", "null"]}
_CONVERSATION = {"type": "object", "required": ["id", "ticket_id", "inbox_id", "owner_id", "moves"], "properties": {
    "id": {"type": "integer"}, "ticket_id": _NULLABLE_ID, "inbox_id": _NULLABLE_ID, "owner_id": _NULLABLE_ID,
    "channel": {"type": "string"}, "contact_id": _NULLABLE_ID, "created_at": {"type": "string", "format": "date-time"},
    "moves": {"type": "array", "items": {"type": "object", "properties": {
        "id": {"type": "integer"}, "from_inbox_id": _NULLABLE_ID, "to_inbox_id": _NULLABLE_ID,
        "owner_id": _NULLABLE_ID, "comment": {"type": ["string", "null"], "description": "internal note"},
        "actor_user_id": _NULLABLE_ID, "created_at": {"type": "string", "format": "date-time"}}}}}}
_CONVERSATION_PATH = [{"name": "conversation_id", "in": "path", "required": True, "schema": ID_SCHEMA}]


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


OPENAPI: dict[str, Any] = {"paths": {
    "/api/v1/inboxes": {
        "get": {"summary": "The help desk and the conversations inboxes", "operationId": "listInboxes",
                "tags": ["inboxes"],
                "responses": {"200": _json({"type": "object", "required": ["inboxes"], "properties": {
                    "inboxes": {"type": "array", "items": _INBOX}}}, "Every inbox, oldest first."), **AUTH_ERRORS}},
        "post": {"summary": "Create a conversations inbox (super admin)", "operationId": "createInbox",
                 "tags": ["inboxes"],
                 "requestBody": {"required": True, "content": {"application/json": {"schema": {
                     "type": "object", "required": ["name"], "additionalProperties": False, "properties": {
                         "name": {"type": "string", "maxLength": NAME_LIMIT},
                         "key": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_]{0,79}$",
                                 "description": "stable name for config files; made from the name if absent"}}}}}},
                 "responses": {"201": _json(_INBOX, "The new inbox."),
                               "403": error_response("super_admin_required."),
                               "409": error_response("inbox_name_taken or inbox_key_taken."),
                               "422": error_response("name or key missing or invalid; error.field names it."),
                               **AUTH_ERRORS}},
    },
    "/api/v1/conversations/{conversation_id}": {"get": {
        "summary": "A conversation: its inbox, owner, ticket and moves (with their comments)",
        "operationId": "getConversation", "tags": ["inboxes"], "parameters": _CONVERSATION_PATH,
        "responses": {"200": _json(_CONVERSATION, "The conversation."),
                      "404": error_response("No such conversation, or its ticket is not visible to you (one without "
                                            "a ticket: only for those who may move conversations)."),
                      **AUTH_ERRORS}}},
    "/api/v1/conversations/{conversation_id}/move": {"post": {
        "summary": "Move a conversation to another inbox, optionally reassigning it and leaving a comment",
        "operationId": "moveConversation", "tags": ["inboxes"], "parameters": _CONVERSATION_PATH,
        "description": (
            "Super admins and users with account access only. Moving out of the help desk leaves the ticket "
            "where it is; moving into it gives a conversation without a ticket one. owner_id (null: nobody) "
            "reassigns the conversation, and its ticket when the target is the help desk. The comment is kept "
            "with the move as an internal note. Emits conversation.moved; audited."),
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["inbox_id"], "additionalProperties": False, "properties": {
                "inbox_id": ID_SCHEMA, "owner_id": {"type": ["integer", "null"]},
                "comment": {"type": ["string", "null"], "maxLength": COMMENT_LIMIT}}}}}},
        "responses": {"200": _json(_CONVERSATION, "The conversation after the move."),
                      "403": error_response("account_access_required."),
                      "404": error_response("No such conversation, or its ticket is not visible to you."),
                      "409": error_response("already_in_inbox, or no_open_status for the new ticket."),
                      "422": error_response("unknown_inbox, unknown_user, a comment too long, unknown_fields, or "
                                            "the new ticket's required stage properties."),
                      **AUTH_ERRORS}}},
}}
