"""Internal comments on a ticket and the ticket's timeline (messages and comments in time order).

``POST/GET /api/v1/tickets/{id}/comments``, ``PATCH/DELETE
/api/v1/tickets/{id}/comments/{comment_id}`` and ``GET
/api/v1/tickets/{id}/timeline``.  The rules (mentions, authorship, events,
audit) are :mod:`tickets.comments`; a ticket the caller cannot see is 404
on every one of them.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

from aiohttp import web
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.api.auth import principal_of
from frontdesk.api.keys import SESSIONS
from frontdesk.api.openapi import AUTH_ERRORS, error_response
from frontdesk.api.parameters import ID_SCHEMA, MAX_ID, bad_parameter, path_id, query_int
from frontdesk.api.replies import run_after_commit
from frontdesk.api.request_body import json_body
from frontdesk.api.tickets import message_json
from frontdesk.model import Attachment, Comment, Message, User
from frontdesk.tickets.access import visible_ticket
from frontdesk.tickets.comments import MAX_BODY, add_comment, authored_comment, delete_comment, edit_comment

routes = web.RouteTableDef()

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
_TICKET = r"/api/v1/tickets/{ticket_id:\d+}"


async def _people(session: AsyncSession, comments: Iterable[Comment]) -> dict[int, User]:
    ids = {uid for c in comments for uid in (c.mentions or [])}
    if not ids:
        return {}
    return {u.id: u for u in (await session.scalars(select(User).where(User.id.in_(ids)))).all()}


def comment_json(comment: Comment, people: dict[int, User]) -> dict[str, Any]:
    return {
        "id": comment.id,
        "ticket_id": comment.ticket_id,
        "author_user_id": comment.author_user_id,
        "body": comment.body,
        "mentions": [{"id": uid, "name": people[uid].name if uid in people else None,
                      "email": people[uid].email if uid in people else None} for uid in comment.mentions or []],
        "created_at": comment.created_at.isoformat(),
        "updated_at": comment.updated_at.isoformat(),
        "edited": comment.updated_at != comment.created_at,
    }


async def _one_comment_json(session: AsyncSession, comment: Comment) -> dict[str, Any]:
    return comment_json(comment, await _people(session, [comment]))


@routes.post(_TICKET + "/comments")
async def post_comment(request: web.Request) -> web.Response:
    principal = principal_of(request)
    ticket_id = path_id(request, "ticket_id")
    body = await json_body(request)
    async with request.app[SESSIONS].begin() as session:
        ticket = await visible_ticket(session, principal, ticket_id)
        comment = await add_comment(session, principal, ticket, body.get("body"))
        answer = await _one_comment_json(session, comment)
    await run_after_commit(request.app)
    return web.json_response(answer, status=201)


@routes.get(_TICKET + "/comments")
async def list_comments(request: web.Request) -> web.Response:
    async with request.app[SESSIONS]() as session:
        ticket = await visible_ticket(session, principal_of(request), path_id(request, "ticket_id"))
        comments = (await session.scalars(select(Comment).where(Comment.ticket_id == ticket.id)
                                          .order_by(Comment.created_at, Comment.id))).all()
        people = await _people(session, comments)
    return web.json_response({"comments": [comment_json(c, people) for c in comments]})


@routes.patch(_TICKET + r"/comments/{comment_id:\d+}")
async def patch_comment(request: web.Request) -> web.Response:
    principal = principal_of(request)
    ticket_id, comment_id = path_id(request, "ticket_id"), path_id(request, "comment_id")
    body = await json_body(request)
    async with request.app[SESSIONS].begin() as session:
        ticket = await visible_ticket(session, principal, ticket_id)
        comment = await authored_comment(session, principal, ticket, comment_id)
        await edit_comment(session, principal, comment, body.get("body"))
        answer = await _one_comment_json(session, comment)
    await run_after_commit(request.app)
    return web.json_response(answer)


@routes.delete(_TICKET + r"/comments/{comment_id:\d+}")
async def remove_comment(request: web.Request) -> web.Response:
    principal = principal_of(request)
    ticket_id, comment_id = path_id(request, "ticket_id"), path_id(request, "comment_id")
    async with request.app[SESSIONS].begin() as session:
        ticket = await visible_ticket(session, principal, ticket_id)
        await delete_comment(session, principal, await authored_comment(session, principal, ticket, comment_id))
    await run_after_commit(request.app)
    return web.Response(status=204)


# --- the timeline -----------------------------------------------------------

MESSAGE, COMMENT = "message", "comment"
_RANK = {MESSAGE: 0, COMMENT: 1}  # a message and a comment at the same instant: the message first


@dataclass(frozen=True)
class TimelineCursor:
    """The last entry of the previous page: its time, kind and id."""

    at: datetime
    kind: str
    id: int

    def encode(self) -> str:
        raw = json.dumps({"t": self.at.isoformat(), "k": self.kind, "id": self.id}).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> TimelineCursor:
        try:
            data = json.loads(base64.urlsafe_b64decode((token + "=" * (-len(token) % 4)).encode()))
            cursor = cls(datetime.fromisoformat(data["t"]), str(data["k"]), int(data["id"]))
        except (ValueError, KeyError, TypeError, OverflowError, binascii.Error):
            raise bad_parameter("cursor", "cursor is not one this API handed out") from None
        if cursor.kind not in _RANK or cursor.at.tzinfo is None or not 0 < cursor.id <= MAX_ID:
            raise bad_parameter("cursor", "cursor is not one this API handed out")
        return cursor

    def after(self, kind: str, created_at: Any, row_id: Any) -> Any:
        """A WHERE clause: rows of ``kind`` that come after this cursor in timeline order."""
        same_instant = created_at == self.at
        if _RANK[kind] > _RANK[self.kind]:
            return created_at >= self.at
        if _RANK[kind] < _RANK[self.kind]:
            return created_at > self.at
        return or_(created_at > self.at, and_(same_instant, row_id > self.id))


@routes.get(_TICKET + "/timeline")
async def timeline(request: web.Request) -> web.Response:
    limit = query_int(request, "limit", maximum=MAX_LIMIT) or DEFAULT_LIMIT
    cursor = TimelineCursor.decode(request.query["cursor"]) if request.query.get("cursor") else None
    async with request.app[SESSIONS]() as session:
        ticket = await visible_ticket(session, principal_of(request), path_id(request, "ticket_id"))
        messages_q = select(Message).where(Message.ticket_id == ticket.id)
        comments_q = select(Comment).where(Comment.ticket_id == ticket.id)
        if cursor is not None:
            messages_q = messages_q.where(cursor.after(MESSAGE, Message.created_at, Message.id))
            comments_q = comments_q.where(cursor.after(COMMENT, Comment.created_at, Comment.id))
        # Each side's first limit+1 rows are enough to fill the merged page and see whether more follow.
        messages = (await session.scalars(messages_q.order_by(Message.created_at, Message.id).limit(limit + 1))).all()
        comments = (await session.scalars(comments_q.order_by(Comment.created_at, Comment.id).limit(limit + 1))).all()
        merged = sorted([(m.created_at, _RANK[MESSAGE], m.id, MESSAGE, m) for m in messages]
                        + [(c.created_at, _RANK[COMMENT], c.id, COMMENT, c) for c in comments],
                        key=lambda entry: entry[:3])
        page = merged[:limit]
        shown = [entry[4] for entry in page]
        attachments: dict[int, list[Attachment]] = {e.id: [] for e in shown if isinstance(e, Message)}
        if attachments:
            for attachment in await session.scalars(select(Attachment).where(
                    Attachment.message_id.in_(attachments)).order_by(Attachment.id)):
                attachments[attachment.message_id].append(attachment)
        people = await _people(session, [e for e in shown if isinstance(e, Comment)])
    entries = [
        {"kind": kind, "at": at.isoformat(),
         kind: message_json(row, attachments[row.id]) if kind == MESSAGE else comment_json(row, people)}
        for at, _, _, kind, row in page
    ]
    next_cursor = None
    if len(merged) > limit and page:
        at, _, row_id, kind, _ = page[-1]
        next_cursor = TimelineCursor(at, kind, row_id).encode()
    return web.json_response({"entries": entries, "limit": limit, "next_cursor": next_cursor})


# --- OpenAPI ----------------------------------------------------------------

_TICKET_ID = {"name": "ticket_id", "in": "path", "required": True, "schema": ID_SCHEMA}
_COMMENT_ID = {"name": "comment_id", "in": "path", "required": True, "schema": ID_SCHEMA}
_COMMENT_REF = {"$ref": "#/components/schemas/Comment"}
_BODY = {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["body"],
    "properties": {"body": {"type": "string", "minLength": 1, "maxLength": MAX_BODY,
                            "description": "Plain text; `@[user:<id>]` mentions that user."}}}}}}
_ONE = {"content": {"application/json": {"schema": _COMMENT_REF}}}
_NOT_VISIBLE = error_response("No such ticket or comment, or the caller may not see the ticket.")
_NOT_AUTHOR = error_response("not_comment_author: only the author may change it; user_required: the "
                             "operator token has no user to write comments as.")
_MENTION = error_response("The body is missing or too long, or mentions an unknown user "
                          "(mention_unknown_user, `user_ids`) or one who cannot see the ticket "
                          "(mention_without_access, `users` names them).")

OPENAPI: dict[str, Any] = {
    "paths": {
        "/api/v1/tickets/{ticket_id}/comments": {
            "post": {
                "summary": "Add an internal comment (never sent to the customer); @[user:<id>] mentions notify",
                "operationId": "addComment", "tags": ["comments"], "parameters": [_TICKET_ID],
                "requestBody": _BODY,
                "responses": {"201": {"description": "The comment.", **_ONE}, "403": _NOT_AUTHOR,
                              "404": _NOT_VISIBLE, "422": _MENTION, **AUTH_ERRORS},
            },
            "get": {
                "summary": "The ticket's comments, oldest first",
                "operationId": "listComments", "tags": ["comments"], "parameters": [_TICKET_ID],
                "responses": {
                    "200": {"description": "Comments.", "content": {"application/json": {"schema": {
                        "type": "object", "required": ["comments"],
                        "properties": {"comments": {"type": "array", "items": _COMMENT_REF}}}}}},
                    "404": _NOT_VISIBLE, **AUTH_ERRORS},
            },
        },
        "/api/v1/tickets/{ticket_id}/comments/{comment_id}": {
            "patch": {
                "summary": "Edit your comment; users it newly mentions are notified",
                "operationId": "editComment", "tags": ["comments"], "parameters": [_TICKET_ID, _COMMENT_ID],
                "requestBody": _BODY,
                "responses": {"200": {"description": "The comment.", **_ONE}, "403": _NOT_AUTHOR,
                              "404": _NOT_VISIBLE, "422": _MENTION, **AUTH_ERRORS},
            },
            "delete": {
                "summary": "Delete your comment",
                "operationId": "deleteComment", "tags": ["comments"], "parameters": [_TICKET_ID, _COMMENT_ID],
                "responses": {"204": {"description": "Deleted."}, "403": _NOT_AUTHOR, "404": _NOT_VISIBLE,
                              **AUTH_ERRORS},
            },
        },
        "/api/v1/tickets/{ticket_id}/timeline": {
            "get": {
                "summary": "Messages and internal comments in time order, paginated",
                "operationId": "getTimeline", "tags": ["comments"],
                "parameters": [
                    _TICKET_ID,
                    {"name": "limit", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}},
                    {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"},
                     "description": "The previous page's next_cursor."},
                ],
                "responses": {
                    "200": {"description": "One page of the timeline.", "content": {"application/json": {
                        "schema": {"type": "object", "required": ["entries", "limit", "next_cursor"], "properties": {
                            "entries": {"type": "array", "items": {
                                "type": "object", "required": ["kind", "at"], "properties": {
                                    "kind": {"type": "string", "enum": [MESSAGE, COMMENT]},
                                    "at": {"type": "string", "format": "date-time"},
                                    "message": {"$ref": "#/components/schemas/Message"},
                                    "comment": _COMMENT_REF}}},
                            "limit": {"type": "integer"},
                            "next_cursor": {"type": ["string", "null"]}}}}}},
                    "400": error_response("invalid_parameter: a bad limit or cursor."),
                    "404": _NOT_VISIBLE, **AUTH_ERRORS},
            },
        },
    },
    "components": {"schemas": {"Comment": {
        "type": "object",
        "required": ["id", "ticket_id", "author_user_id", "body", "mentions", "created_at", "updated_at", "edited"],
        "properties": {
            "id": {"type": "integer"},
            "ticket_id": {"type": "integer"},
            "author_user_id": {"type": ["integer", "null"]},
            "body": {"type": "string"},
            "mentions": {"type": "array", "items": {"type": "object", "properties": {
                "id": {"type": "integer"}, "name": {"type": ["string", "null"]},
                "email": {"type": ["string", "null"]}}}},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "edited": {"type": "boolean"},
        },
    }}},
}
