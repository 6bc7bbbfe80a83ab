"""Read tickets: the filtered, paginated list and one ticket with its whole conversation.

Every query goes through :func:`frontdesk.tickets.access.ticket_visibility`, the list
(built in ``api.ticket_queries``), its total and the detail alike, so a user
never learns of a ticket they may not see.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.api.auth import principal_of
from frontdesk.api.html import attachment_urls, safe_html
from frontdesk.api.keys import SESSIONS
from frontdesk.api.openapi import AUTH_ERRORS, error_response
from frontdesk.api.parameters import path_id
from frontdesk.api.ticket_queries import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    SORTS,
    Cursor,
    after_cursor,
    joined,
    paging,
    status_filter,
    ticket_filters,
)
from frontdesk.model import Attachment, Contact, Message, Pipeline, Status, Ticket
from frontdesk.tickets.access import visible_ticket

routes = web.RouteTableDef()

# --- serialization ----------------------------------------------------------

def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def contact_json(contact: Contact | None) -> dict[str, Any] | None:
    if contact is None:
        return None
    return {
        "id": contact.id,
        "email": contact.email,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "phone": contact.phone,
    }


def ticket_json(ticket: Ticket, pipeline: Pipeline, status: Status, contact: Contact | None) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "name": ticket.name,
        "description": ticket.description,
        "pipeline": {"id": pipeline.id, "name": pipeline.name, "internal_name": pipeline.internal_name},
        "status": {"id": status.id, "label": status.label, "internal_name": status.internal_name,
                   "is_closed": status.is_closed},
        "priority": ticket.priority,
        "category": ticket.category,
        "owner_id": ticket.owner_id,
        "team_id": ticket.team_id,
        "source_channel": ticket.source_channel,
        "contact": contact_json(contact),
        "custom_properties": ticket.custom_properties,
        "created_at": _time(ticket.created_at),
        "updated_at": _time(ticket.updated_at),
        "closed_at": _time(ticket.closed_at),
        "reopened_at": _time(ticket.reopened_at),
    }


def attachment_json(attachment: Attachment) -> dict[str, Any]:
    return {
        "id": attachment.id,
        "filename": attachment.filename,
        "content_type": attachment.content_type,
        "size": attachment.size,
        "sha256": attachment.blob,
        "inline": attachment.is_inline,
        "content_id": attachment.content_id,
        "from_tnef": attachment.from_tnef,
        "remote_url": attachment.url,
        "download_url": f"/api/v1/attachments/{attachment.id}" if attachment.blob else None,
    }


def message_json(message: Message, attachments: list[Attachment]) -> dict[str, Any]:
    files = [attachment_json(a) for a in attachments]
    return {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "direction": message.direction,
        "channel": message.channel,
        "source": message.source,
        "external_id": message.external_id,
        "in_reply_to": message.in_reply_to,
        "references": message.references,
        "from": {"address": message.from_address, "name": message.from_name},
        "to": message.to_addresses,
        "cc": message.cc_addresses,
        "subject": message.subject,
        "text": message.text_body,
        # Served sanitized, inline images pointing at their downloads; the
        # stored HTML and the raw source stay as received.
        "html": safe_html(message.html_body, attachment_urls([(f["content_id"], f["download_url"]) for f in files])),
        "reply_text": message.reply_text,
        "author_kind": message.author_kind,
        "author_user_id": message.author_user_id,
        "screening": {"verdict": message.screening, "reason": message.screening_reason},
        "match": {"rule": message.match_rule, "detail": message.match_detail},
        "is_forwarded": message.is_forwarded,
        "is_automated": message.is_automated,
        "delivery_state": message.delivery_state,
        "defects": message.defects,
        "sent_at": _time(message.sent_at),
        "created_at": _time(message.created_at),
        "raw_url": f"/api/v1/messages/{message.id}/raw" if message.raw_blob else None,
        "attachments": files,
    }


# --- handlers ---------------------------------------------------------------

@routes.get("/api/v1/tickets")
async def list_tickets(request: web.Request) -> web.Response:
    wanted = paging(request)
    limit, sort, page, cursor = wanted.limit, wanted.sort, wanted.page, wanted.cursor
    clauses = ticket_filters(request)
    column, descending = SORTS[sort]
    async with request.app[SESSIONS]() as session:
        if request.query.get("status"):
            clauses.append(await status_filter(session, principal_of(request), request.query["status"]))
        statement = joined(select(Ticket, Pipeline, Status, Contact)).where(*clauses)
        if cursor is not None:
            statement = statement.where(after_cursor(cursor))
        order = (column.desc(), Ticket.id.desc()) if descending else (column.asc(), Ticket.id.asc())
        statement = statement.order_by(*order).limit(limit + 1)
        if page is not None:
            statement = statement.offset((page - 1) * limit)
        total = await session.scalar(joined(select(func.count(Ticket.id))).where(*clauses))
        rows = (await session.execute(statement)).all()

    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if has_more and rows:
        last = rows[-1][0]
        next_cursor = Cursor(sort, getattr(last, column.key), last.id).encode()
    body: dict[str, Any] = {
        "tickets": [ticket_json(*row) for row in rows],
        "total": total,
        "limit": limit,
        "next_cursor": next_cursor,
    }
    if page is not None:
        body["page"] = page
    return web.json_response(body)


async def _ticket_detail(session: AsyncSession, ticket: Ticket) -> dict[str, Any]:
    pipeline = await session.get_one(Pipeline, ticket.pipeline_id)
    status = await session.get_one(Status, ticket.status_id)
    contact = await session.get(Contact, ticket.contact_id) if ticket.contact_id is not None else None
    messages = (
        await session.scalars(
            select(Message).where(Message.ticket_id == ticket.id).order_by(Message.created_at, Message.id)
        )
    ).all()
    by_message: dict[int, list[Attachment]] = {m.id: [] for m in messages}
    if messages:
        attachments = await session.scalars(
            select(Attachment).where(Attachment.message_id.in_(by_message)).order_by(Attachment.id)
        )
        for attachment in attachments:
            by_message[attachment.message_id].append(attachment)
    body = ticket_json(ticket, pipeline, status, contact)
    body["messages"] = [message_json(m, by_message[m.id]) for m in messages]
    return body


@routes.get(r"/api/v1/tickets/{ticket_id:\d+}")
async def get_ticket(request: web.Request) -> web.Response:
    async with request.app[SESSIONS]() as session:
        ticket = await visible_ticket(session, principal_of(request), path_id(request, "ticket_id"))
        return web.json_response(await _ticket_detail(session, ticket))


# --- OpenAPI ----------------------------------------------------------------

_NULLABLE_STRING = {"type": ["string", "null"]}
_TIME = {"type": ["string", "null"], "format": "date-time"}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


OPENAPI: dict[str, Any] = {
    "paths": {
        "/api/v1/tickets": {
            "get": {
                "summary": "List the tickets the caller may see",
                "operationId": "listTickets",
                "tags": ["tickets"],
                "description": (
                    "Newest activity first by default. Page with `cursor` (the previous answer's "
                    "`next_cursor`) or with `page`; `total` counts every matching ticket the caller may see."
                ),
                "parameters": [
                    _query("limit", f"Tickets per page (1-{MAX_LIMIT}, default {DEFAULT_LIMIT}).",
                           {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}),
                    _query("cursor", "Opaque position from a previous answer's next_cursor.", {"type": "string"}),
                    _query("page", "1-based page number (alternative to cursor).", {"type": "integer", "minimum": 1}),
                    _query("sort", "Sort order.", {"type": "string", "enum": list(SORTS)}),
                    _query("pipeline", "Pipeline internal name or id.", {"type": "string"}),
                    _query("status", "Status internal name, or label in any case.", {"type": "string"}),
                    _query("owner", "Owner user id, or 'none' for unassigned.", {"type": "string"}),
                    _query("team", "Team id, or 'none'.", {"type": "string"}),
                    _query("priority", "Priority value.", {"type": "string"}),
                    _query("q", "Search in ticket name and description and the contact's name and email.",
                           {"type": "string"}),
                ],
                "responses": {
                    "200": {"description": "One page of tickets.", "content": {"application/json": {"schema": {
                        "type": "object",
                        "required": ["tickets", "total", "limit", "next_cursor"],
                        "properties": {
                            "tickets": {"type": "array", "items": {"$ref": "#/components/schemas/TicketSummary"}},
                            "total": {"type": "integer"},
                            "limit": {"type": "integer"},
                            "page": {"type": "integer"},
                            "next_cursor": _NULLABLE_STRING,
                        },
                    }}}},
                    "400": error_response("A parameter is invalid; error.parameter names it."),
                    **AUTH_ERRORS,
                },
            }
        },
        "/api/v1/tickets/{ticket_id}": {
            "get": {
                "summary": "One ticket with its messages, attachments and contact",
                "operationId": "getTicket",
                "tags": ["tickets"],
                "parameters": [{"name": "ticket_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "responses": {
                    "200": {"description": "The ticket.", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/TicketDetail"}}}},
                    "404": error_response("No such ticket, or the caller may not see it."),
                    **AUTH_ERRORS,
                },
            }
        },
    },
    "components": {
        "schemas": {
            "Contact": {
                "type": ["object", "null"],
                "properties": {
                    "id": {"type": "integer"},
                    "email": _NULLABLE_STRING,
                    "first_name": _NULLABLE_STRING,
                    "last_name": _NULLABLE_STRING,
                    "phone": _NULLABLE_STRING,
                },
            },
            "TicketSummary": {
                "type": "object",
                "required": ["id", "name", "pipeline", "status", "created_at", "updated_at"],
                "properties": {
                    "id": {"type": "integer"},
                    "name": {"type": "string"},
                    "description": _NULLABLE_STRING,
                    "pipeline": {"type": "object", "properties": {
                        "id": {"type": "integer"}, "name": {"type": "string"}, "internal_name": {"type": "string"}}},
                    "status": {"type": "object", "properties": {
                        "id": {"type": "integer"}, "label": {"type": "string"},
                        "internal_name": {"type": "string"}, "is_closed": {"type": "boolean"}}},
                    "priority": _NULLABLE_STRING,
                    "category": _NULLABLE_STRING,
                    "owner_id": {"type": ["integer", "null"]},
                    "team_id": {"type": ["integer", "null"]},
                    "source_channel": {"type": "string"},
                    "contact": {"$ref": "#/components/schemas/Contact"},
                    "custom_properties": {"type": "object"},
                    "created_at": {"type": "string", "format": "date-time"},
                    "updated_at": {"type": "string", "format": "date-time"},
                    "closed_at": _TIME,
                    "reopened_at": _TIME,
                },
            },
            "TicketDetail": {
                "allOf": [
                    {"$ref": "#/components/schemas/TicketSummary"},
                    {"type": "object", "required": ["messages"], "properties": {
                        "messages": {"type": "array", "items": {"$ref": "#/components/schemas/Message"}}}},
                ]
            },
            "Message": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "conversation_id": {"type": ["integer", "null"]},
                    "direction": {"type": "string", "enum": ["inbound", "outbound"]},
                    "channel": {"type": "string"},
                    "source": _NULLABLE_STRING,
                    "external_id": {"type": ["string", "null"], "description": "Message-ID without <>, or the channel's id."},
                    "in_reply_to": _NULLABLE_STRING,
                    "references": {"type": "array", "items": {"type": "string"}},
                    "from": {"type": "object", "properties": {"address": _NULLABLE_STRING, "name": _NULLABLE_STRING}},
                    "to": {"type": "array", "items": {"type": "string"}},
                    "cc": {"type": "array", "items": {"type": "string"}},
                    "subject": _NULLABLE_STRING,
                    "text": _NULLABLE_STRING,
                    "html": _NULLABLE_STRING,
                    "reply_text": {"type": ["string", "null"], "description": "The latest reply, quoted history stripped."},
                    "author_kind": {"type": "string"},
                    "author_user_id": {"type": ["integer", "null"]},
                    "screening": {"type": "object", "properties": {
                        "verdict": {"type": "string"}, "reason": _NULLABLE_STRING}},
                    "match": {"type": "object", "description": "Why the message was put on this ticket.",
                              "properties": {"rule": _NULLABLE_STRING, "detail": _NULLABLE_STRING}},
                    "is_forwarded": {"type": "boolean"},
                    "is_automated": {"type": "boolean"},
                    "delivery_state": _NULLABLE_STRING,
                    "defects": {"type": "array"},
                    "sent_at": _TIME,
                    "created_at": {"type": "string", "format": "date-time"},
                    "raw_url": _NULLABLE_STRING,
                    "attachments": {"type": "array", "items": {"$ref": "#/components/schemas/Attachment"}},
                },
            },
            "Attachment": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "filename": _NULLABLE_STRING,
                    "content_type": {"type": "string"},
                    "size": {"type": "integer"},
                    "sha256": _NULLABLE_STRING,
                    "inline": {"type": "boolean"},
                    "content_id": _NULLABLE_STRING,
                    "from_tnef": {"type": "boolean"},
                    "remote_url": _NULLABLE_STRING,
                    "download_url": _NULLABLE_STRING,
                },
            },
        }
    },
}
